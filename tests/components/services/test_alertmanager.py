"""Alertmanager under the recording engine: container, config, and receiver secrets as files."""

from __future__ import annotations


import pulumi_random as random
import yaml

from components.config.alertmanager import ChatReceiver, EmailReceiver, Smtp
from components.services.alertmanager import Alertmanager
from tests.support import assert_no_plain_secrets, assert_production_shape, by_name, run_components

CONFIG = "/etc/alertmanager/alertmanager.yml"


def build(with_receivers: bool = False):
    built = {}

    def program(spec, host):
        built["spec"] = spec
        receivers, smtp = (), None
        if with_receivers:
            hook = random.RandomPassword("mattermost-hook-id", length=26, special=False)
            password = random.RandomPassword("smtp-password", length=32, special=False)
            receivers = (ChatReceiver("mattermost", "alerts", hook_url=hook.result.apply(lambda i: f"https://chat/hooks/{i}")),
                         EmailReceiver("email", ("ops@example.com",)))
            smtp = Smtp("smtp.example.com:587", "ceres@example.com", username="ceres", password=password.result)
        built["alertmanager"] = Alertmanager(spec, host, receivers=receivers, smtp=smtp)

    return run_components(program), built


def uploads(run) -> dict[str, str]:
    return {u["file"]: u["content"] for u in by_name(run, "alertmanager", "Container").inputs["uploads"]}


def test_container_has_the_production_shape():
    run, built = build()
    spec = built["spec"].services.alertmanager
    container = assert_production_shape(run, "alertmanager", image=spec.image, memory=spec.memory_mb)
    assert container.inputs["healthcheck"]["tests"] == ["CMD", "wget", "-q", "-O", "/dev/null", "http://localhost:9093/-/healthy"]
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-monitoring"]
    assert container.inputs["volumes"] == [{"containerPath": "/alertmanager", "volumeName": "ceres-dev-alertmanager-data"}]
    command = container.inputs["command"]
    assert f"--config.file={CONFIG}" in command and "--storage.path=/alertmanager" in command
    assert "--web.external-url=https://alertmanager.ceres.localhost" in command
    assert built["alertmanager"].upstream == "alertmanager:9093"
    assert built["alertmanager"].internal_url == "http://alertmanager:9093"


def test_by_default_alerts_are_grouped_inhibited_and_delivered_nowhere():
    run, _ = build()
    config = yaml.safe_load(uploads(run)[CONFIG])
    assert config["receivers"] == [{"name": "default"}]
    assert config["route"]["receiver"] == "default"
    assert config["inhibit_rules"][0]["equal"] == ["alertname", "instance"]


def test_receiver_secrets_reach_the_container_only_as_secret_files():
    run, _ = build(with_receivers=True)
    files = uploads(run)
    assert files["/etc/alertmanager/secrets/mattermost/hook_url"] == "[secret]"
    assert files["/etc/alertmanager/secrets/smtp/password"] == "[secret]"
    config = yaml.safe_load(files[CONFIG])
    assert [r["name"] for r in config["receivers"]] == ["default", "mattermost", "email"]
    assert_no_plain_secrets(run)
