#!/usr/bin/env bash
# Bring a CERES stack's data back from its backups with one command:
#   scripts/restore-full.sh [--stack NAME] [RUN_ID|latest]
# Stops the stack's containers except the data tier and the backup, restores every database and
# volume of the run inside the backup container (which checks the repository, the run and the
# database before it changes anything), prints what it restored, and starts the containers again,
# also when the restore fails. Works on a running stack and on a fresh one after `pulumi up`.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib/restore-common.sh"
parse_restore_args "$@"
require_backup_container "(a fresh stack restores too), then run this again"

# Whatever writes what is restored stops first; the data tier (restored through: PostgreSQL or the
# HA members, Redis, HAProxy) and the backup carry io.ceres.restore=keep-running and stay up.
apps=()
while IFS=$'\t' read -r name keep; do
  [ "$keep" = "keep-running" ] || apps+=("$name")
done < <(docker ps --filter "label=io.ceres.stack=${stack}" --format '{{.Names}}	{{.Label "io.ceres.restore"}}')

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
