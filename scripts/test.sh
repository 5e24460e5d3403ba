#!/usr/bin/env bash
# Quickstart, part two: the whole test suite, after installing everything it needs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh test
# One worker per core; a test file stays on one worker, so its module fixtures (real clusters,
# servers) start once.
exec .venv/bin/python -m pytest -n auto --dist loadfile "$@"
