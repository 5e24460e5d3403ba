"""The edge catalog carries the whole seed: every marked matrix cell and every category item."""

from __future__ import annotations

import re

from collections import Counter

from components.catalog import EDGES, EXTERNAL_ENDPOINTS, GROUP_ENDPOINTS, HA_ENDPOINTS, LAYERS, ROUTING_SEED_ITEMS
from stacks.spec import SERVICE_NAMES
from tests.components.seed import category_items, matrix_cells

SEED_REF = re.compile(r"^(matrix: (?P<a>.+) × (?P<b>.+)|§\d .+: .+)$")


def seed_refs() -> list[str]:
    return [ref for edge in EDGES for ref in edge.seed]


def test_every_marked_matrix_cell_is_an_edge():
    carried = {
        frozenset((m["a"], m["b"]))
        for ref in seed_refs()
        if (m := SEED_REF.match(ref)) and m["a"]
    }
    cells = matrix_cells()
    assert len(cells) == 31  # the seed marks 31 service pairs with ✅, ⚠️ or ❌
    assert set(cells) - carried == set()


def test_every_category_item_is_an_edge():
    items = category_items()
    assert len(items) == 83
    assert set(items) - set(seed_refs()) == set()


def test_seed_references_name_real_seed_places():
    """No edge claims a seed place that is not there (refs outside the seed say where they come from)."""
    places = set(category_items()) | {f"matrix: {' × '.join(sorted(pair))}" for pair in matrix_cells()}
    for ref in seed_refs():
        if ref.startswith("matrix: "):
            a, b = ref.removeprefix("matrix: ").split(" × ")
            assert f"matrix: {' × '.join(sorted((a, b)))}" in places, ref
        elif ref.startswith("§"):
            assert ref in places, ref
        else:
            assert ref.startswith(("issue ", "success criterion ")), ref


def test_each_seed_item_is_counted_once_except_routing_per_app():
    shared = {ref for ref, count in Counter(seed_refs()).items() if count > 1}
    assert shared == set(ROUTING_SEED_ITEMS), "a seed place carried by two edges would be counted twice"


def test_ids_are_unique_and_stable_in_form():
    ids = [edge.id for edge in EDGES]
    assert len(ids) == len(set(ids))
    assert all(re.match(r"^[a-z0-9]+(-[a-z0-9]+)*$", edge_id) for edge_id in ids)


def test_every_edge_has_a_known_layer_and_endpoints():
    endpoints = set(SERVICE_NAMES) | set(EXTERNAL_ENDPOINTS) | set(GROUP_ENDPOINTS) | set(HA_ENDPOINTS)
    for edge in EDGES:
        assert edge.layer in LAYERS, edge.id
        assert {edge.source, edge.target, *edge.via} <= endpoints, edge.id
        assert edge.mechanism and edge.kind


def test_every_layer_has_edges():
    assert {edge.layer for edge in EDGES} == set(LAYERS)
