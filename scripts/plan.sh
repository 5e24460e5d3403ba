#!/usr/bin/env bash
# Quickstart, part one: the offline plan of the dev stack and its integration matrix.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/ceres plan --stack "${1:-dev}"
echo
.venv/bin/ceres matrix --stack "${1:-dev}"
