"""PromQL checked by the real parser: Debian's `promtool check rules` (package `prometheus`, 2.42).

    from tests.components.config.promql_check import promql_problems
    assert promql_problems(["sum(rate(x[5m]))", ...]) == []

Each expression becomes a recording rule in a group of its own, so every problem promtool
reports names the expression it belongs to. Grafana template variables (`$__rate_interval`,
`$job`) are not PromQL: substitute values before checking.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import pytest
import yaml

TIMEOUT = 30
_PROBLEM = re.compile(r'group "expr-(\d+)", rule \d+, "[^"]*": (.*)')


def promtool() -> str:
    """promtool's path; fails the calling test (never skips it) when it is not installed."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `apt-get install -y prometheus` (Debian ships promtool in that package)")
    return path


def promql_problems(expressions: Sequence[str]) -> list[str]:
    """promtool's complaints, one string each naming its expression; [] when every one parses."""
    if not expressions:
        return []
    groups = [{"name": f"expr-{index}", "rules": [{"record": f"ceres_check:expr_{index}", "expr": expression}]}
              for index, expression in enumerate(expressions)]
    with tempfile.TemporaryDirectory(prefix="promql-check-") as directory:
        rules = Path(directory) / "expressions.yml"
        rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        result = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True,
                                timeout=TIMEOUT)
    if result.returncode == 0:
        return []
    problems = []
    for line in (result.stdout + result.stderr).splitlines():
        found = _PROBLEM.search(line)
        if found:
            problems.append(f"{expressions[int(found.group(1))]!r}: {found.group(2)}")
    return problems or [f"promtool check rules failed: {result.stdout}{result.stderr}"]
