"""Prometheus under the recording engine: its container, its config, and where its secrets go."""

from __future__ import annotations

import json

import pulumi_random as random
import yaml

from components.base import Service
from components.config.prometheus import BasicAuth, ScrapeJob
from components.services.alertmanager import Alertmanager
from components.services.prometheus import Prometheus
from tests.support import assert_no_plain_secrets, assert_production_shape, build_named, by_name, of_type


class MetricsBehindCredentials(Service):
    """A stand-in target whose metrics need credentials: it gives Prometheus its whole job."""

    def __init__(self, service: str, job):
        super().__init__(service)
        self.metrics_target = "stand-in:9100"
        self._job = job

    def scrape_job(self):
        return self._job()


def build(alertmanager: bool = True, jobs=None):
    def make(spec, host):
        manager = Alertmanager(spec, host) if alertmanager else None
        targets = [MetricsBehindCredentials("cadvisor", jobs)] if jobs else []
        prometheus = Prometheus(spec, host, alertmanager=manager)
        prometheus.scrape(targets)
        return prometheus
    return build_named("prometheus", make)


def uploads(container) -> dict[str, str]:
    return {upload["file"]: upload["content"] for upload in container.inputs["uploads"]}


def rendered_config(run) -> dict:
    return yaml.safe_load(uploads(by_name(run, "prometheus", "Container"))["/etc/prometheus/prometheus.yml"])


def gitea_job():
    token = random.RandomPassword("gitea-metrics-token", length=32, special=False)
    return ScrapeJob("gitea", ("gitea:3000",), bearer_token=token.result)


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.prometheus
    container = assert_production_shape(run, "prometheus", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost:9090/-/healthy"]
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-monitoring"]
    assert container.inputs["volumes"] == [{"containerPath": "/prometheus", "volumeName": "ceres-dev-prometheus-data"}]


def test_command_sets_storage_retention_and_the_public_url_without_lifecycle_endpoints():
    run, _ = build()
    command = by_name(run, "prometheus", "Container").inputs["command"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert "--storage.tsdb.path=/prometheus" in command
    assert "--storage.tsdb.retention.time=7d" in command
    assert "--web.external-url=https://prometheus.ceres.localhost" in command
    assert not any("lifecycle" in flag for flag in command)


def test_config_alerts_to_alertmanager_and_labels_the_stack():
    run, built = build()
    config = rendered_config(run)
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert config["global"]["external_labels"] == {"stack": "dev", "tier": "dev"}
    assert [job["job_name"] for job in config["scrape_configs"]] == ["prometheus"]
    assert config["scrape_configs"][0]["static_configs"] == [{"targets": ["localhost:9090"]}]
    assert built["prometheus"].internal_url == "http://prometheus:9090"
    assert built["prometheus"].HTTP_PORT == 9090


def test_without_alertmanager_there_is_no_alerting_section():
    run, _ = build(alertmanager=False)
    assert "alerting" not in rendered_config(run)


def test_a_bearer_token_reaches_the_container_only_as_a_secret_file():
    run, _ = build(jobs=gitea_job)
    files = uploads(by_name(run, "prometheus", "Container"))
    assert files["/etc/prometheus/secrets/gitea/bearer_token"] == "[secret]"
    job = next(j for j in rendered_config(run)["scrape_configs"] if j["job_name"] == "gitea")
    assert job["authorization"]["credentials_file"] == "secrets/gitea/bearer_token"
    assert_no_plain_secrets(run)


def test_basic_auth_password_is_a_secret_file_too():
    def kuma_job():
        key = random.RandomPassword("kuma-api-key", length=32, special=False)
        return ScrapeJob("uptime_kuma", ("uptime-kuma:3001",), basic_auth=BasicAuth("ceres", key.result))

    run, _ = build(jobs=kuma_job)
    assert uploads(by_name(run, "prometheus", "Container"))["/etc/prometheus/secrets/uptime_kuma/basic_auth_password"] == "[secret]"
    assert "offline-" not in json.dumps([r.inputs for r in run.resources])


def test_everything_lives_under_the_prometheus_component():
    run, _ = build(alertmanager=False)
    component = by_name(run, "prometheus", "ceres:services:Prometheus")
    for name in ("prometheus", "prometheus-image", "prometheus-data"):
        assert next(r for r in run.resources if r.name == name and r.custom).parent == component.urn
    assert not of_type(run, "Command")
