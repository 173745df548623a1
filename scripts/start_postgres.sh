#!/usr/bin/env bash
# Start a PostgreSQL cluster on 127.0.0.1 for longrec's event-store tests and print its URL.
# Idempotent: installs Debian's postgresql if missing, creates the cluster/role/db once, starts it if down.
#   export LONGREC_TEST_PG_URL="$(scripts/start_postgres.sh)"
# Env: LONGREC_PG_PORT (54329), LONGREC_PG_DB (longrec_test), LONGREC_PG_USER (longrec), LONGREC_PG_PASSWORD (longrec).
set -euo pipefail
PORT="${LONGREC_PG_PORT:-54329}"
DB="${LONGREC_PG_DB:-longrec_test}"
USER_="${LONGREC_PG_USER:-longrec}"
PW="${LONGREC_PG_PASSWORD:-longrec}"
CLUSTER=longrec
log() { echo "start_postgres: $*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v pg_createcluster >/dev/null 2>&1; then
  log "installing postgresql from Debian"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >&2
fi
VER="$(ls /usr/lib/postgresql | sort -V | tail -1)"
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$VER $CLUSTER"; then
  log "creating cluster $VER/$CLUSTER on port $PORT"
  as_root pg_createcluster "$VER" "$CLUSTER" -p "$PORT" -- --auth-local=peer --auth-host=scram-sha-256 >&2
  as_root sh -c "echo \"listen_addresses = '127.0.0.1'\" >> /etc/postgresql/$VER/$CLUSTER/postgresql.conf"
fi
PORT="$(pg_lsclusters -h | awk -v v="$VER" -v c="$CLUSTER" '$1==v && $2==c {print $3}')"
if ! pg_lsclusters -h | awk -v v="$VER" -v c="$CLUSTER" '$1==v && $2==c {print $4}' | grep -q online; then
  log "starting cluster $VER/$CLUSTER"
  as_root pg_ctlcluster "$VER" "$CLUSTER" start >&2
fi
for _ in $(seq 1 30); do
  as_pg psql -p "$PORT" -d postgres -Atqc "select 1" >/dev/null 2>&1 && break
  sleep 1
done
if [ "$(as_pg psql -p "$PORT" -d postgres -Atqc "select 1 from pg_roles where rolname='$USER_'")" != 1 ]; then
  as_pg psql -p "$PORT" -d postgres -qc "create role $USER_ login password '$PW'" >&2
fi
if [ "$(as_pg psql -p "$PORT" -d postgres -Atqc "select 1 from pg_database where datname='$DB'")" != 1 ]; then
  as_pg psql -p "$PORT" -d postgres -qc "create database $DB owner $USER_" >&2
fi
echo "postgresql://$USER_:$PW@127.0.0.1:$PORT/$DB"
