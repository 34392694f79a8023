#!/usr/bin/env bash
# scripts/backup.sh OUT_DIR — back up the whole installation (docs/backups.md).
#
# Writes into OUT_DIR (created; must not hold a backup already):
#   roles.sql       the three database roles (segmenta_owner, segmenta_app,
#                   segmenta_platform): their attributes (NOSUPERUSER NOBYPASSRLS…),
#                   password hashes and memberships, from `pg_dumpall --roles-only`,
#                   written so that running it again changes nothing;
#   segmenta.dump   `pg_dump -Fc` of the database: every table with its rows, owners,
#                   grants, row-level security (ENABLE and FORCE) and policies;
#   media.tar.gz    the uploaded and exported files, when MEDIA_DIR is given;
#   backup.txt      what was backed up, when, and with which versions.
# Both hold secrets (password hashes, personal data): keep them like the database.
#
# Settings (environment): PG_HOST (127.0.0.1), PG_PORT (5432), PG_SUPERUSER (postgres;
# it reads every role and row), DB (segmenta), ROLES ("segmenta_owner segmenta_app
# segmenta_platform"), MEDIA_DIR (unset: no files). Authentication as for psql
# (PGPASSWORD, ~/.pgpass, or trust on loopback as scripts/services.sh sets up).
set -euo pipefail
OUT="${1:?usage: scripts/backup.sh OUT_DIR}"
PG_HOST="${PG_HOST:-127.0.0.1}"; PG_PORT="${PG_PORT:-5432}"; PG_SUPERUSER="${PG_SUPERUSER:-postgres}"
DB="${DB:-segmenta}"
ROLES="${ROLES:-segmenta_owner segmenta_app segmenta_platform}"

if [ -e "$OUT/segmenta.dump" ] || [ -e "$OUT/roles.sql" ]; then
  echo "$OUT already holds a backup: give a new folder." >&2; exit 1
fi
mkdir -p "$OUT"
conn=(-h "$PG_HOST" -p "$PG_PORT" -U "$PG_SUPERUSER")

# The roles: only ours, each CREATE made conditional (the restore may run where they
# exist), GRANTs between our roles only, without "GRANTED BY" (another cluster's
# superuser may have another name).
pg_dumpall "${conn[@]}" --roles-only | awk -v roles="$ROLES" '
  BEGIN { n = split(roles, r, " "); for (i = 1; i <= n; i++) ours[r[i]] = 1
          print "-- Segmenta database roles (scripts/backup.sh); safe to run more than once."
          print "SET client_min_messages = warning;" }
  /^CREATE ROLE / { name = $3; sub(/;$/, "", name); gsub(/"/, "", name)
    if (name in ours) printf "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %s) THEN CREATE ROLE \"%s\"; END IF; END $$;\n", "'"'"'" name "'"'"'", name
    next }
  /^ALTER ROLE / { name = $3; gsub(/"/, "", name); if (name in ours) print; next }
  /^GRANT / { role = $2; member = $4; gsub(/"/, "", role); gsub(/"/, "", member); gsub(/;$/, "", member)
    if ((role in ours) && (member in ours)) { line = $0; sub(/ GRANTED BY [^;]*/, "", line); print line }
    next }
' > "$OUT/roles.sql"
for role in $ROLES; do
  grep -q "rolname = '$role'" "$OUT/roles.sql" || { echo "Role $role not found in the cluster." >&2; exit 1; }
done

pg_dump "${conn[@]}" -d "$DB" -Fc -f "$OUT/segmenta.dump"

if [ -n "${MEDIA_DIR:-}" ]; then
  tar -C "$MEDIA_DIR" -czf "$OUT/media.tar.gz" .
fi
{
  echo "database: $DB on $PG_HOST:$PG_PORT"
  echo "taken at: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "roles: $ROLES"
  echo "server: $(psql "${conn[@]}" -d "$DB" -qtAc 'SHOW server_version')"
  echo "pg_dump: $(pg_dump --version)"
  echo "migrations: $(psql "${conn[@]}" -d "$DB" -qtAc 'SELECT count(*) FROM django_migrations' 2>/dev/null || echo unknown)"
  [ -n "${MEDIA_DIR:-}" ] && echo "media: $MEDIA_DIR"
} > "$OUT/backup.txt"
echo "Backed up $DB to $OUT (roles.sql, segmenta.dump$([ -n "${MEDIA_DIR:-}" ] && echo ', media.tar.gz'))." >&2
