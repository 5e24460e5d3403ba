#!/usr/bin/env bash
# Prove a backup restores, without touching the stack:
#   scripts/restore-drill.sh [--stack NAME] [RUN_ID|latest]
# Starts a throwaway PostgreSQL (the stack's own image) on the stack's data network, restores the
# run's databases into it from inside the backup container, compares every table's row count and
# checksum with the live databases, and removes the throwaway server. Exit 0 only if all match.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/restore-common.sh"
parse_restore_args "$@"
require_backup_container "first"
drill="ceres-${stack}-restore-drill"
# The stack's own PostgreSQL image, which the backup container names (single server or HA cluster).
image="$(docker inspect --format '{{index .Config.Labels "io.ceres.postgres-image"}}' "$backup" 2>/dev/null || true)"
if [ -z "$image" ]; then
  say "$backup does not name the PostgreSQL image (label io.ceres.postgres-image): run 'pulumi up' for stack $stack, then run this again"
  exit 2
fi

# Passed by name (-e VAR), so the password is in no command line.
CERES_DRILL_PGPASSWORD="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
POSTGRES_PASSWORD="$CERES_DRILL_PGPASSWORD"
export CERES_DRILL_PGPASSWORD POSTGRES_PASSWORD

trap 'docker rm -f "$drill" >/dev/null 2>&1 || true' EXIT
docker run -d --name "$drill" --network "ceres-${stack}-data" -e POSTGRES_PASSWORD "$image" >/dev/null
for _ in $(seq 1 60); do
  docker exec "$drill" pg_isready -q -U postgres && break
  sleep 1
done
docker exec "$drill" pg_isready -q -U postgres || { say "the throwaway PostgreSQL did not start within 60 s"; exit 1; }
docker exec -e CERES_DRILL_PGHOST="$drill" -e CERES_DRILL_PGUSER=postgres -e CERES_DRILL_PGPASSWORD \
  "$backup" sh /usr/local/bin/restore-drill.sh "$run"
