"""The e-mail fallback: alerts reach people through the outside relay when chat is down."""

from __future__ import annotations

import pulumi
import pytest
import yaml

from components.integrations.email import MailRelay
from stacks.spec import SmtpSpec
from tests.support import assert_no_plain_secrets, by_name

RELAY = {"host": "smtp.example.com", "port": 587, "from_address": "ceres@example.com", "username": "ceres",
         "alert_recipients": ["ops@example.com", "oncall@example.com"]}


def test_a_relay_login_needs_its_password_and_the_password_needs_a_login():
    with pytest.raises(ValueError, match="smtp_password"):
        MailRelay.from_spec(SmtpSpec(**RELAY), None)
    without_login = SmtpSpec(**{**RELAY, "username": None})
    with pytest.raises(ValueError, match="smtp.username"):
        MailRelay.from_spec(without_login, pulumi.Output.from_input("x"))


def test_with_a_relay_alerts_and_monitors_mail_its_recipients(offline):
    run = offline("dev", secret_keys=("ceres:smtp_password",), smtp=RELAY, smtp_password="offline-relay-password")
    statuses = {e["id"]: e["status"] for e in run.outputs["integration_matrix"]}
    assert statuses["email-alertmanager"] == statuses["email-uptime-kuma"] == "configured"
    container = by_name(run, "alertmanager", "Container")
    uploads = {u["file"]: u["content"] for u in container.inputs["uploads"]}
    config = yaml.safe_load(uploads["/etc/alertmanager/alertmanager.yml"])
    assert config["global"]["smtp_smarthost"] == "smtp.example.com:587"
    assert config["global"]["smtp_auth_username"] == "ceres"
    email = next(r for r in config["receivers"] if r["name"] == "email")
    assert email["email_configs"][0]["to"] == "ops@example.com, oncall@example.com"
    assert uploads["/etc/alertmanager/secrets/smtp/password"] == "[secret]"
    assert by_name(run, "uptime_kuma-notifications", "Command").inputs["environment"]
    assert_no_plain_secrets(run)


def test_without_a_relay_the_email_edges_say_what_to_set(offline):
    run = offline("dev")
    matrix = {e["id"]: e for e in run.outputs["integration_matrix"]}
    for edge in ("email-alertmanager", "email-uptime-kuma"):
        assert matrix[edge]["status"] == "missing"
        assert "ceres:smtp" in matrix[edge]["reason"]
