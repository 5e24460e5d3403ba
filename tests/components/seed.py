"""Reads the seed plan (docs/seed/INTEGRATION_MATRIX.md) the way a reviewer does:
the matrix's marked cells and each category list's items, named as the catalog's `seed` refs name them.
"""

from __future__ import annotations

import re
from pathlib import Path

SEED = Path(__file__).resolve().parents[2] / "docs" / "seed" / "INTEGRATION_MATRIX.md"
MARKS = ("✅", "⚠️", "❌")
_BOX = "│├└┌┐┘─→┬┴┤"
# Lines in a category box that carry a mark but are commentary, not an integration.
_COMMENTARY = ("SCORE", "STATUS", "ACTION", "RECOMMENDATION", "ISSUES", "PROBLEM", "SOLUTION", "WORKFLOW", "[ ]")
_EXTRA_ROWS = ("Caddy", "Uptime Kuma", "Portainer")


def _blocks(text: str) -> list[str]:
    return re.findall(r"```\n(.*?)```", text, flags=re.S)


def matrix_cells(text: str | None = None) -> dict[frozenset[str], set[str]]:
    """Unordered pair of services -> the marks its two cells carry (only marked pairs)."""
    block = _blocks(text or SEED.read_text())[0]
    lines = block.splitlines()
    columns = lines[0].split()
    cells: dict[frozenset[str], set[str]] = {}
    for line in lines[1:]:
        if not line.strip() or line.startswith("LEGEND"):
            break
        row = next(name for name in [*columns, *_EXTRA_ROWS] if line.startswith(name + " "))
        tokens = [t for t in line[len(row):].split() if t != "ADD"]
        assert len(tokens) == len(columns), f"row {row}: {len(tokens)} cells for {len(columns)} columns"
        for column, token in zip(columns, tokens):
            mark = next((m for m in MARKS if token.startswith(m.rstrip("\ufe0f"))), None)
            if mark:
                cells.setdefault(frozenset((row, column)), set()).add(mark)
    return cells


def category_items(text: str | None = None) -> list[str]:
    """Every marked item of the category lists, as `§N SUBJECT: label`."""
    text = text or SEED.read_text()
    items = []
    for number, body in re.findall(r"^### (\d)\. .*?\n\n```\n(.*?)```", text, flags=re.S | re.M):
        subject = ""
        for raw in body.splitlines():
            line = raw.strip(" " + _BOX).strip()
            if not line or line.startswith(("(", "•")) or line[:1].isdigit():
                continue
            mark = next((m for m in MARKS if m.rstrip("\ufe0f") in line), None)
            if line.startswith(_COMMENTARY):
                continue
            if mark is None:
                subject = re.split(r"\s+\(", line)[0]
                continue
            label = line.split(mark.rstrip("\ufe0f"), 1)[1].lstrip("\ufe0f ").strip()
            label = re.split(r"\s+→|\s+\(|\s{2,}", label)[0].strip()
            items.append(f"§{number} {subject}: {label}")
    return items
