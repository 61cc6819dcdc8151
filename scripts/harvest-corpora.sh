#!/usr/bin/env bash
# Unpacks the Debian packages `rampart data generate` harvests into target/corpora/root, so
# the generated training data is the same on any Debian bookworm machine (the package list is
# fixed here; versions are whatever bookworm ships). Nothing is installed: packages are
# downloaded with `apt-get download` and unpacked with `dpkg-deb -x`.
#
# What they give: gettext message catalogues in dozens of languages (benign non-English
# text), Python, C, Perl, shell, config files and documentation (benign code pasted into
# questions). Licences: GPL/LGPL/BSD/MIT/PSF/Artistic as each package's
# usr/share/doc/<package>/copyright says; the text is used to train weights, not shipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(
  # message catalogues
  coreutils grep sed tar findutils diffutils make psmisc procps xz-utils wget gettext gettext-base
  libc-l10n libglib2.0-data libgstreamer1.0-0 libgnutls30 libelf1 binutils-common apt libapt-pkg6.0
  dpkg libdpkg-perl shared-mime-info appstream git bash man-db login libpam-runtime systemd
  gnupg-l10n krb5-locales libidn2-0 net-tools polkitd packagekit xdg-user-dirs libgtk2.0-common
  # code, configs and docs
  libpython3.11-stdlib libc6-dev perl-modules-5.36 debianutils golang-1.19-src libruby3.1
  libeigen3-dev node-acorn nginx-common ansible-core
)
mkdir -p target/corpora/debs target/corpora/root
( cd target/corpora/debs && apt-get download "${PKGS[@]}" >/dev/null 2>&1 || apt-get download "${PKGS[@]}" )
for d in target/corpora/debs/*.deb; do dpkg-deb -x "$d" target/corpora/root; done
echo "unpacked $(ls target/corpora/debs | wc -l) packages into target/corpora/root"
