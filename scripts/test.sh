#!/usr/bin/env bash
# The whole test suite, from a clean checkout: formatting, lints, unit, property and
# integration tests (the integration tests start the real binary on loopback).
set -euo pipefail
shopt -s inherit_errexit 2>/dev/null || true
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 2
fi

# Incremental state only pays off on repeated local builds; on a clean CI clone it is
# gigabytes of disk for nothing. Set CARGO_INCREMENTAL=1 to keep it locally.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== fuzz targets build (running them needs cargo-fuzz: see README)"
cargo check --manifest-path fuzz/Cargo.toml --target-dir target

echo "== PostgreSQL for the audit ledger tests (scripts/postgres.sh)"
RAMPART_TEST_PG_URL=$(./scripts/postgres.sh start)
export RAMPART_TEST_PG_URL RAMPART_REQUIRE_PG=1

# A 4 MiB tmpfs for the full-disk test of the audit ledger (needs root, as CI has).
small=$PWD/target/small-fs
mkdir -p "$small"
if mountpoint -q "$small" || mount -t tmpfs -o size=4m tmpfs "$small" 2>/dev/null \
  || sudo -n mount -t tmpfs -o size=4m tmpfs "$small" 2>/dev/null; then
  export RAMPART_TEST_SMALL_FS=$small RAMPART_REQUIRE_SMALL_FS=1
else
  echo "warning: cannot mount a tmpfs here; the full-disk ledger test will be skipped" >&2
fi

echo "== model-signing (PyPI) for the signing interop tests, in target/sign-venv"
venv=target/sign-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# pyopenssl: model-signing 1.1.1 imports OpenSSL without declaring it.
"$venv/bin/pip" install -q --disable-pip-version-check 'model-signing==1.1.1' 'pyopenssl>=25'
export RAMPART_MODEL_SIGNING_PY=$PWD/$venv/bin/python RAMPART_REQUIRE_MODEL_SIGNING=1

echo "== model libraries (PyPI) for the real-library model corpus, in target/model-venv"
mvenv=target/model-venv
[ -x "$mvenv/bin/python" ] || python3 -m venv "$mvenv"
"$mvenv/bin/pip" install -q --disable-pip-version-check 'numpy==2.4.6' 'joblib==1.6.0' 'scikit-learn==1.9.1' \
  'pandas==3.1.1' 'keras==3.15.1' 'jax==0.10.2' 'jaxlib==0.10.2' 'h5py==3.16.0' 'safetensors==0.8.0'
export RAMPART_MODEL_LIBS_PY=$PWD/$mvenv/bin/python RAMPART_REQUIRE_MODEL_LIBS=1

echo "== the MCP Python SDK (PyPI) for the MCP gateway tests, in target/mcp-venv"
mcpvenv=target/mcp-venv
[ -x "$mcpvenv/bin/python" ] || python3 -m venv "$mcpvenv"
"$mcpvenv/bin/pip" install -q --disable-pip-version-check 'mcp==2.3.0' 'openai==2.8.1'
export RAMPART_MCP_PY=$PWD/$mcpvenv/bin/python RAMPART_REQUIRE_MCP=1

echo "== cargo test"
log=$(mktemp)
cleanup() {
  rm -f "$log"
  ./scripts/postgres.sh stop
  if mountpoint -q "$small"; then umount "$small" 2>/dev/null || sudo -n umount "$small" 2>/dev/null || true; fi
}
trap cleanup EXIT
cargo test --workspace --all-targets --locked 2>&1 | tee "$log"
cargo test --workspace --doc --locked 2>&1 | tee -a "$log"

echo "== OpenAI Python and Node SDKs and the Vercel AI SDK against the gateway"
./scripts/sdk-test.sh 2>&1 | tee -a "$log"

# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:|^openai SDK|^openai Node SDK|^prometheus parsers:|^audit-verify:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed[;,]?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1); if ($i ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
