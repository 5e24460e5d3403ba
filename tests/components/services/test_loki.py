"""Loki built alone under the recording engine: the container a user would get."""

from __future__ import annotations


import yaml

from components.config import log_alert_rules, loki as config
from components.services.alertmanager import Alertmanager
from components.docker_host import PROBE
from components.services.loki import Loki
from tests.support import assert_no_plain_secrets, assert_production_shape, build_named, by_name, of_type


def build(**kwargs):
    return build_named("loki", lambda spec, host: Loki(spec, host, **kwargs), stack="dev")


def uploads(container) -> dict[str, str]:
    return {u["file"]: u["content"] for u in container.inputs["uploads"]}


def test_container_has_the_production_shape():
    run, built = build()
    container = assert_production_shape(run, "loki", image=built["spec"].services.loki.image, memory=built["spec"].services.loki.memory_mb)
    assert built["spec"].services.loki.image.startswith("grafana/loki:3.5.")
    assert container.inputs["name"] == "ceres-dev-loki"


def test_only_on_the_monitoring_network():
    run, _ = build()
    networks = by_name(run, "loki", "Container").inputs["networksAdvanced"]
    assert [n["name"] for n in networks] == ["ceres-dev-monitoring"]
    assert by_name(run, "local-monitoring", "Network").inputs["internal"] is True
    assert networks[0]["aliases"] == ["loki"]


def test_healthcheck_probes_ready_with_the_mounted_busybox():
    run, _ = build()
    container = by_name(run, "loki", "Container")
    tests = container.inputs["healthcheck"]["tests"]
    assert tests[:2] == ["CMD", PROBE] and tests[-1] == "http://127.0.0.1:3100/ready"
    assert container.inputs["healthcheck"]["startPeriod"] == "60s"
    probe_mount = next(v for v in container.inputs["volumes"] if v.get("containerPath") == "/ceres-probe")
    assert probe_mount["readOnly"] is True
    assert by_name(run, "local-probe-fill", "Container").urn in container.dependencies


def test_state_on_a_named_volume_and_the_rendered_config_in_use():
    run, _ = build()
    container = by_name(run, "loki", "Container")
    assert {"volumeName": "ceres-dev-loki-data", "containerPath": "/loki"} in container.inputs["volumes"]
    assert container.inputs["command"] == ["-config.file=/etc/loki/loki.yaml"]
    files = uploads(container)
    assert files[config.CONFIG_PATH] == config.loki_yaml(config.LokiSettings())
    assert files[f"{config.RULES_DIR}/README"] == config.RULES_README


def test_alertmanager_url_reaches_the_ruler_only_when_given():
    run, _ = build()
    ruler = yaml.safe_load(uploads(by_name(run, "loki", "Container"))[config.CONFIG_PATH])["ruler"]
    assert "alertmanager_url" not in ruler
    run, _ = build_named("loki", lambda spec, host: Loki(spec, host, alertmanager=Alertmanager(spec, host)), stack="dev")
    ruler = yaml.safe_load(uploads(by_name(run, "loki", "Container"))[config.CONFIG_PATH])["ruler"]
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"


def test_with_alertmanager_the_log_rules_of_running_services_are_in_the_tenant_directory():
    run, built = build_named("loki", lambda spec, host: Loki(spec, host, alertmanager=Alertmanager(spec, host)), stack="dev")
    assert built["loki"].alerts.edge.id == "alerts-loki"
    rules = yaml.safe_load(uploads(by_name(run, "loki", "Container"))[f"{config.TENANT_RULES_DIR}/{log_alert_rules.RULES_FILE}"])
    assert {rule["labels"]["service"] for group in rules["groups"] for rule in group["rules"]} == {"keycloak", "caddy", "gitea"}
    run, _ = build_named("loki", lambda spec, host: Loki(spec, host, alertmanager=Alertmanager(spec, host)), stack="dev",
                         services={"gitea": {"enabled": False}, "repo_sync": {"enabled": False}})
    rules = yaml.safe_load(uploads(by_name(run, "loki", "Container"))[f"{config.TENANT_RULES_DIR}/{log_alert_rules.RULES_FILE}"])
    assert "gitea" not in {rule["labels"]["service"] for group in rules["groups"] for rule in group["rules"]}


def test_without_alertmanager_no_log_rules_are_installed():
    run, built = build()
    assert built["loki"].alerts is None
    assert not [f for f in uploads(by_name(run, "loki", "Container")) if f.startswith(config.TENANT_RULES_DIR)]


def test_exposes_where_to_push_read_and_put_rules():
    run, built = build()
    loki = built["loki"]
    assert loki.internal_url == "http://loki:3100"
    assert loki.push_url == "http://loki:3100/loki/api/v1/push"
    assert loki.rules_directory == "/etc/loki/rules/fake"
    component = by_name(run, "loki", "ceres:services:Loki")
    container = by_name(run, "loki", "Container")
    assert container.parent == component.urn
    assert container.provider.endswith("::local-docker"), "placed on the host's Docker engine"


def test_no_credentials_anywhere():
    run, _ = build()
    assert not of_type(run, "RandomPassword")
    assert_no_plain_secrets(run)
