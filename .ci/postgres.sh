#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests.
#
#   pg_env=$(.ci/postgres.sh start)   # fails (set -e) if the server cannot start
#   eval "$pg_env"                     # sets DEVGATE_TEST_POSTGRES_URL
#   .ci/postgres.sh stop               # stops it and deletes its data
#
# `start` installs Debian's `postgresql` package if no PostgreSQL binaries are found, creates a fresh
# data directory under $DEVGATE_CI_POSTGRES_DIR (default /tmp/devgate-ci-postgres), owned by an
# unprivileged user (PostgreSQL refuses to run as root: as root it uses the system user devgate-pg),
# initialises it with trust authentication, starts the server on 127.0.0.1 only (no Unix socket
# outside that directory) on a free port (from $DEVGATE_CI_POSTGRES_PORT, default 55432, trying the
# next ones if taken; a port set explicitly must be free), waits until it accepts connections, and
# prints `export DEVGATE_TEST_POSTGRES_URL=postgres://devgate@127.0.0.1:<port>/postgres` on stdout
# (everything else goes to stderr). Starting again replaces a previous server in the same directory.
# Any failure exits non-zero with the reason (and the server's log) on stderr.
#
# Use two statements as above, not `eval "$(.ci/postgres.sh start)"` (`eval` of a failed command
# substitution succeeds, with nothing to evaluate) nor `pg_env=$(…) && eval …` (`set -e` ignores a
# failure on the left of `&&`): both carry on without a server.
set -euo pipefail

BASE="${DEVGATE_CI_POSTGRES_DIR:-/tmp/devgate-ci-postgres}"
DATA="$BASE/data"
PG_USER=devgate-pg
DB_USER=devgate

say() { echo "postgres.sh: $*" >&2; }
die() {
  say "$*"
  exit 1
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs a command as the owner of the data directory: devgate-pg when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$PG_USER" -- "$@"
  else
    su -s /bin/sh "$PG_USER" -c "$(printf '%q ' "$@")"
  fi
}

# The directory holding initdb, pg_ctl and postgres: initdb on PATH (symlinks resolved, so that
# Debian's /usr/lib/postgresql/<v>/bin is found through /usr/local/bin links), else the newest
# /usr/lib/postgresql/<v>/bin.
bindir() {
  local initdb d
  if initdb=$(command -v initdb 2>/dev/null); then
    d=$(dirname "$(readlink -f "$initdb")")
    if [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then
      echo "$d"
      return 0
    fi
  done
  return 1
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

free_port() {
  local port
  if [ -n "${DEVGATE_CI_POSTGRES_PORT:-}" ]; then
    port_taken "$DEVGATE_CI_POSTGRES_PORT" && die "port $DEVGATE_CI_POSTGRES_PORT (DEVGATE_CI_POSTGRES_PORT) is taken"
    echo "$DEVGATE_CI_POSTGRES_PORT"
    return 0
  fi
  for port in $(seq 55432 55531); do
    if ! port_taken "$port"; then
      echo "$port"
      return 0
    fi
  done
  die "no free port in 55432-55531"
}

# Stops the server of $DATA if one runs (fast, then immediate), whoever started it.
stop_server() {
  local bin="$1"
  [ -f "$DATA/postmaster.pid" ] || return 0
  if [ -n "$bin" ]; then
    as_owner "$bin/pg_ctl" -D "$DATA" -m fast -w -t 20 stop >&2 ||
      as_owner "$bin/pg_ctl" -D "$DATA" -m immediate -w -t 10 stop >&2 || true
  fi
  local pid
  pid=$(head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -QUIT "$pid" 2>/dev/null || true
    sleep 1
  fi
}

start() {
  local started=$SECONDS bin owner port
  if ! bin=$(bindir); then
    say "no PostgreSQL binaries found: installing Debian's postgresql package"
    as_root apt-get update -qq >&2 || die "apt-get update failed"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 ||
      die "apt-get install postgresql failed"
    bin=$(bindir) || die "postgresql is installed but initdb/pg_ctl/postgres are not found"
  fi

  if [ "$(id -u)" -eq 0 ]; then
    if ! id "$PG_USER" >/dev/null 2>&1; then
      useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER" >&2 ||
        die "cannot create the system user $PG_USER"
    fi
    owner="$PG_USER"
  else
    owner=$(id -un)
  fi

  port=$(free_port)
  stop_server "$bin"
  rm -rf "$BASE" || die "cannot remove the old $BASE"
  mkdir -p "$DATA" || die "cannot create $DATA"
  if [ "$(id -u)" -eq 0 ]; then chown -R "$owner" "$BASE"; fi
  chmod 700 "$DATA"

  if ! as_owner "$bin/initdb" -D "$DATA" -U "$DB_USER" --auth=trust --no-sync --encoding=UTF8 \
    --locale=C >"$BASE/initdb.log" 2>&1; then
    cat "$BASE/initdb.log" >&2
    die "initdb failed ($bin/initdb as $owner)"
  fi
  # Loopback only, and trust only there.
  cat >"$DATA/pg_hba.conf" <<'EOF'
host all all 127.0.0.1/32 trust
EOF

  # fsync off and a short checkpoint distance: the data is thrown away. Many connections: every
  # test opens a pool of its own.
  if ! as_owner "$bin/pg_ctl" -D "$DATA" -l "$BASE/server.log" -w -t 30 \
    -o "-h 127.0.0.1 -p $port -k $BASE -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" \
    start >&2; then
    cat "$BASE/server.log" >&2 || true
    die "PostgreSQL did not start on 127.0.0.1:$port"
  fi

  # pg_ctl -w waited for the postmaster; check that it answers on TCP too (bounded).
  local ready=0 i
  for i in $(seq 1 50); do
    if [ -x "$bin/pg_isready" ]; then
      if "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U "$DB_USER" -d postgres -t 1; then ready=1; break; fi
    elif port_taken "$port"; then
      ready=1
      break
    fi
    sleep 0.2
  done
  if [ "$ready" -ne 1 ]; then
    cat "$BASE/server.log" >&2 || true
    stop_server "$bin"
    die "PostgreSQL started but does not answer on 127.0.0.1:$port"
  fi

  local url="postgres://$DB_USER@127.0.0.1:$port/postgres"
  echo "export DEVGATE_TEST_POSTGRES_URL=$url" >"$BASE/env"
  say "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port as $owner, data in $DATA ($((SECONDS - started)) s)"
  echo "export DEVGATE_TEST_POSTGRES_URL=$url"
}

stop() {
  local bin=""
  bin=$(bindir) || bin=""
  stop_server "$bin"
  rm -rf "$BASE"
  say "stopped; removed $BASE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
