#!/usr/bin/env bash
# A throwaway PostgreSQL for the server tests and benchmarks.
#
#   eval "$(bash scripts/ci_postgres.sh)"     # start (or find running) and export FATHOM_TEST_DATABASE_URL
#   bash scripts/ci_postgres.sh stop          # stop it (the data stays for the next start)
#   bash scripts/ci_postgres.sh destroy       # stop it and delete its data
#
# Installs Debian's postgresql package when no PostgreSQL is found (needs root; `apt-get update`
# once). The cluster lives in $FATHOM_PG_DIR (default /tmp/fathom-ci-pg), owned by the postgres
# user when run as root, listens on 127.0.0.1 only, on $FATHOM_PG_PORT or the first free port
# from 55433 (remembered for later runs). Re-running while it is up only prints the URL.
# Only the export line goes to stdout; everything else goes to stderr.
set -euo pipefail

STATE=$(realpath -m "${FATHOM_PG_DIR:-/tmp/fathom-ci-pg}")
DATA=$STATE/data
DB_NAME=fathom_test
DB_USER=fathom
ACTION=${1:-start}

say() { echo "ci_postgres: $*" >&2; }
die() { say "$*"; exit 1; }

find_bindir() {
  local dir
  # Debian keeps the server binaries out of PATH, one folder per major version: take the newest.
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -t/ -k5 -V -r); do
    [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return 0
  fi
  if command -v initdb >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  return 1
}

install_postgres() {
  [ "$(id -u)" = 0 ] || die "PostgreSQL is not installed and this is not root: run 'apt-get install -y postgresql' as root, or set FATHOM_TEST_DATABASE_URL to an existing server."
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and there is no apt-get: install PostgreSQL 13 or newer yourself."
  say "installing PostgreSQL from the Debian packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends postgresql >&2
}

# Run a command as the cluster's owner: the postgres user when we are root (PostgreSQL refuses to
# run as root), ourselves otherwise.
# From / because the postgres user may not be allowed into the caller's directory (e.g. /root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null 2>&1; then (cd / && runuser -u postgres -- "$@")
    else (cd / && su postgres -s /bin/sh -c "$(printf '%q ' "$@")"); fi
  else
    "$@"
  fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pick_port() {
  if [ -n "${FATHOM_PG_PORT:-}" ]; then echo "$FATHOM_PG_PORT"; return; fi
  if [ -s "$STATE/port" ]; then cat "$STATE/port"; return; fi
  local port
  for port in $(seq 55433 55532); do
    port_busy "$port" || { echo "$port"; return; }
  done
  die "no free port in 55433..55532; set FATHOM_PG_PORT"
}

running() { [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

psql_admin() { as_owner "$BIN/psql" -X -q -h "$STATE" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 "$@"; }

print_url() {
  local password
  password=$(cat "$STATE/password")
  echo "export FATHOM_TEST_DATABASE_URL=postgresql://$DB_USER:$password@127.0.0.1:$PORT/$DB_NAME"
}

BIN=$(find_bindir || true)

case "$ACTION" in
  stop|destroy)
    if [ -n "$BIN" ] && running; then
      as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >&2
      say "stopped the cluster in $DATA"
    else
      say "no cluster running in $DATA"
    fi
    if [ "$ACTION" = destroy ]; then rm -rf "$STATE"; say "deleted $STATE"; fi
    exit 0 ;;
  start) ;;
  *) die "unknown action '$ACTION': use start (default), stop or destroy" ;;
esac

if [ -z "$BIN" ]; then
  install_postgres
  BIN=$(find_bindir) || die "PostgreSQL was installed but its initdb/pg_ctl were not found"
fi
if [ "$(id -u)" = 0 ]; then id postgres >/dev/null 2>&1 || die "there is no 'postgres' user to run the server as"; fi

mkdir -p "$STATE"
chmod 700 "$STATE"
if [ "$(id -u)" = 0 ]; then chown postgres: "$STATE"; fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  say "initialising a cluster in $DATA"
  as_owner "$BIN/initdb" -D "$DATA" -U postgres -E UTF8 --no-locale --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 >&2
fi
if [ ! -s "$STATE/password" ]; then
  # A fresh random password per cluster; the URL carries it.
  od -An -N12 -tx1 /dev/urandom | tr -d ' \n' > "$STATE/password"
  chmod 600 "$STATE/password"
fi
PORT=$(pick_port)

if running; then
  say "already running on 127.0.0.1:$(cat "$STATE/port" 2>/dev/null || echo "$PORT")"
  PORT=$(cat "$STATE/port" 2>/dev/null || echo "$PORT")
else
  port_busy "$PORT" && die "port $PORT is taken by something else; set FATHOM_PG_PORT or run '$0 destroy'"
  say "starting PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT"
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$STATE/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $STATE -c max_connections=200" start >&2 \
    || { tail -20 "$STATE/server.log" >&2 || true; die "PostgreSQL did not start (log: $STATE/server.log)"; }
  echo "$PORT" > "$STATE/port"
fi

for _ in $(seq 1 60); do
  as_owner "$BIN/pg_isready" -q -h "$STATE" -p "$PORT" && break
  sleep 0.5
done
as_owner "$BIN/pg_isready" -q -h "$STATE" -p "$PORT" || die "PostgreSQL on port $PORT is not ready after 30 s"

PASSWORD=$(cat "$STATE/password")
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER'")" != 1 ]; then
  psql_admin -c "CREATE ROLE $DB_USER"
fi
# Every run, so the role always matches the password file; CREATEDB because the server tests and
# the benchmark make a fresh database each.
psql_admin -c "ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$PASSWORD'"
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
  psql_admin -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
fi
print_url
