#!/usr/bin/env bash
# Quickstart, part two: the whole test suite, after installing everything it needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
