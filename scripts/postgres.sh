#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL for the test suite: installs Debian's package when
# missing, creates a cluster under target/pg-test, listens on 127.0.0.1:$RAMPART_PG_PORT, and
# prints the connection string. Usage: scripts/postgres.sh start|stop
set -euo pipefail
cd "$(dirname "$0")/.."
port=${RAMPART_PG_PORT:-55432}
dir=$PWD/target/pg-test

find_bin() {
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return; fi
  if command -v initdb >/dev/null; then dirname "$(command -v initdb)"; return; fi
}

# PostgreSQL refuses to run as root: run its tools as the `postgres` user then.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "${1:-start}" in
start)
  bin=$(find_bin)
  if [ -z "$bin" ]; then
    echo "== installing postgresql (Debian package)" >&2
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 \
        || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2; }
    else
      sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    fi
    bin=$(find_bin)
  fi
  [ -n "$bin" ] || { echo "postgresql is not installed and could not be installed" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
  rm -rf "$dir"
  mkdir -p "$dir/data" "$dir/run"
  if [ "$(id -u)" = 0 ]; then chown -R postgres "$dir"; chmod 755 "$PWD/target" "$dir"; fi
  as_pg "$bin/initdb" -D "$dir/data" -U rampart -A trust --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir/run -c listen_addresses=127.0.0.1 -c fsync=on" start >&2 \
    || { cat "$dir/server.log" >&2; exit 1; }
  echo "host=127.0.0.1 port=$port user=rampart dbname=postgres"
  ;;
stop)
  bin=$(find_bin)
  [ -n "$bin" ] && as_pg "$bin/pg_ctl" -D "$dir/data" stop -m fast >/dev/null 2>&1 || true
  ;;
esac
