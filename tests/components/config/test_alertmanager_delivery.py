"""The rendered alertmanager.yml run by the real Alertmanager, delivering to a Mattermost-format chat
and an SMTP relay: what `amtool` cannot show (the payload, the secret files being read, e-mail when
chat is down).

Alertmanager is Debian bookworm's (`apt-get install -y prometheus-alertmanager`, 0.25; the pinned
image is 0.28 and the renderer only emits keys both accept). The chat is `tests.components.fake_chat`
(Mattermost's incoming-webhook rules), the relay an aiosmtpd server that only accepts the
configured password, so a delivered mail proves `smtp_auth_password_file` was read. Timings are
shortened through `Timing`; everything binds 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
import yaml

from components.config.alertmanager import (
    AlertmanagerSettings,
    ChatReceiver,
    EmailReceiver,
    Smtp,
    Timing,
    alertmanager_yml,
)
from tests.components.alert_delivery import (
    RunningAlertmanager,
    alert,
    alertmanager_binary,
    running_alertmanager,
    smtp_sink,
)
from tests.components.fake_chat import FakeChat, fake_chat

# The first notification waits group_wait; changes (resolutions, retries) go out every group_interval.
FAST = Timing(group_wait="1s", group_interval="1s", repeat_interval="1h")
DELIVERY_SECONDS = 15
QUIET_SECONDS = 3
HOOK_ID = "k3x9q2hookidforalertmanager"
RELAY_USER, RELAY_PASSWORD = "ceres", "relay-password-from-a-secret-file"
ON_CALL = ("ops@example.com", "oncall@example.com")


@pytest.fixture
def relay() -> Iterator:
    try:
        with smtp_sink(RELAY_USER, RELAY_PASSWORD) as sink:
            yield sink
    except ModuleNotFoundError as error:
        pytest.fail(f"{error}: `pip install aiosmtpd` (the test extra)")


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with fake_chat(channels=("alerts",)) as server:
        yield server


@pytest.fixture
def alertmanager(tmp_path: Path, chat: FakeChat, relay) -> Iterator[RunningAlertmanager]:
    try:
        alertmanager_binary()
    except FileNotFoundError as error:
        pytest.fail(str(error))
    settings = AlertmanagerSettings(
        receivers=(ChatReceiver("mattermost", "alerts", hook_url=chat.hook_url(HOOK_ID)),
                   EmailReceiver("email", ON_CALL)),
        smtp=Smtp(relay.smarthost, "ceres@example.com", username=RELAY_USER, password=RELAY_PASSWORD,
                  require_tls=False),
        timing=FAST,
    )
    with running_alertmanager(settings, tmp_path / "alertmanager") as running:
        yield running
        # Captured: pytest shows it only when the test failed, next to what the fakes received.
        print(running.logs())


def test_the_config_names_secret_files_the_server_reads(alertmanager: RunningAlertmanager, chat: FakeChat) -> None:
    text = alertmanager.config.read_text()
    assert chat.hook_url(HOOK_ID) not in text and RELAY_PASSWORD not in text
    assert "api_url_file" in text and "smtp_auth_password_file" in text


def test_a_critical_alert_reaches_the_alerts_channel_with_its_summary_then_its_resolution(
        alertmanager: RunningAlertmanager, chat: FakeChat) -> None:
    alertmanager.post(alert("DiskFull", "critical", summary="Disk on db-1 is 97% full"))
    firing = chat.wait_for(lambda m: "FIRING" in m.content, channel="alerts", timeout=DELIVERY_SECONDS)
    assert "DiskFull" in firing.content and "Disk on db-1 is 97% full" in firing.content
    assert firing.username == "Alertmanager" and firing.hook_id == HOOK_ID

    alertmanager.post(alert("DiskFull", "critical", summary="Disk on db-1 is 97% full", resolved=True))
    resolved = chat.wait_for(lambda m: "RESOLVED" in m.content, channel="alerts", timeout=DELIVERY_SECONDS)
    assert "Disk on db-1 is 97% full" in resolved.content and resolved.received_at > firing.received_at
    # The receiver's channel override wins over the hook's own channel.
    assert chat.messages("town-square") == []


def test_a_critical_alert_is_mailed_to_on_call_through_the_authenticated_relay(
        alertmanager: RunningAlertmanager, relay) -> None:
    alertmanager.post(alert("DiskFull", "critical", summary="Disk on db-1 is 97% full"))
    mail = relay.wait_for(timeout=DELIVERY_SECONDS)
    assert mail.login == RELAY_USER, "the relay only takes the password from smtp_auth_password_file"
    assert mail.sender == "ceres@example.com" and sorted(mail.recipients) == sorted(ON_CALL)
    assert "[FIRING:1] DiskFull" in mail.subject and "Disk on db-1 is 97% full" in mail.body


@pytest.mark.parametrize("outage", ["not listening", "answering 500"])
def test_mail_still_reaches_on_call_while_chat_is_down_and_chat_catches_up_after(
        outage: str, alertmanager: RunningAlertmanager, chat: FakeChat, relay) -> None:
    with chat.failing(500):
        if outage == "not listening":
            chat.down()
        alertmanager.post(alert("DatabaseDown", "critical", summary="PostgreSQL is not answering"))
        mail = relay.wait_for(lambda m: "DatabaseDown" in m.subject, timeout=DELIVERY_SECONDS)
        assert "PostgreSQL is not answering" in mail.body
        assert chat.messages() == []
        if outage == "answering 500":
            assert any(attempt.status == 500 for attempt in chat.attempts()), "Alertmanager never tried chat"
    chat.up()
    # A failed notification is retried: once chat is back the alert lands there too.
    late = chat.wait_for(lambda m: "DatabaseDown" in m.content, channel="alerts", timeout=DELIVERY_SECONDS)
    assert "PostgreSQL is not answering" in late.content


def test_a_warning_goes_to_chat_but_not_to_mail(alertmanager: RunningAlertmanager, chat: FakeChat, relay) -> None:
    alertmanager.post(alert("CertExpiring", "warning", summary="TLS certificate expires in 10 days"),
                      alert("BackupFailed", "critical", summary="Last night's backup failed"))
    chat.wait_for(lambda m: "CertExpiring" in m.content and "expires in 10 days" in m.content,
                  channel="alerts", timeout=DELIVERY_SECONDS)
    chat.wait_for(lambda m: "BackupFailed" in m.content, channel="alerts", timeout=DELIVERY_SECONDS)
    # Both were posted together, so once the critical one is mailed the warning would have been too.
    relay.wait_for(lambda m: "BackupFailed" in m.subject, timeout=DELIVERY_SECONDS)
    with pytest.raises(AssertionError):
        relay.wait_for(lambda m: "CertExpiring" in m.subject, timeout=QUIET_SECONDS)


def test_timing_defaults_to_production_values_and_refuses_what_alertmanager_would() -> None:
    route = yaml.safe_load(alertmanager_yml(AlertmanagerSettings()))["route"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == ("30s", "5m", "4h")
    for bad in ({"group_wait": "1"}, {"group_wait": "5x"}, {"group_interval": "0s"}, {"repeat_interval": ""}):
        with pytest.raises(ValueError):
            Timing(**bad)
