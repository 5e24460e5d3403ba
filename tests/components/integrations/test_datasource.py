"""The datasource edge on its own: catalogued id and kind, the fixed uid, the given provider, links
only to the datasources Grafana has, and a refusal for a target Grafana cannot read."""

from __future__ import annotations

import json

import pulumi
import pulumiverse_grafana as grafana_api
import pytest

from components.integrations.datasource import DatasourceEdge
from components.services.grafana import Grafana
from components.services.loki import Loki
from components.services.prometheus import Prometheus
from components.services.redis import Redis
from components.services.tempo import Tempo
from tests.support import by_name, run_components


def build(target: str, linked: tuple[str, ...] = ()):
    """Grafana (no API resources of its own) plus one edge to `target`, on a stand-in provider."""
    made: dict = {}

    def program(spec, host):
        backends = {"prometheus": Prometheus, "loki": Loki, "tempo": Tempo}
        grafana = Grafana(spec, host, postgres=None)
        provider = grafana_api.Provider("stand-in", url="https://grafana.example")
        made["edge"] = DatasourceEdge(grafana, backends[target](spec, host), pulumi.ResourceOptions(provider=provider),
                                      linked=linked)

    return run_components(program), made["edge"]


@pytest.mark.parametrize("target,url", [
    ("prometheus", "http://prometheus:9090"), ("loki", "http://loki:3100"), ("tempo", "http://tempo:3200"),
])
def test_the_edge_is_the_catalogued_one_under_grafana_with_a_fixed_uid(target: str, url: str):
    run, edge = build(target)
    assert (edge.edge.id, edge.edge.kind, edge.uid) == (f"datasource-{target}", "datasource", f"ceres-{target}")
    record = by_name(run, f"datasource-{target}", "DatasourceEdge")
    assert record.parent == by_name(run, "grafana", "ceres:services:Grafana").urn
    source = by_name(run, f"grafana-datasource-{target}", "DataSource")
    assert source.parent == record.urn
    assert (source.inputs["uid"], source.inputs["type"], source.inputs["url"]) == (f"ceres-{target}", target, url)
    assert source.inputs["accessMode"] == "proxy"
    given = by_name(run, "stand-in", "pulumi:providers:grafana").urn
    assert source.provider.startswith(given), "the datasource is made by the provider it was given"


def test_alone_a_datasource_links_nowhere():
    run, _ = build("loki")
    assert "derivedFields" not in json.loads(by_name(run, "grafana-datasource-loki", "DataSource").inputs["jsonDataEncoded"])


def test_with_its_peers_tempo_links_to_logs_and_the_service_map():
    run, _ = build("tempo", linked=("prometheus", "loki", "tempo"))
    data = json.loads(by_name(run, "grafana-datasource-tempo", "DataSource").inputs["jsonDataEncoded"])
    assert data["tracesToLogsV2"]["datasourceUid"] == "ceres-loki"
    assert data["lokiSearch"] == {"datasourceUid": "ceres-loki"}
    assert data["serviceMap"] == {"datasourceUid": "ceres-prometheus"}


def test_a_target_grafana_cannot_read_fails():
    def program(spec, host):
        grafana = Grafana(spec, host, postgres=None)
        DatasourceEdge(grafana, Redis(spec.services.redis, host, ()), pulumi.ResourceOptions())

    with pytest.raises(Exception, match="'redis' is not a datasource Grafana reads"):
        run_components(program)
