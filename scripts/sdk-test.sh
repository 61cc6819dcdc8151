#!/usr/bin/env bash
# The official OpenAI Python SDK against the real gateway on loopback (embedded defaults).
# Installs the SDK from PyPI into target/sdk-venv (never committed).
set -euo pipefail
cd "$(dirname "$0")/.."

bin=target/debug/rampart
[ -x "$bin" ] || cargo build -q -p rampart
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install -q --disable-pip-version-check 'openai>=1.40,<4'

dir=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$bin" serve --listen 127.0.0.1:0 --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
pid=$!
for _ in $(seq 1 100); do
  grep -q "rampart listening on" "$dir/out" 2>/dev/null && break
  sleep 0.1
done
url=$(sed -n 's/^rampart listening on //p' "$dir/out")
admin=$(sed -n 's/^admin credential (shown once, store it now): //p' "$dir/out")
[ -n "$url" ] || { cat "$dir/err" >&2; exit 1; }
key=$(RAMPART_URL="$url" RAMPART_ADMIN_KEY="$admin" "$bin" keys create --owner sdk-test 2>/dev/null)
"$venv/bin/python" tests/sdk/openai_sdk.py "$url/v1" "$key"
