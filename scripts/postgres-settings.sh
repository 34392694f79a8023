#!/usr/bin/env bash
# PostgreSQL settings for an installation that holds big organisations (issue 15).
#
# A fresh PostgreSQL starts with settings sized for a small machine: 128 MB of shared
# buffers, 4 MB of memory per sort or hash (a bigger one spills to disk) and a
# checkpoint forced after every 1 GB of write-ahead log (a pipeline run of a
# million customers writes several). This sets them from the machine's memory, with
# ALTER SYSTEM (kept in postgresql.auto.conf), then restarts the local server when
# shared_buffers changed (pg_ctlcluster, as scripts/services.sh starts it) or reloads
# it otherwise. docs/scaling.md gives the pipeline's times with and without them.
#
#   bash scripts/postgres-settings.sh          # apply
#   bash scripts/postgres-settings.sh --show   # print the statements only
#   bash scripts/postgres-settings.sh --reset  # back to the server's defaults
#
# Idempotent. Needs the PostgreSQL superuser (PG_SUPERUSER, default postgres).
set -euo pipefail
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_SUPERUSER="${PG_SUPERUSER:-postgres}"
MODE="${1:-apply}"

mem_mb=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
# a quarter of memory for shared buffers (at most 8 GB), three quarters as the cache
# the planner may count on; the rest as the usual guides for a mixed web and batch load
shared=$(( mem_mb / 4 > 8192 ? 8192 : mem_mb / 4 ))
settings=(
  "shared_buffers=${shared}MB"
  "effective_cache_size=$(( mem_mb * 3 / 4 ))MB"
  "work_mem=32MB"
  "maintenance_work_mem=$(( mem_mb / 16 > 2048 ? 2048 : mem_mb / 16 ))MB"
  "max_wal_size=8GB"
  "min_wal_size=1GB"
  "checkpoint_timeout=15min"
  "checkpoint_completion_target=0.9"
  "wal_buffers=64MB"
  "random_page_cost=1.1"
  "autovacuum=on"
)

psql_su() { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -d postgres -v ON_ERROR_STOP=1 -qtA "$@"; }

if [ "$MODE" = "--show" ]; then
  for s in "${settings[@]}"; do echo "ALTER SYSTEM SET ${s%%=*} = '${s#*=}';"; done
  exit 0
fi

before=$(psql_su -c "SHOW shared_buffers")
if [ "$MODE" = "--reset" ]; then
  for s in "${settings[@]}"; do psql_su -c "ALTER SYSTEM RESET ${s%%=*}"; done
else
  for s in "${settings[@]}"; do psql_su -c "ALTER SYSTEM SET ${s%%=*} = '${s#*=}'"; done
fi
psql_su -c "SELECT pg_reload_conf()" >/dev/null
pending=$(psql_su -c "SELECT count(*) FROM pg_settings WHERE pending_restart")
if [ "$pending" != "0" ]; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    version="$(ls /etc/postgresql | head -1)"
    echo "Restarting PostgreSQL $version for shared_buffers / wal_buffers…" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main restart
    for _ in $(seq 1 30); do pg_isready -h "$PG_HOST" -p "$PG_PORT" -q && break; sleep 1; done
  else
    echo "Restart PostgreSQL for shared_buffers and wal_buffers to take effect." >&2
  fi
fi
echo "shared_buffers: $before -> $(psql_su -c "SHOW shared_buffers")"
psql_su -c "SELECT name || ' = ' || setting || COALESCE(' ' || unit, '') FROM pg_settings WHERE name IN ('work_mem', 'maintenance_work_mem', 'max_wal_size', 'effective_cache_size', 'checkpoint_timeout', 'autovacuum') ORDER BY name"
