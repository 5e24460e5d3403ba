"""Golden snapshots of each stack's graph and score: any change to what deploys shows as a diff.

After an intended change, refresh them with `CERES_UPDATE_GOLDEN=1 .venv/bin/pytest tests/cli/test_golden.py`
and review `git diff tests/golden/` like any other code.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cli.plan import plan_document

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_plan_matches_its_golden_snapshot(stack, offline):
    document = plan_document(offline(stack))
    text = json.dumps(document, indent=2, sort_keys=True) + "\n"
    golden = GOLDEN / f"plan-{stack}.json"
    if os.environ.get("CERES_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert golden.exists(), f"no snapshot {golden.name}: run with CERES_UPDATE_GOLDEN=1 once"
    assert json.loads(golden.read_text()) == json.loads(text), f"{stack} plan changed: review, then refresh {golden.name}"
