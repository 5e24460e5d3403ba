#!/usr/bin/env bash
# Bring the prod PostgreSQL cluster (Patroni) back to a moment from its pgBackRest repository:
#   scripts/restore-pitr.sh --stack NAME --to 'YYYY-MM-DD HH:MM:SS+00:00' [--member HOST]
# Checks the moment against the repository before it changes anything, stops the apps, seals the
# WAL archive, stops every member, restores one member to the moment, re-clones the others from it
# and starts the apps again (also when a step fails). The same as `ceres restore-pitr`.
set -euo pipefail
ceres="$(dirname "${BASH_SOURCE[0]}")/../.venv/bin/ceres"
[ -x "$ceres" ] || ceres=ceres
exec "$ceres" restore-pitr "$@"
