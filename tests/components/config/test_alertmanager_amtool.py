"""The rendered alertmanager.yml, checked by the real `amtool check-config` and routed by
`amtool config routes test`.

amtool is Debian bookworm's (`apt-get install -y prometheus-alertmanager`, 0.25, which parses
strictly: an unknown key fails); the pinned image is v0.28. The renderer emits only keys both
accept: `matchers`/`source_matchers`/`target_matchers` (0.22+), `slack_configs.api_url_file`
(0.22+), global `smtp_auth_password_file` (accepted by 0.25, checked here), and never
`mattermost_configs` (0.30+). Real delivery is tested by the notifications issue.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from components.config.alertmanager import (
    AlertmanagerSettings,
    ChatReceiver,
    EmailReceiver,
    Smtp,
    alertmanager_yml,
    secret_files,
)

TIMEOUT = 30
HOOK = "https://mattermost.example.com/hooks/abcdefghijklmnopqrstuvwxyz"
SMTP_PASSWORD = "smtp-relay-password-value"
CHAT = ChatReceiver("mattermost", "alerts", hook_url=HOOK)
EMAIL = EmailReceiver("email", ("ops@example.com", "oncall@example.com"))
RELAY = Smtp("smtp.example.com:587", "ceres@example.com", username="ceres", password=SMTP_PASSWORD)
FULL = AlertmanagerSettings(receivers=(CHAT, EMAIL), smtp=RELAY)


def amtool() -> str:
    path = shutil.which("amtool")
    if path is None:
        pytest.fail("amtool not found: `apt-get install -y prometheus-alertmanager` (Debian ships amtool in that package)")
    return path


def write(tmp_path: Path, settings: AlertmanagerSettings) -> Path:
    config = tmp_path / "alertmanager.yml"
    config.write_text(alertmanager_yml(settings))
    return config


def check(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([amtool(), "check-config", str(config)], capture_output=True, text=True, timeout=TIMEOUT)


def receivers_for(config: Path, *labels: str) -> list[str]:
    result = subprocess.run([amtool(), "config", "routes", "test", f"--config.file={config}", *labels],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(",")


def test_the_default_config_is_valid_and_delivers_nowhere(tmp_path: Path) -> None:
    config = write(tmp_path, AlertmanagerSettings())
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert receivers_for(config, "alertname=Down", "severity=critical") == ["default"]
    parsed = yaml.safe_load(config.read_text())
    assert parsed["receivers"] == [{"name": "default"}]
    assert parsed["route"]["group_by"] == ["alertname", "severity"]


def test_chat_and_email_receivers_render_a_valid_config(tmp_path: Path) -> None:
    config = write(tmp_path, FULL)
    result = check(config)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 receivers" in result.stdout
    parsed = yaml.safe_load(config.read_text())
    receivers = {r["name"]: r for r in parsed["receivers"]}
    assert receivers["mattermost"]["slack_configs"][0]["api_url_file"] == "/etc/alertmanager/secrets/mattermost/hook_url"
    assert receivers["mattermost"]["slack_configs"][0]["send_resolved"] is True
    assert receivers["email"]["email_configs"] == [{"to": "ops@example.com, oncall@example.com", "send_resolved": True}]
    assert parsed["global"]["smtp_auth_password_file"] == "/etc/alertmanager/secrets/smtp/password"


def test_routes_send_each_severity_where_it_belongs(tmp_path: Path) -> None:
    config = write(tmp_path, FULL)
    assert receivers_for(config, "alertname=Down", "severity=critical") == ["mattermost", "email"]
    assert receivers_for(config, "alertname=Down", "severity=warning") == ["mattermost"]
    assert receivers_for(config, "alertname=Down", "severity=info") == ["default"]


def test_critical_inhibits_warning_for_the_same_alert_and_instance() -> None:
    parsed = yaml.safe_load(alertmanager_yml(AlertmanagerSettings()))
    assert parsed["inhibit_rules"] == [{
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "instance"],
    }]


def test_secrets_are_files_never_config_text() -> None:
    text = alertmanager_yml(FULL)
    assert HOOK not in text and SMTP_PASSWORD not in text
    assert secret_files(FULL) == {
        "/etc/alertmanager/secrets/smtp/password": SMTP_PASSWORD,
        "/etc/alertmanager/secrets/mattermost/hook_url": HOOK,
    }
    assert HOOK not in repr(CHAT) and SMTP_PASSWORD not in repr(RELAY)


@pytest.mark.parametrize("bad", [
    lambda: AlertmanagerSettings(receivers=(EMAIL,)),
    lambda: AlertmanagerSettings(receivers=(CHAT, CHAT)),
    lambda: ChatReceiver("default", "alerts", hook_url=HOOK),
    lambda: ChatReceiver("Chat Ops", "alerts", hook_url=HOOK),
    lambda: ChatReceiver("mattermost", "alerts", hook_url=HOOK, severities=("page",)),
    lambda: EmailReceiver("email", ("not-an-address",)),
    lambda: Smtp("smtp.example.com", "ceres@example.com"),
    lambda: Smtp("smtp.example.com:587", "ceres@example.com", username="ceres"),
])
def test_rendering_fails_on_what_alertmanager_would_refuse(bad) -> None:
    with pytest.raises(ValueError):
        bad()
