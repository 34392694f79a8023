#!/usr/bin/env bash
# scripts/restore.sh BACKUP_DIR NEW_DB — restore a whole-installation backup made by
# scripts/backup.sh into a new database (docs/backups.md).
#
# 1. roles.sql: creates the three roles where they do not exist (a new cluster) and
#    sets their attributes, passwords and memberships (on the same cluster: as before);
# 2. creates NEW_DB owned by segmenta_owner (refuses if it exists);
# 3. pg_restore of segmenta.dump into it: tables, rows, owners, grants, row-level
#    security and policies as they were;
# 4. checks that every table that had row-level security still has it ENABLED and
#    FORCED with its policies, and that segmenta_app is neither superuser nor BYPASSRLS;
# 5. unpacks media.tar.gz into MEDIA_DIR when both are there.
# Then point DATABASE_URL / DATABASE_OWNER_URL / DATABASE_PLATFORM_URL at NEW_DB.
#
# Settings (environment): PG_HOST, PG_PORT, PG_SUPERUSER as for scripts/backup.sh;
# JOBS (2: parallel restore jobs); MEDIA_DIR (unset: files not restored).
set -euo pipefail
IN="${1:?usage: scripts/restore.sh BACKUP_DIR NEW_DB}"
NEW_DB="${2:?usage: scripts/restore.sh BACKUP_DIR NEW_DB}"
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_SUPERUSER="${PG_SUPERUSER:-postgres}"
JOBS="${JOBS:-2}"
[ -f "$IN/segmenta.dump" ] && [ -f "$IN/roles.sql" ] || { echo "$IN holds no backup (roles.sql, segmenta.dump)." >&2; exit 1; }
[[ "$NEW_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || { echo "NEW_DB: lower-case letters, digits and _ only." >&2; exit 1; }
conn=(-h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER")
psql_su() { psql "${conn[@]}" -v ON_ERROR_STOP=1 -qtA "$@"; }

psql_su -d postgres -f "$IN/roles.sql" >/dev/null
if [ -n "$(psql_su -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$NEW_DB'")" ]; then
  echo "Database $NEW_DB exists: restore into a new one." >&2; exit 1
fi
psql_su -d postgres -c "CREATE DATABASE \"$NEW_DB\" OWNER segmenta_owner"
pg_restore "${conn[@]}" -d "$NEW_DB" --exit-on-error -j "$JOBS" "$IN/segmenta.dump"

# The checks: row-level security as the dump had it, the app role still bound by it.
expected=$(pg_restore -l "$IN/segmenta.dump" | grep -c " POLICY " || true)
policies=$(psql_su -d "$NEW_DB" -c "SELECT count(*) FROM pg_policies WHERE schemaname = 'public'")
unforced=$(psql_su -d "$NEW_DB" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relrowsecurity AND NOT c.relforcerowsecurity")
rls=$(psql_su -d "$NEW_DB" -c "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relrowsecurity AND c.relforcerowsecurity")
app=$(psql_su -d postgres -c "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = 'segmenta_app'")
if [ "$policies" != "$expected" ] || [ "$unforced" != 0 ] || [ "$app" != f ]; then
  echo "Restored, but row-level security is not as backed up: $policies policies of $expected," \
       "$unforced tables not forced, segmenta_app superuser or BYPASSRLS: $app." >&2
  exit 1
fi
if [ -n "${MEDIA_DIR:-}" ] && [ -f "$IN/media.tar.gz" ]; then
  mkdir -p "$MEDIA_DIR" && tar -C "$MEDIA_DIR" -xzf "$IN/media.tar.gz"
fi
echo "Restored into $NEW_DB: $rls tables under forced row-level security, $policies policies." >&2
