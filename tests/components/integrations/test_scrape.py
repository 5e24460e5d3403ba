"""Prometheus scrapes what exposes metrics and alerts through Alertmanager: one edge per target."""

from __future__ import annotations

import pytest
import yaml

from cli.offline import run_offline
from tests.conftest import stack_config
from tests.support import by_name

TARGETS = {
    "postgres_exporter": "postgres-exporter:9187",
    "redis_exporter": "redis-exporter:9121",
    "cadvisor": "cadvisor:8080",
    "loki": "loki:3100",
}


@pytest.fixture(scope="module")
def dev():
    config, secrets = stack_config("dev")
    return run_offline("dev", config, secrets)


def prometheus_yml(run) -> dict:
    uploads = {u["file"]: u["content"] for u in by_name(run, "prometheus", "Container").inputs["uploads"]}
    return yaml.safe_load(uploads["/etc/prometheus/prometheus.yml"])


def test_each_target_is_a_scrape_edge_under_prometheus_and_a_job_in_its_config(dev):
    prometheus = by_name(dev, "prometheus", "ceres:services:Prometheus").urn
    jobs = {job["job_name"]: job for job in prometheus_yml(dev)["scrape_configs"]}
    for service, target in TARGETS.items():
        edge = by_name(dev, f"scrape-{service.replace('_', '-')}", "ScrapeEdge")
        assert edge.parent == prometheus
        # cAdvisor's target also names its Docker host, for the host alerts.
        labels = {"labels": {"host": "local"}} if service == "cadvisor" else {}
        assert jobs[service]["static_configs"] == [{"targets": [target], **labels}]


def test_prometheus_alerts_to_alertmanager_through_its_edge(dev):
    edge = by_name(dev, "alerts-prometheus", "AlertRouteEdge")
    assert edge.parent == by_name(dev, "prometheus", "ceres:services:Prometheus").urn
    alerting = prometheus_yml(dev)["alerting"]["alertmanagers"]
    assert alerting == [{"static_configs": [{"targets": ["alertmanager:9093"]}]}]


def test_switching_one_scrape_off_drops_its_job_and_one_point_of_score(dev, offline):
    run = offline("dev", integrations={"scrape-loki": False})
    assert "loki" not in {job["job_name"] for job in prometheus_yml(run)["scrape_configs"]}
    have = dev.outputs["integration_score"]["overall"]["have"]
    assert run.outputs["integration_score"]["overall"]["have"] == have - 1


def test_without_alertmanager_prometheus_has_nowhere_to_alert(offline):
    run = offline("dev", services={"alertmanager": {"enabled": False}})
    assert not prometheus_yml(run).get("alerting")
    assert not [r for r in run.resources if r.name == "alerts-prometheus"]
