#!/usr/bin/env bash
# Bring a CERES stack's data back from its backups with one command:
#   scripts/restore-full.sh [--stack NAME] [RUN_ID|latest]
# Stops the stack's containers except PostgreSQL and the backup, restores every database and
# volume of the run inside the backup container (which checks the repository, the run and the
# database before it changes anything), prints what it restored, and starts the containers again,
# also when the restore fails. Works on a running stack and on a fresh one after `pulumi up`.
set -euo pipefail

stack="dev"
run="latest"
while [ $# -gt 0 ]; do
  case "$1" in
    --stack) stack="${2:?--stack needs a stack name}"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) run="$1"; shift ;;
  esac
done

say() { echo "restore-full: $*" >&2; }
backup="ceres-${stack}-backup"

if ! command -v docker >/dev/null 2>&1; then
  say "docker is not on PATH: run this on the apps host (or set DOCKER_HOST to it)"
  exit 2
fi
if [ "$(docker inspect --format '{{.State.Running}}' "$backup" 2>/dev/null)" != "true" ]; then
  say "the backup container $backup is not running: run 'pulumi up' for stack $stack (a fresh stack restores too), then run this again"
  exit 2
fi

# Whatever writes what is restored stops first; PostgreSQL (restored through) and the backup stay up.
apps=()
while IFS=$'\t' read -r name service; do
  case "$service" in postgres|backup) ;; *) apps+=("$name") ;; esac
done < <(docker ps --filter "label=io.ceres.stack=${stack}" --format '{{.Names}}	{{.Label "io.ceres.service"}}')

restart() {
  if [ ${#apps[@]} -gt 0 ]; then
    say "starting ${#apps[@]} containers again"
    docker start "${apps[@]}" >/dev/null
  fi
}
trap restart EXIT

if [ ${#apps[@]} -gt 0 ]; then
  say "stopping ${#apps[@]} containers: ${apps[*]}"
  docker stop "${apps[@]}" >/dev/null
fi
docker exec "$backup" sh /usr/local/bin/restore-full.sh "$run"
