"""Alertmanager under the recording engine: container, config, its chat and e-mail edges."""

from __future__ import annotations

import pulumi
import yaml

from components.integrations.email import MailRelay
from components.services.alertmanager import Alertmanager
from components.services.mattermost import Mattermost
from components.services.postgres import PostgreSQL
from tests.support import (
    assert_no_plain_secrets,
    assert_production_shape,
    by_name,
    run_components,
    served_without_proxy,
)

CONFIG = "/etc/alertmanager/alertmanager.yml"


def build(with_receivers: bool = False):
    built = {}

    def program(spec, host):
        built["spec"] = spec
        chat = mail = None
        if with_receivers:
            chat = Mattermost(spec, host, postgres=PostgreSQL(spec.services.postgres, host, ["mattermost"]))
            served_without_proxy(chat)
            mail = MailRelay(
                host="smtp.example.com", port=587, from_address="ceres@example.com", username="ceres",
                password=pulumi.Output.secret("offline-smtp-password"), starttls=True,
                recipients=("ops@example.com", "oncall@example.com"),
            )
        built["alertmanager"] = Alertmanager(spec, host, chat=chat, mail=mail)

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


def test_alerts_reach_the_alerts_channel_and_critical_ones_the_mail_relay():
    run, built = build(with_receivers=True)
    alertmanager = built["alertmanager"]
    assert alertmanager.chat.edge.id == "chat-alertmanager" and alertmanager.mail.edge.id == "email-alertmanager"
    config = yaml.safe_load(uploads(run)[CONFIG])
    receivers = {r["name"]: r for r in config["receivers"]}
    assert receivers["chat"]["slack_configs"][0]["channel"] == "alerts"
    assert receivers["chat"]["slack_configs"][0]["send_resolved"] is True
    assert receivers["email"]["email_configs"][0]["to"] == "ops@example.com, oncall@example.com"
    assert config["global"]["smtp_smarthost"] == "smtp.example.com:587"
    routes = {r["receiver"]: r for r in config["route"]["routes"]}
    assert routes["chat"]["matchers"] == ['severity=~"critical|warning"'] and routes["chat"]["continue"]
    assert routes["email"]["matchers"] == ['severity=~"critical"']


def test_the_hook_url_and_relay_password_reach_the_container_only_as_secret_files():
    run, _ = build(with_receivers=True)
    files = uploads(run)
    assert files["/etc/alertmanager/secrets/chat/hook_url"] == "[secret]"
    assert files["/etc/alertmanager/secrets/smtp/password"] == "[secret]"
    assert_no_plain_secrets(run)


def test_the_container_waits_for_its_hook_and_the_hook_lives_under_the_edge():
    run, _ = build(with_receivers=True)
    hook = by_name(run, "chat-alertmanager-hook", "IncomingWebhook")
    assert hook.parent.endswith("ceres:integrations:ChatWebhookEdge::chat-alertmanager")
    assert hook.inputs["channel_locked"] is True
    assert "hook_id" in hook.secret_outputs
    assert hook.urn in by_name(run, "alertmanager", "Container").dependencies
