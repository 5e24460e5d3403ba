"""The whole stack's observability wiring, read from the real program's graph: what Prometheus
scrapes, whose logs Alloy ships, which apps send traces, and that it all follows the config."""

from __future__ import annotations

import pytest
import yaml

from cli.offline import OfflineEngine, OfflineRun
from components.base import Service
from components.config.alloy import CONTAINER_LABELS
from components.services.prometheus import Prometheus
from stacks import program as ceres_program
from stacks.platform import Platform
from tests.conftest import stack_config
from tests.support import by_name, of_type


def built(stack: str, **settings) -> tuple[OfflineRun, Platform]:
    """The real composition under the recording engine, with the Platform it returned."""
    config, secret_keys = stack_config(stack, **settings)
    made: dict[str, Platform] = {}

    def program() -> dict:
        made["platform"] = ceres_program.build()
        return made["platform"].outputs()

    engine = OfflineEngine(stack, config, secret_keys)
    outputs = engine.run(program)
    return OfflineRun(stack, engine.monitor.recorded, outputs), made["platform"]


def with_metrics(platform: Platform) -> dict[str, Service]:
    return {name: s for name, s in platform.services.items() if getattr(s, "metrics_target", None)}


def prometheus_jobs(run: OfflineRun) -> dict[str, dict]:
    container = by_name(run, "prometheus", "Container")
    text = next(u["content"] for u in container.inputs["uploads"] if u["file"].endswith("/prometheus.yml"))
    return {job["job_name"]: job for job in yaml.safe_load(text)["scrape_configs"]}


def networks_of(run: OfflineRun, container_name: str) -> set[str]:
    container = by_name(run, container_name, "Container")
    return {n["name"] for n in container.inputs["networksAdvanced"]}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_service_with_metrics_is_scraped_over_a_network_prometheus_shares(stack):
    run, platform = built(stack)
    prometheus = platform.services["prometheus"]
    assert isinstance(prometheus, Prometheus)
    scraped = {edge.target.service for edge in prometheus.scrapes if isinstance(edge.target, Service)}
    exposing = with_metrics(platform)
    # Whatever exposes metrics here, and the services issue 7 names, are all scraped.
    assert set(exposing) == scraped
    assert {"keycloak", "gitea", "grafana", "loki", "alertmanager", "caddy", "uptime_kuma",
            "postgres_exporter", "redis_exporter", "cadvisor"} <= scraped
    jobs = prometheus_jobs(run)
    prometheus_networks = networks_of(run, "prometheus")
    for name, service in exposing.items():
        # cAdvisor's job also lists the other hosts' (the next test).
        assert jobs[name]["static_configs"][0]["targets"][0] == service.metrics_target, name
        assert name == "cadvisor" or jobs[name]["static_configs"] == [{"targets": [service.metrics_target]}], name
        assert networks_of(run, service.container.container._name) & prometheus_networks, f"{name}: no network shared with Prometheus"


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_host_that_runs_containers_has_a_cadvisor_prometheus_scrapes(stack):
    run, _ = built(stack)
    containers = [c for c in of_type(run, "Container") if c.inputs.get("restart") != "no"]
    cadvisors = {c.provider: c for c in containers if c.name.startswith("cadvisor")}
    assert set(cadvisors) == {c.provider for c in containers}, "a host runs containers no cAdvisor watches"
    # Each target labelled with the name of the Docker host it runs on: the host alerts name it.
    hosts = {target: group["labels"]["host"] for group in prometheus_jobs(run)["cadvisor"]["static_configs"]
             for target in group["targets"]}
    targets = list(hosts)
    assert len(targets) == len(cadvisors)
    names = {r.urn: r.name.removesuffix("-docker") for r in of_type(run, "providers:docker")}
    for provider, cadvisor in cadvisors.items():
        listen = [a.split("=", 1)[1] for a in cadvisor.inputs["command"] if a.startswith("--listen_ip=")]
        assert hosts[f"{listen[0]}:8080" if listen else "cadvisor:8080"] == names[provider]
    for cadvisor in cadvisors.values():
        listen = [a.split("=", 1)[1] for a in cadvisor.inputs["command"] if a.startswith("--listen_ip=")]
        if cadvisor.name == "cadvisor":
            assert not listen and "cadvisor:8080" in targets
            continue
        # Another host's: on its network, answering on its private address only, where Prometheus
        # (on the apps host) reaches it; nothing published.
        assert cadvisor.inputs["networkMode"] == "host" and not cadvisor.inputs.get("ports")
        assert listen and listen[0].startswith("10.0.0.") and f"{listen[0]}:8080" in targets
        assert f"http://{listen[0]}:8080/healthz" in cadvisor.inputs["healthcheck"]["tests"]
    assert len(cadvisors) == (3 if stack == "prod" else 1)


def test_prometheus_reaches_the_other_hosts_cadvisors_without_any_ha_member_job():
    run, _ = built("prod", integrations={"scrape-patroni": False, "scrape-pgbackrest": False, "scrape-haproxy": False})
    jobs = prometheus_jobs(run)
    assert not {"patroni", "pgbackrest", "haproxy"} & set(jobs)
    assert {"targets": ["10.0.0.12:8080"], "labels": {"host": "node2"}} in jobs["cadvisor"]["static_configs"]
    # The monitoring network is internal: only the data network leaves the apps host.
    assert "ceres-prod-data" in networks_of(run, "prometheus")


def test_switching_a_scrape_edge_off_leaves_the_service_unscraped_and_off_the_monitoring_network():
    run, platform = built("dev", integrations={"scrape-keycloak": False})
    assert "keycloak" not in prometheus_jobs(run)
    assert "ceres-dev-monitoring" not in networks_of(run, "keycloak")
    statuses = {e["id"]: e["status"] for e in run.outputs["integration_matrix"]}
    assert statuses["scrape-keycloak"] == "missing"


def test_credentialed_targets_are_scraped_with_secret_files_only():
    run, _ = built("dev")
    jobs = prometheus_jobs(run)
    assert jobs["gitea"]["authorization"] == {"type": "Bearer", "credentials_file": "secrets/gitea/bearer_token"}
    container = by_name(run, "prometheus", "Container")
    secret_paths = {u["file"] for u in container.inputs["uploads"] if u["content"] == "[secret]"}
    assert "/etc/prometheus/secrets/gitea/bearer_token" in secret_paths


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_container_of_the_stack_has_its_logs_shipped(stack):
    run, platform = built(stack)
    alloy = platform.services["alloy"]
    assert {edge.edge.id for edge in alloy.shipping} == {"logs-shipper", "logs-containers"}
    alloy_container = by_name(run, "alloy", "Container")
    shippers = [alloy_container, *(by_name(run, f"alloy-{host}", "Container") for host in ("node2", "node3") if stack == "prod")]
    shipping_hosts = {shipper.provider for shipper in shippers}
    assert len(shipping_hosts) == len(shippers), "one shipper per host"
    config_text = next(u["content"] for u in alloy_container.inputs["uploads"] if u["file"].endswith("config.alloy"))
    assert f'regex         = "{stack}"' in config_text
    for remote in shippers[1:]:
        # Loki's port on the apps host's private address, the only way in from another host.
        remote_config = next(u["content"] for u in remote.inputs["uploads"] if u["file"].endswith("config.alloy"))
        assert '"http://10.0.0.11:3100/loki/api/v1/push"' in remote_config
    containers = [c for c in of_type(run, "Container") if c.inputs.get("wait") is not None or c.inputs.get("restart")]
    assert containers
    for container in containers:
        labels = {label["label"]: label["value"] for label in container.inputs.get("labels", [])}
        if container.inputs.get("restart") == "no":
            continue  # one-shot chores (volume owners, probe fill) end before there is anything to ship
        assert labels.get(CONTAINER_LABELS["stack"]) == stack, container.name
        assert labels.get(CONTAINER_LABELS["service"]), container.name
        assert container.provider in shipping_hosts, f"{container.name} runs where no Alloy tails its logs"


def test_apps_that_speak_otlp_send_traces_to_the_collector_which_exports_to_tempo():
    run, platform = built("dev")
    collector = platform.services["otel_collector"]
    assert collector.export.edge.id == "traces-collector"
    assert sorted(collector.receive.senders) == ["grafana", "keycloak"]
    keycloak_env = by_name(run, "keycloak", "Container").inputs["envs"]
    assert "KC_TRACING_ENABLED=true" in keycloak_env
    assert f"KC_TRACING_ENDPOINT=http://{collector.otlp_grpc_endpoint}" in keycloak_env


def test_without_the_traces_apps_edge_no_app_is_told_of_the_collector():
    run, platform = built("dev", integrations={"traces-apps": False})
    assert platform.services["otel_collector"].receive is None
    assert not [e for e in by_name(run, "keycloak", "Container").inputs["envs"] if "TRACING" in str(e)]
