"""Helpers for reading a recorded offline run in tests."""

from __future__ import annotations

from cli.offline import OfflineRun, Recorded


def of_type(run: OfflineRun, suffix: str) -> list[Recorded]:
    return [r for r in run.resources if r.type.endswith(suffix)]


def by_name(run: OfflineRun, name: str, suffix: str = "") -> Recorded:
    matches = [r for r in run.resources if r.name == name and r.type.endswith(suffix)]
    assert len(matches) == 1, f"expected one resource {name!r} ({suffix}), found {len(matches)}"
    return matches[0]
