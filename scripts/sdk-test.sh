#!/usr/bin/env bash
# The official OpenAI Python SDK, the OpenAI Node SDK and the Vercel AI SDK against the real
# gateway on loopback (embedded defaults). Installs the Python SDK from PyPI into
# target/sdk-venv and the Node packages from npm into target/node-sdk (never committed);
# Node itself from Debian when it is missing.
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

echo "== /metrics read by the Prometheus client library's parsers (both formats)"
"$venv/bin/pip" install -q --disable-pip-version-check 'prometheus_client>=0.20,<1'
"$venv/bin/python" tests/sdk/metrics_formats.py "$url"

echo "== OpenAI Node SDK and Vercel AI SDK against the gateway"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q nodejs npm >&2 || { apt-get update -q >&2 && apt-get install -y -q nodejs npm >&2; }; } \
    || sudo -n apt-get install -y -q nodejs npm >&2
fi
node_dir=target/node-sdk
node_pkgs=(openai@5.23.2 ai@5.0.277 @ai-sdk/openai@2.0.131)
if [ "$(cat "$node_dir/.installed" 2>/dev/null)" != "${node_pkgs[*]}" ]; then
  mkdir -p "$node_dir"
  npm install --prefix "$node_dir" --no-audit --no-fund --silent "${node_pkgs[@]}"
  echo "${node_pkgs[*]}" >"$node_dir/.installed"
fi
NODE_PATH="$PWD/$node_dir/node_modules" node tests/sdk/node_sdk.mjs "$url/v1" "$key"

# The ledger this run wrote, checked by an independent implementation of FORMAT.md.
echo "== independent audit ledger verification (scripts/audit-verify.py)"
"$venv/bin/pip" install -q --disable-pip-version-check 'cryptography>=42'
kill "$pid" && wait "$pid" 2>/dev/null || true
pid=
"$bin" audit checkpoint --data-dir "$dir/data" >/dev/null
pub=$(cat "$dir/data/audit-signing.pub")
passed=0
"$venv/bin/python" scripts/audit-verify.py "$dir/data/audit.db" --public-key "$pub"
passed=$((passed + 1))
"$venv/bin/python" - "$dir/data/audit.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("UPDATE audit_records SET model = 'forged' WHERE seq = 3")
db.commit()
PY
set +e
out=$("$venv/bin/python" scripts/audit-verify.py "$dir/data/audit.db" --public-key "$pub")
rc=$?
set -e
echo "$out"
if [ "$rc" = 1 ] && grep -q "record 3: contents do not match" <<<"$out"; then
  passed=$((passed + 1))
  echo "audit-verify: $passed passed, 0 failed"
else
  echo "audit-verify: $passed passed, 1 failed (a changed record 3 was not reported)"
  exit 1
fi
