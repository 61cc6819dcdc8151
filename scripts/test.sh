#!/usr/bin/env bash
# The whole test suite, from a clean checkout: formatting, lints, unit, property and
# integration tests (the integration tests start the real binary on loopback).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 2
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --all-targets --locked
cargo test --workspace --doc --locked
