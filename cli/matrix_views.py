"""Human views of the integration report: a terminal matrix, an HTML page and a Mermaid graph.

Each renderer takes the document `components.score.integration_report` returns:
`{"score": {"overall": {have, want, percent}, "layers": {layer: {have, want, percent}}},
"edges": [{id, layer, source, target, mechanism, status, reason}]}`.

The grid has one row per edge source and one column per edge target (a service that uses,
and the service it uses), both in order of first appearance in the edge list, so a service
sits at the same relative position on both axes. Configured edges have an empty reason.

Pure functions on plain data, standard library only: no Pulumi import.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

# The report's edge statuses (as `components.score` spells them; repeated here so this module
# needs nothing beyond the standard library), plus the two extra states a grid cell can have.
CONFIGURED, MISSING, NOT_APPLICABLE = "configured", "missing", "not_applicable"
MIXED, EMPTY = "mixed", "empty"

SYMBOLS: dict[str, str] = {
    CONFIGURED: "✅",
    MISSING: "❌",
    MIXED: "◐",
    NOT_APPLICABLE: "➖",
    EMPTY: "—",
}
# The page uses plain glyphs instead: browsers without an emoji font would draw empty boxes.
HTML_SYMBOLS: dict[str, str] = {
    CONFIGURED: "✓",
    MISSING: "✗",
    MIXED: "◐",
    NOT_APPLICABLE: "–",
    EMPTY: "",
}
MEANINGS: dict[str, str] = {
    CONFIGURED: "every edge configured",
    MISSING: "missing",
    MIXED: "some configured, some missing",
    NOT_APPLICABLE: "not applicable to this stack",
    EMPTY: "no edge",
}
COLOURS: dict[str, str] = {
    CONFIGURED: "#a5d6a7",
    MISSING: "#ef9a9a",
    MIXED: "#ffcc80",
    NOT_APPLICABLE: "#d6d6d6",
}
# Four characters keep ~30 columns under 200 terminal columns next to the row names.
HEADER_WIDTH = 4
TITLE = "CERES integration matrix"


def render_text(report: dict, stack: str) -> str:
    """The matrix for a terminal: grid, legend, abbreviation key, score by layer, every edge."""
    edges = report["edges"]
    sections = [
        [f"{TITLE} — stack {stack}", "rows use the service in the column"],
        _text_grid(Grid.of(edges)),
        _text_legend(),
        _text_scores(report["score"]),
        _text_edges(edges, _layer_order(report)),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def render_html(report: dict, stack: str) -> str:
    """One self-contained page: score table, heat map with the edges on hover, edge list."""
    overall = report["score"]["overall"]
    heading = f"{TITLE} — stack {stack}"
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{_esc(heading)} — {_esc(_fraction(overall))}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{_esc(heading)}</h1>",
        f'<p class="overall">Overall: {_esc(_fraction(overall))} edges configured ({_esc(_percent(overall))})</p>',
        "<h2>Score by layer</h2>",
        _html_scores(report["score"]),
        "<h2>Heat map</h2>",
        "<p>Each row uses the service in the column. Hover a cell for its edges.</p>",
        _html_legend(),
        _html_heat_map(Grid.of(report["edges"])),
        "<h2>Edges</h2>",
        _html_edges(report["edges"], _layer_order(report)),
        "</body>",
        "</html>",
        "",
    ])


def render_mermaid(report: dict) -> str:
    """A Mermaid `graph LR`: solid arrows for configured edges, dashed for missing ones.

    Not-applicable edges are omitted from the drawing (an invisible link would still pull the
    layout around) and listed instead in `%%` comments with their reason. Nodes are the
    endpoints of the drawn edges, coloured like a grid cell summarising every drawn edge that
    touches them: green when all are configured, red when none, amber when some.
    """
    edges = report["edges"]
    drawn = [e for e in edges if e["status"] != NOT_APPLICABLE]
    left_out = [e for e in edges if e["status"] == NOT_APPLICABLE]
    endpoints = _endpoints_in_order(drawn)
    node_ids = _assign_unique(endpoints, _mermaid_id_candidates)
    lines = ["graph LR", "  %% solid: configured, dashed: missing; not-applicable edges are listed at the end, not drawn"]
    lines += [f'  {node_ids[name]}["{_mermaid_text(name)}"]' for name in endpoints]
    lines += [
        f'  {node_ids[e["source"]]} {_ARROWS[e["status"]]}|"{_mermaid_text(e["id"])}"| {node_ids[e["target"]]}'
        for e in drawn
    ]
    lines += _mermaid_styles(drawn, node_ids)
    lines += [
        f'  %% not applicable: {e["id"]} ({e["source"]} → {e["target"]}): {_one_line(e["reason"])}'
        for e in left_out
    ]
    return "\n".join(lines) + "\n"


# --- shared: the grid and its cells -------------------------------------------------------


def summarise(statuses: Iterable[str]) -> str:
    """One state for the edges of a cell; not-applicable edges only count when nothing else applies."""
    present = set(statuses)
    applicable = present - {NOT_APPLICABLE}
    if not present:
        return EMPTY
    if not applicable:
        return NOT_APPLICABLE
    if applicable == {CONFIGURED}:
        return CONFIGURED
    return MIXED if CONFIGURED in applicable else MISSING


@dataclass(frozen=True)
class Grid:
    """Sources as rows, targets as columns, the report's edges in each (source, target) cell."""

    sources: list[str]
    targets: list[str]
    cells: dict[tuple[str, str], list[dict]]

    @classmethod
    def of(cls, edges: list[dict]) -> Grid:
        order = _endpoints_in_order(edges)
        sources = {e["source"] for e in edges}
        targets = {e["target"] for e in edges}
        cells: dict[tuple[str, str], list[dict]] = {}
        for e in edges:
            cells.setdefault((e["source"], e["target"]), []).append(e)
        return cls([n for n in order if n in sources], [n for n in order if n in targets], cells)

    def edges(self, source: str, target: str) -> list[dict]:
        return self.cells.get((source, target), [])

    def state(self, source: str, target: str) -> str:
        return summarise(e["status"] for e in self.edges(source, target))


def abbreviations(names: Iterable[str], width: int = HEADER_WIDTH) -> dict[str, str]:
    """A unique code of at most `width` characters per name: short names stay as they are,
    longer ones keep the start of each word, the width shared between the words
    (`keycloak` → `keyc`, `uptime_kuma` → `upku`, `postgres_exporter` → `poex`); clashes get a digit."""
    return _assign_unique(names, lambda name: _abbreviation_candidates(name, width))


def _abbreviation_candidates(name: str, width: int) -> Iterator[str]:
    if len(name) <= width:
        yield name
    words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w][:width] or [name]
    share, extra = divmod(width, len(words))
    code = "".join(word[: share + (1 if i < extra else 0)] for i, word in enumerate(words))
    yield code
    for digit in range(2, 10 ** (width - 1)):
        yield code[: width - len(str(digit))] + str(digit)


def _assign_unique(names: Iterable[str], candidates: Callable[[str], Iterable[str]]) -> dict[str, str]:
    """Give each name its first candidate no earlier name took, in the names' order."""
    taken: dict[str, str] = {}
    for name in dict.fromkeys(names):
        taken[name] = next(c for c in candidates(name) if c not in taken.values())
    return taken


def _endpoints_in_order(edges: list[dict]) -> list[str]:
    return list(dict.fromkeys(name for e in edges for name in (e["source"], e["target"])))


def _layer_order(report: dict) -> list[str]:
    """The score's layer order (the catalog's), then any layer only the edges name."""
    return list(dict.fromkeys([*report["score"]["layers"], *(e["layer"] for e in report["edges"])]))


def _fraction(tally: dict) -> str:
    return f"{tally['have']}/{tally['want']}"


def _percent(tally: dict) -> str:
    return "n/a" if tally["percent"] is None else f"{tally['percent']:.1f}%"


# --- text ---------------------------------------------------------------------------------


def _display_width(text: str) -> int:
    """Terminal columns: emoji such as ✅ take two, most other characters one."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _centre(text: str, width: int) -> str:
    room = max(0, width - _display_width(text))
    return " " * (room // 2) + text + " " * (room - room // 2)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _display_width(text))


def _text_grid(grid: Grid) -> list[str]:
    codes = abbreviations(grid.targets)
    label_width = max(map(len, grid.sources), default=0) + 2
    header = " " * label_width + " ".join(_centre(codes[t], HEADER_WIDTH) for t in grid.targets)
    rows = [
        _pad(source, label_width)
        + " ".join(_centre(SYMBOLS[grid.state(source, target)], HEADER_WIDTH) for target in grid.targets)
        for source in grid.sources
    ]
    return [line.rstrip() for line in (header, *rows)] + ["", *_text_key(codes)]


def _text_key(codes: dict[str, str]) -> list[str]:
    """The column codes that differ from their names, several to a line."""
    entries = [f"{code} = {name}" for name, code in codes.items() if code != name]
    per_line, prefix = 5, "columns: "
    chunks = ["   ".join(entries[i:i + per_line]) for i in range(0, len(entries), per_line)]
    return [(prefix if i == 0 else " " * len(prefix)) + chunk for i, chunk in enumerate(chunks)]


def _text_legend() -> list[str]:
    return ["legend: " + "   ".join(f"{SYMBOLS[state]} {MEANINGS[state]}" for state in SYMBOLS)]


def _text_scores(score: dict) -> list[str]:
    rows = [(layer, tally) for layer, tally in score["layers"].items()] + [("overall", score["overall"])]
    name_width = max(len(name) for name, _ in rows) + 2
    fraction_width = max(len(_fraction(tally)) for _, tally in rows) + 2
    return ["score by layer"] + [
        f"  {name:<{name_width}}{_fraction(tally):<{fraction_width}}{_percent(tally):>6}".rstrip()
        for name, tally in rows
    ]


def _text_edges(edges: list[dict], layers: list[str]) -> list[str]:
    status_width = max((len(_bracketed(e)) for e in edges), default=0) + 2
    id_width = max((len(e["id"]) for e in edges), default=0) + 2
    ends_width = max((len(_ends(e)) for e in edges), default=0) + 2
    lines = ["edges by layer"]
    for layer in layers:
        in_layer = [e for e in edges if e["layer"] == layer]
        if in_layer:
            lines.append(f"  {layer}")
        for e in in_layer:
            lines.append(f"    {_bracketed(e):<{status_width}}{e['id']:<{id_width}}{_ends(e):<{ends_width}}{e['mechanism']}")
            if e["reason"]:
                lines.append(" " * (4 + status_width) + "↳ " + e["reason"])
    return lines


def _bracketed(edge: dict) -> str:
    return f"[{edge['status']}]"


def _ends(edge: dict) -> str:
    return f"{edge['source']} → {edge['target']}"


# --- HTML ---------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1b1b1b; }
h1 { margin-bottom: 0.2rem; }
.overall { font-size: 1.2rem; margin-top: 0; }
table { border-collapse: collapse; margin-bottom: 1.5rem; }
th, td { border: 1px solid #c4c4c4; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
.score td.number { text-align: right; }
.heat td { width: 1.6rem; height: 1.6rem; padding: 0; text-align: center; vertical-align: middle; }
.heat th.target { vertical-align: bottom; padding: 0.4rem 0.1rem; }
.heat th.target span { writing-mode: vertical-rl; transform: rotate(180deg); white-space: nowrap; }
.heat th.source, .edges .id, .edges .ends { white-space: nowrap; }
.legend span { display: inline-block; padding: 0.1rem 0.5rem; margin-right: 0.5rem; border: 1px solid #c4c4c4; }
""" + "".join(f".{state} {{ background: {colour}; }}\n" for state, colour in COLOURS.items())


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_scores(score: dict) -> str:
    rows = [(layer, tally) for layer, tally in score["layers"].items()] + [("overall", score["overall"])]
    body = "".join(
        f"<tr><th>{_esc(name)}</th><td class=\"number\">{tally['have']}</td>"
        f"<td class=\"number\">{tally['want']}</td><td class=\"number\">{_esc(_percent(tally))}</td></tr>\n"
        for name, tally in rows
    )
    return (
        '<table class="score">\n<tr><th>Layer</th><th>Configured</th><th>Wanted</th><th>Percent</th></tr>\n'
        f"{body}</table>"
    )


def _html_legend() -> str:
    spans = "".join(
        f'<span class="{state}">{_esc(f"{HTML_SYMBOLS[state]} {MEANINGS[state]}".strip())}</span>' for state in HTML_SYMBOLS
    )
    return f'<p class="legend">{spans}</p>'


def _html_heat_map(grid: Grid) -> str:
    header = '<tr><th></th>' + "".join(
        f'<th class="target" scope="col"><span>{_esc(target)}</span></th>' for target in grid.targets
    ) + "</tr>"
    rows = [
        f'<tr><th class="source" scope="row">{_esc(source)}</th>'
        + "".join(_html_cell(grid, source, target) for target in grid.targets)
        + "</tr>"
        for source in grid.sources
    ]
    return '<table class="heat">\n' + "\n".join([header, *rows]) + "\n</table>"


def _html_cell(grid: Grid, source: str, target: str) -> str:
    state = grid.state(source, target)
    if state == EMPTY:
        return "<td></td>"
    hover = "\n".join(_hover_line(e) for e in grid.edges(source, target))
    return f'<td class="{state}" title="{_esc(hover)}">{_esc(HTML_SYMBOLS[state])}</td>'


def _hover_line(edge: dict) -> str:
    status = edge["status"]
    detail = f"{status}: {edge['reason']}" if edge["reason"] else status
    return f"{edge['id']}: {edge['mechanism']} ({detail})"


def _html_edges(edges: list[dict], layers: list[str]) -> str:
    header = "<tr><th>Layer</th><th>Status</th><th>Edge</th><th>Source → target</th><th>Mechanism</th><th>Reason</th></tr>"
    rows = [
        f"<tr><td>{_esc(e['layer'])}</td><td class=\"{_esc(e['status'])}\">{_esc(e['status'])}</td>"
        f"<td class=\"id\">{_esc(e['id'])}</td><td class=\"ends\">{_esc(_ends(e))}</td><td>{_esc(e['mechanism'])}</td>"
        f"<td>{_esc(e['reason'])}</td></tr>"
        for layer in layers
        for e in edges
        if e["layer"] == layer
    ]
    return '<table class="edges">\n' + "\n".join([header, *rows]) + "\n</table>"


# --- Mermaid ------------------------------------------------------------------------------

_ARROWS: dict[str, str] = {CONFIGURED: "-->", MISSING: "-.->"}
_MERMAID_STROKES: dict[str, str] = {CONFIGURED: "#2e7d32", MISSING: "#c62828", MIXED: "#ef6c00"}


def _mermaid_id_candidates(name: str) -> Iterator[str]:
    # The prefix keeps ids clear of Mermaid keywords (`end`, `graph`, `class`) and of the
    # `o`/`x` arrow heads a bare id such as `oauth2_proxy` could be read as.
    base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", name)
    yield base
    for number in range(2, 1000):
        yield f"{base}_{number}"


def _mermaid_text(text: str) -> str:
    """Text inside a quoted Mermaid label: a double quote would end it, so use the entity."""
    return _one_line(text).replace('"', "#quot;")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _mermaid_styles(drawn: list[dict], node_ids: dict[str, str]) -> list[str]:
    lines = [
        f"  classDef {state} fill:{COLOURS[state]},stroke:{stroke},color:#1b1b1b"
        for state, stroke in _MERMAID_STROKES.items()
    ]
    node_states = {
        name: summarise(e["status"] for e in drawn if name in (e["source"], e["target"]))
        for name in node_ids
    }
    for state in _MERMAID_STROKES:
        members = [node_ids[name] for name, s in node_states.items() if s == state]
        if members:
            lines.append(f"  class {','.join(members)} {state}")
    # linkStyle addresses links by their position in the source, which is their order in `drawn`.
    for status in _ARROWS:
        indexes = [str(i) for i, e in enumerate(drawn) if e["status"] == status]
        if indexes:
            stroke = _MERMAID_STROKES[status]
            lines.append(f"  linkStyle {','.join(indexes)} stroke:{stroke},stroke-width:2px,color:{stroke}")
    return lines
