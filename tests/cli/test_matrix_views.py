"""The three human views of the integration report, built from the real catalog and score."""

from __future__ import annotations

import copy
import re
import unicodedata
from html.parser import HTMLParser

import pytest

from cli.matrix_views import abbreviations, render_html, render_mermaid, render_text
from components.catalog import EDGES
from components.score import integration_report
from stacks.load import load_spec

BUILT = {"db-gitea", "sso-gitea"}
ARROW = re.compile(r"^\s*(\S+) (-->|-\.->)\|\"([^\"]+)\"\| (\S+)$")


@pytest.fixture(scope="module")
def spec():
    return load_spec("dev", {"ceres:domain": "ceres.localhost"})


@pytest.fixture(scope="module")
def report(spec):
    return integration_report(spec, BUILT)


def _tiny_report(**edge_fields) -> dict:
    """A one-edge report, for what the real catalog cannot show (markup in text, no wanted edge)."""
    edge = {
        "id": "e-1", "layer": "identity", "source": "a", "target": "b",
        "mechanism": "m", "status": "missing", "reason": "r", **edge_fields,
    }
    return {
        "score": {"overall": {"have": 0, "want": 0, "percent": None},
                  "layers": {"identity": {"have": 0, "want": 0, "percent": None}}},
        "edges": [edge],
    }


# --- text ---------------------------------------------------------------------------------


def _text_grid(text: str) -> dict[tuple[str, str], str]:
    """(source, target) → symbol, read back through the column key as a user would."""
    sections = text.split("\n\n")
    header, *rows = sections[1].splitlines()
    key = dict(re.findall(r"(\S+) = (\S+)", sections[2]))
    targets = [key.get(code, code) for code in header.split()]
    cells = {}
    for row in rows:
        source, *symbols = row.split()
        assert len(symbols) == len(targets), row
        cells.update({(source, target): symbol for target, symbol in zip(targets, symbols)})
    return cells


def _display_width(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def test_text_names_the_stack_and_lists_every_catalog_edge(report):
    text = render_text(report, "dev")
    assert text.splitlines()[0] == "CERES integration matrix — stack dev"
    for edge in EDGES:
        assert edge.id in text


def test_text_grid_shows_each_cell_state(spec, report):
    cells = _text_grid(render_text(report, "dev"))
    assert cells["gitea", "postgres"] == "✅"
    assert cells["mattermost", "redis"] == "➖"  # cache-mattermost: Team Edition in dev
    assert cells["nextcloud", "postgres"] == "❌"
    assert cells["postgres", "gitea"] == "—"
    # caddy → nextcloud carries route-nextcloud and webdav-nextcloud: one built, one not.
    mixed = _text_grid(render_text(integration_report(spec, {"route-nextcloud"}), "dev"))
    assert mixed["caddy", "nextcloud"] == "◐"


def test_text_grid_has_a_row_per_source_and_a_column_per_target(report):
    cells = _text_grid(render_text(report, "dev"))
    assert {source for source, _ in cells} == {e["source"] for e in report["edges"]}
    assert {target for _, target in cells} == {e["target"] for e in report["edges"]}


def test_text_grid_stays_narrow(report):
    grid = render_text(report, "dev").split("\n\n")[1]
    assert max(_display_width(line) for line in grid.splitlines()) < 200


def test_text_scores_every_layer_and_overall(report):
    text = render_text(report, "dev")
    assert re.search(r"^  identity +1/8 +12\.5%$", text, re.MULTILINE)
    assert re.search(r"^  overall +2/73 +2\.7%$", text, re.MULTILINE)
    assert re.search(r"^  identity +0/0 +n/a$", render_text(_tiny_report(), "x"), re.MULTILINE)


def test_text_gives_the_reason_under_missing_and_not_applicable_edges(report):
    lines = render_text(report, "dev").splitlines()
    by_id = {e["id"]: e for e in report["edges"]}
    for index, line in enumerate(lines):
        match = re.match(r"^    \[(\w+)\] +(\S+) +(\S+) → (\S+) +(.+)$", line)
        if not match:
            continue
        status, edge_id, source, target, mechanism = match.groups()
        edge = by_id[edge_id]
        assert (status, source, target, mechanism) == (edge["status"], edge["source"], edge["target"], edge["mechanism"])
        if status == "configured":
            assert not lines[index + 1].strip().startswith("↳")
        else:
            assert lines[index + 1].strip() == f"↳ {edge['reason']}"


def test_abbreviations_are_short_and_unique():
    names = ["postgres", "postgres_exporter", "redis", "redis_exporter", "redis_sentinel", "keycloak", "keycloak_x"]
    codes = abbreviations(names)
    assert all(len(code) <= 4 for code in codes.values())
    assert len(set(codes.values())) == len(names)
    assert codes["redis"] == "redi" and codes["postgres_exporter"] == "poex"


# --- HTML ---------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Records open table tags, outside references and the heat map's cells."""

    TRACKED = {"table", "tr", "td", "th"}

    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.references: list[str] = []
        self.tags: set[str] = set()
        self.tables: list[list[list[tuple[str, dict, str]]]] = []
        self.text_now: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.add(tag)
        self.references += [attributes[a] for a in ("src", "href") if attributes.get(a)]
        if tag in self.TRACKED:
            self.open.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][-1].append((tag, attributes, ""))

    def handle_endtag(self, tag):
        if tag in self.TRACKED:
            assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
            self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1] in ("td", "th"):
            tag, attributes, text = self.tables[-1][-1][-1]
            self.tables[-1][-1][-1] = (tag, attributes, text + data)


def _parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def _heat_cells(page: _Page) -> dict[tuple[str, str], dict]:
    """(source, target) → the td's attributes, from the table whose first row heads the targets."""
    heat = next(t for t in page.tables if t[0][1:] and t[0][1][1].get("class") == "target")
    targets = [text for _, _, text in heat[0][1:]]
    return {
        (row[0][2], target): attributes
        for row in heat[1:]
        for target, (_, attributes, _) in zip(targets, row[1:])
    }


def test_html_is_balanced_self_contained_and_lists_every_edge(report):
    page_text = render_html(report, "dev")
    page = _parse(page_text)
    assert page.open == []
    assert "script" not in page.tags and "<script" not in page_text.lower()
    assert not [r for r in page.references if re.match(r"(https?:)?//", r)]
    assert not re.search(r"url\(\s*['\"]?(https?:)?//", page_text)
    assert "CERES integration matrix — stack dev" in page_text
    for edge in EDGES:
        assert edge.id in page_text


def test_html_heat_map_cells_carry_state_and_edges_on_hover(report):
    cells = _heat_cells(_parse(render_html(report, "dev")))
    gitea_postgres = cells["gitea", "postgres"]
    assert gitea_postgres["class"] == "configured"
    assert "db-gitea: own PostgreSQL database and role, created on the PostgreSQL side" in gitea_postgres["title"]
    assert cells["mattermost", "redis"]["class"] == "not_applicable"
    assert "Team Edition" in cells["mattermost", "redis"]["title"]
    assert cells["nextcloud", "postgres"]["class"] == "missing"
    assert "title" not in cells["postgres", "gitea"]


def test_html_hover_lists_every_edge_of_a_shared_cell(spec):
    cells = _heat_cells(_parse(render_html(integration_report(spec, {"route-nextcloud"}), "dev")))
    caddy_nextcloud = cells["caddy", "nextcloud"]
    assert caddy_nextcloud["class"] == "mixed"
    lines = caddy_nextcloud["title"].splitlines()
    assert [line.split(":")[0] for line in lines] == ["webdav-nextcloud", "route-nextcloud"]
    assert lines[0].endswith("(missing: not built by this version of CERES yet)")
    assert lines[1] == "route-nextcloud: HTTPS site on Caddy (configured)"


def test_html_escapes_report_text():
    report = _tiny_report(mechanism='<img src="https://x.example/a.png">', reason="a & b", source="<s>")
    page_text = render_html(report, "<dev>")
    page = _parse(page_text)
    assert "img" not in page.tags and "s" not in page.tags
    assert page.references == []
    assert "&lt;dev&gt;" in page_text and "a &amp; b" in page_text


# --- Mermaid ------------------------------------------------------------------------------


def _arrows(diagram: str) -> dict[str, tuple[str, str, str]]:
    """edge id → (source node, arrow, target node), failing on an edge drawn twice."""
    arrows = {}
    for line in diagram.splitlines():
        match = ARROW.match(line)
        if match:
            source, arrow, edge_id, target = match.groups()
            assert edge_id not in arrows, edge_id
            arrows[edge_id] = (source, arrow, target)
    return arrows


def test_mermaid_draws_one_arrow_per_applicable_edge(report):
    diagram = render_mermaid(report)
    assert diagram.splitlines()[0] == "graph LR"
    arrow_lines = [line for line in diagram.splitlines() if "-->" in line or "-.->" in line]
    applicable = {e["id"] for e in report["edges"] if e["status"] != "not_applicable"}
    assert len(arrow_lines) == len(applicable)
    assert set(_arrows(diagram)) == applicable


def test_mermaid_lists_not_applicable_edges_with_their_reason(report):
    diagram = render_mermaid(report)
    comments = [line.strip() for line in diagram.splitlines() if line.strip().startswith("%%")]
    for edge in report["edges"]:
        if edge["status"] == "not_applicable":
            assert any(edge["id"] in c and edge["reason"] in c for c in comments), edge["id"]


def test_mermaid_node_ids_are_safe_and_labelled(report):
    diagram = render_mermaid(report)
    nodes = dict(re.findall(r'^  (\S+)\["([^"]+)"\]$', diagram, re.MULTILINE))
    assert nodes and all(re.fullmatch(r"[A-Za-z0-9_]+", node) for node in nodes)
    assert len(set(nodes.values())) == len(nodes)
    for source, _, target in _arrows(diagram).values():
        assert source in nodes and target in nodes
    assert nodes[_arrows(diagram)["db-gitea"][2]] == "postgres"


def test_mermaid_arrow_follows_the_edge_status(report):
    assert _arrows(render_mermaid(report))["db-keycloak"][1] == "-.->"
    built = copy.deepcopy(report)
    edge = next(e for e in built["edges"] if e["id"] == "db-keycloak")
    edge["status"] = "configured"
    assert _arrows(render_mermaid(built))["db-keycloak"][1] == "-->"


def test_mermaid_colours_links_by_status(report):
    diagram = render_mermaid(report)
    order = list(_arrows(diagram))
    styles = dict(
        (colour, {order[int(i)] for i in indexes.split(",")})
        for indexes, colour in re.findall(r"^  linkStyle (\S+) stroke:(#\w+)", diagram, re.MULTILINE)
    )
    green, red = styles["#2e7d32"], styles["#c62828"]
    assert green == {e["id"] for e in report["edges"] if e["status"] == "configured"}
    assert red == {e["id"] for e in report["edges"] if e["status"] == "missing"}
    assert "classDef configured" in diagram and "classDef missing" in diagram
