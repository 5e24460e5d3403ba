#!/usr/bin/env bash
# Prove a backup restores, without touching the stack:
#   scripts/restore-drill.sh [--stack NAME] [RUN_ID|latest]
# Starts a throwaway PostgreSQL (the stack's own image) on the stack's data network, restores the
# run's databases into it from inside the backup container, compares every table's row count and
# checksum with the live databases, and removes the throwaway server. Exit 0 only if all match.
set -euo pipefail

stack="dev"
run="latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack="${2:?--stack needs a stack name}"; shift 2 ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) run="$1"; shift ;;
  esac
done

say() { echo "restore-drill: $*" >&2; }
backup="ceres-${stack}-backup"
drill="ceres-${stack}-restore-drill"

if ! command -v docker >/dev/null 2>&1; then
  say "docker is not on PATH: run this on the apps host (or set DOCKER_HOST to it)"
  exit 2
fi
if [ "$(docker inspect --format '{{.State.Running}}' "$backup" 2>/dev/null)" != "true" ]; then
  say "the backup container $backup is not running: run 'pulumi up' for stack $stack first"
  exit 2
fi
image="$(docker inspect --format '{{.Config.Image}}' "ceres-${stack}-postgres" 2>/dev/null)" || {
  say "no ceres-${stack}-postgres container to take the image from: is the stack up?"
  exit 2
}

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
