"""The score is computed from the edge components in the graph, and moves exactly with the config."""

from __future__ import annotations

import pytest

from components.catalog import EDGES, SERVICE_REQUIRES, edges_touching
from components.score import CONFIGURED, MISSING, NOT_APPLICABLE, edge_statuses, score
from stacks.load import load_spec
from stacks.spec import SERVICE_NAMES
from tests.support import of_type

DEV = {"ceres:domain": "ceres.localhost"}


def statuses(run) -> dict[str, dict]:
    return {edge["id"]: edge for edge in run.outputs["integration_matrix"]}


def switched_off(service: str) -> set[str]:
    """The service and everything that cannot run without it."""
    off = {service}
    while True:
        more = {s for s, needs in SERVICE_REQUIRES.items() if set(needs) & off} - off
        if not more:
            return off
        off |= more


def test_have_counts_the_edge_components_in_the_graph(offline):
    run = offline("dev")
    components = {r.name for r in of_type(run, "") if r.type.startswith("ceres:integrations:")}
    configured = {i for i, e in statuses(run).items() if e["status"] == CONFIGURED}
    assert components == configured
    assert run.outputs["integration_score"]["overall"]["have"] == len(components)


def test_every_catalog_edge_is_reported_with_a_status_and_reason(offline):
    run = offline("dev")
    reported = statuses(run)
    assert set(reported) == {edge.id for edge in EDGES}
    for edge in reported.values():
        assert edge["status"] in (CONFIGURED, MISSING, NOT_APPLICABLE)
        assert bool(edge["reason"]) == (edge["status"] != CONFIGURED), edge["id"]


def test_not_applicable_edges_stay_visible_and_out_of_want(offline):
    run = offline("dev")
    reported = statuses(run)
    assert reported["cache-mattermost"]["status"] == NOT_APPLICABLE
    assert "Team Edition" in reported["cache-mattermost"]["reason"]
    overall = run.outputs["integration_score"]["overall"]
    applicable = sum(1 for e in reported.values() if e["status"] != NOT_APPLICABLE)
    assert overall["want"] == applicable < len(EDGES)


def test_a_licensed_mattermost_wants_its_redis_edge(offline):
    team = offline("dev").outputs["integration_score"]["overall"]
    enterprise = offline("dev", services={"mattermost": {"edition": "enterprise"}}).outputs["integration_score"]["overall"]
    assert enterprise["want"] == team["want"] + 1


def test_switching_an_edge_off_lowers_have_by_exactly_that_edge(offline):
    before, after = offline("dev"), offline("dev", integrations={"db-gitea": False})
    changed = {i for i in statuses(before) if statuses(before)[i] != statuses(after)[i]}
    assert changed == {"db-gitea"}
    assert statuses(after)["db-gitea"]["reason"] == "switched off (integrations.db-gitea=false)"
    have = lambda run: run.outputs["integration_score"]["overall"]["have"]
    assert have(after) == have(before) - 1


def test_disabling_a_service_changes_exactly_the_edges_that_touch_it(offline):
    before = offline("dev")
    for service in ("gitea", "postgres"):
        off = switched_off(service)
        after = offline("dev", services={name: {"enabled": False} for name in off})
        touching = {edge.id for name in off for edge in edges_touching(name)}
        changed = {i for i in statuses(before) if statuses(before)[i] != statuses(after)[i]}
        assert changed <= touching, service
        lost = {i for i in touching if statuses(before)[i]["status"] == CONFIGURED}
        assert before.outputs["integration_score"]["overall"]["have"] - after.outputs["integration_score"]["overall"]["have"] == len(lost)
        assert before.outputs["integration_score"]["overall"]["want"] == after.outputs["integration_score"]["overall"]["want"]
        for edge_id in touching:
            if statuses(after)[edge_id]["status"] == MISSING:
                assert "is disabled" in statuses(after)[edge_id]["reason"] or "switched off" in statuses(after)[edge_id]["reason"]


def test_ha_edges_do_not_apply_to_one_host_and_are_missing_when_ha_is_off_on_three():
    dev = load_spec("dev", DEV)
    by_id = {s.edge.id: s for s in edge_statuses(dev, set())}
    assert by_id["ha-postgres"].status == NOT_APPLICABLE
    prod = load_spec("prod", {
        "ceres:domain": "ceres.example.com",
        "ceres:tls": '{"mode": "acme", "email": "ops@example.com"}',
        "ceres:hosts": '[{"name":"a","url":"ssh://d@a","roles":["apps","ha"]},{"name":"b","url":"ssh://d@b","roles":["ha"]},{"name":"c","url":"ssh://d@c","roles":["ha"]}]',
        "ceres:ha": '{"enabled": false}',
        "ceres:backup": '{"repository": "/srv/restic"}',
    })
    by_id = {s.edge.id: s for s in edge_statuses(prod, set())}
    assert by_id["ha-postgres"].status == MISSING and "ha.enabled=false" in by_id["ha-postgres"].reason


def test_acme_edge_does_not_apply_with_the_internal_ca():
    by_id = {s.edge.id: s for s in edge_statuses(load_spec("dev", DEV), set())}
    assert by_id["acme-caddy"].status == NOT_APPLICABLE


def test_layer_scores_add_up_to_the_overall_score():
    result = score(edge_statuses(load_spec("dev", DEV), {"db-gitea"}))
    layers = result["layers"].values()
    assert sum(t["have"] for t in layers) == result["overall"]["have"] == 1
    assert sum(t["want"] for t in layers) == result["overall"]["want"]
    assert result["overall"]["percent"] == round(100 / result["overall"]["want"], 1)


def test_a_layer_with_nothing_wanted_has_no_percent():
    assert score([])["overall"] == {"have": 0, "want": 0, "percent": None}


def sso_switches_for(off: set[str]) -> dict[str, bool]:
    """Turning Keycloak off is allowed only with every app's SSO switched off."""
    if "keycloak" not in off:
        return {}
    return {e.id: False for e in EDGES if e.kind == "oidc_client"}


@pytest.mark.parametrize("service", [s for s in SERVICE_NAMES if s != "backup"])
def test_any_service_can_be_switched_off_and_the_stack_still_builds(service, offline):
    """The composition copes with every service missing (with what cannot run without it)."""
    off = switched_off(service) | ({"oauth2_proxy"} if service == "keycloak" else set())
    run = offline("dev", services={name: {"enabled": False} for name in off}, integrations=sso_switches_for(off))
    built = {r.name for r in run.resources if r.type.startswith("ceres:services:")}
    assert not built & off
    touching = {edge.id for name in off for edge in edges_touching(name)}
    for edge in run.outputs["integration_matrix"]:
        if edge["id"] in touching:
            assert edge["status"] != CONFIGURED, edge["id"]
