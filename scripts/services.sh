#!/usr/bin/env bash
# Make sure local PostgreSQL and Redis run, and create the three database roles:
#   segmenta_owner    — runs migrations and owns the tables;
#   segmenta_app      — what the site and workers connect as: not superuser, no BYPASSRLS
#                       (CREATEDB only so the test runner can create its test database);
#                       row-level security binds it to one organisation and nothing it
#                       can set lifts that;
#   segmenta_platform — used only by platform code that must see every organisation
#                       (the admin back office, cross-organisation jobs): the policies
#                       admit it to every row. It is a member of segmenta_app (never the
#                       reverse), so the test suite can log in as the platform and step
#                       down to the app role for each statement made in a tenant scope
#                       (segmenta_owner too, for when the owner plays the platform).
# Idempotent: running it again changes nothing.
set -euo pipefail
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_SUPERUSER="${PG_SUPERUSER:-postgres}"
DB="${SERVICES_DB:-segmenta}"

if ! pg_isready -h "$PG_HOST" -p "$PG_PORT" -q 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "Starting PostgreSQL…" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    for _ in $(seq 1 30); do pg_isready -h "$PG_HOST" -p "$PG_PORT" -q && break; sleep 1; done
  fi
fi
pg_isready -h "$PG_HOST" -p "$PG_PORT" -q || { echo "PostgreSQL is not running on $PG_HOST:$PG_PORT" >&2; exit 1; }

if ! (command -v redis-cli >/dev/null && redis-cli -h 127.0.0.1 ping >/dev/null 2>&1); then
  if command -v redis-server >/dev/null; then
    echo "Starting Redis…" >&2
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
    sleep 1
  fi
fi
redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 || { echo "Redis is not running on 127.0.0.1:6379" >&2; exit 1; }

psql_su() { psql -h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER" -v ON_ERROR_STOP=1 -qtA "$@"; }
psql_su -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'segmenta_owner') THEN
    CREATE ROLE segmenta_owner LOGIN PASSWORD 'segmenta_owner' CREATEDB;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'segmenta_app') THEN
    CREATE ROLE segmenta_app LOGIN PASSWORD 'segmenta_app' NOSUPERUSER NOBYPASSRLS CREATEDB;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'segmenta_platform') THEN
    CREATE ROLE segmenta_platform LOGIN PASSWORD 'segmenta_platform' NOSUPERUSER NOBYPASSRLS CREATEDB;
  END IF;
END \$\$;
ALTER ROLE segmenta_app NOSUPERUSER NOBYPASSRLS;
ALTER ROLE segmenta_platform NOSUPERUSER NOBYPASSRLS;
GRANT segmenta_app TO segmenta_platform;
-- Without DATABASE_PLATFORM_URL the owner plays the platform (the test suite steps down from it too).
GRANT segmenta_app TO segmenta_owner;
SQL
if ! psql_su -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  psql_su -d postgres -c "CREATE DATABASE $DB OWNER segmenta_owner"
fi
echo "PostgreSQL roles segmenta_owner / segmenta_app / segmenta_platform and database $DB are ready; Redis answers." >&2
