"""The `ha` edge kind: a data service replicated over members, recorded under that service."""

from __future__ import annotations

import pytest

from components.base import Service
from components.integrations.ha import HaEdge
from tests.support import by_name, run_components

MEMBERS = ["10.0.0.11:5432", "10.0.0.12:5432", "10.0.0.13:5432"]


def test_the_edge_lives_under_its_service_and_records_its_members():
    made = {}

    def build(spec, host):
        made["postgres"] = Service("postgres", host.placed())
        made["edge"] = HaEdge("ha-postgres", made["postgres"], "patroni", members=MEMBERS)

    run = run_components(build, stack="prod")
    edge = by_name(run, "ha-postgres", "ceres:integrations:HaEdge")
    assert edge.parent == by_name(run, "postgres", "ceres:services:Service").urn
    assert edge.inputs["edgeId"] == "ha-postgres" and edge.inputs["target"] == "patroni"
    assert made["edge"].members == MEMBERS
    assert made["postgres"].edges == [made["edge"]]


@pytest.mark.parametrize("edge_id, source, endpoint, members, message", [
    ("ha-postgres", "postgres", "redis_sentinel", MEMBERS, "catalogued as"),
    ("ha-redis", "postgres", "redis_sentinel", MEMBERS, "catalogued as"),
    ("ha-postgres", "postgres", "etcd", MEMBERS, "not an outside endpoint"),
    ("ha-nothing", "postgres", "patroni", MEMBERS, "no catalog edge"),
    ("ha-postgres", "postgres", "patroni", MEMBERS[:1], "at least two distinct members"),
    ("ha-postgres", "postgres", "patroni", [MEMBERS[0], MEMBERS[0]], "at least two distinct members"),
])
def test_fails_when_miswired_or_with_nothing_to_fail_over_to(edge_id, source, endpoint, members, message):
    def build(spec, host):
        HaEdge(edge_id, Service(source, host.placed()), endpoint, members=members)

    with pytest.raises(ValueError, match=message):
        run_components(build, stack="prod")
