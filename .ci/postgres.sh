#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests, from the distribution's packages.
#   eval "$(.ci/postgres.sh start)"   # prints `export DEVGATE_TEST_POSTGRES_URL=…`
#   .ci/postgres.sh stop              # stops it and deletes its data
# It runs as an unprivileged user (PostgreSQL refuses root) in a temporary data directory, listening on
# 127.0.0.1 only with trust authentication. Any failure to start is fatal and said on stderr.
set -euo pipefail

BASE=/tmp/devgate-ci-postgres
DATA="$BASE/data"
PORT="${DEVGATE_CI_POSTGRES_PORT:-55432}"
PG_USER=devgate-pg

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(command -v initdb)"; return 0
  fi
  return 1
}

# Runs a PostgreSQL command as the unprivileged owner of the data directory.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi
}

start() {
  if ! BIN=$(bindir); then
    echo "installing postgresql" >&2
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    BIN=$(bindir) || { echo "postgresql installed but initdb/pg_ctl not found" >&2; exit 1; }
  fi
  if [ "$(id -u)" -eq 0 ] && ! id "$PG_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  fi
  local owner
  owner=$([ "$(id -u)" -eq 0 ] && echo "$PG_USER" || id -un)
  if [ -f "$DATA/postmaster.pid" ]; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$BASE"
  mkdir -p "$DATA"
  chown -R "$owner" "$BASE"
  chmod 700 "$DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U devgate -A trust --no-sync >"$BASE/initdb.log" 2>&1 \
    || { cat "$BASE/initdb.log" >&2; echo "initdb failed" >&2; exit 1; }
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $PORT -k $BASE -c fsync=off -c max_connections=300" start >&2 \
    || { cat "$BASE/server.log" >&2; echo "PostgreSQL did not start" >&2; exit 1; }
  echo "export DEVGATE_TEST_POSTGRES_URL=postgres://devgate@127.0.0.1:$PORT/postgres"
}

stop() {
  local BIN
  BIN=$(bindir) || exit 0
  if [ -f "$DATA/postmaster.pid" ]; then
    as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
  fi
  rm -rf "$BASE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
