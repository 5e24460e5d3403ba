"""The monitors step, run for real with `sh` and node against the stub Kuma of
test_uptime_kuma_bootstrap.py (its `add`, `editMonitor`, `pauseMonitor`, `resumeMonitor`,
`deleteMonitor` and `monitorList` as Kuma 1.23's server/server.js has them).

Every test first runs the two earlier steps for real (admin + API key, then the Mattermost and
e-mail notifications), as `pulumi up` orders them; the stub starts with two monitors someone made
in the UI, one of them named like a platform endpoint ("Gitea").
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from components.config.uptime_kuma import (
    ACCEPTED_STATUS_CODES,
    MANAGED_MARK,
    PASSWORD_ENV,
    USERNAME_ENV,
    HttpMonitor,
    KumaMonitors,
    monitors_program,
    monitors_script,
)
from tests.components.config.test_uptime_kuma_bootstrap import (  # noqa: F401 (kuma, set_up_kuma: fixtures)
    CLIENT_PACKAGES,
    NOTIFICATIONS,
    PASSWORD,
    TIMEOUT,
    USERNAME,
    StubKuma,
    _require,
    installed,
    kuma,
    last_line,
    notifying,
    run_notifications,
    set_up_kuma,
)

ENDPOINTS = (HttpMonitor("Gitea", "https://gitea.ceres.localhost"),
             HttpMonitor("Prometheus", "https://prometheus.ceres.localhost"))
NOTIFICATION_NAMES = ("ceres-mattermost", "ceres-email")


@pytest.fixture
def notified_kuma(set_up_kuma: StubKuma) -> StubKuma:
    """Kuma after the bootstrap and notifications steps: ceres-mattermost is 1, ceres-email 2."""
    last_line(run_notifications(notifying(set_up_kuma, **NOTIFICATIONS)))
    return set_up_kuma


def watching(kuma: StubKuma, *monitors: HttpMonitor, names: tuple[str, ...] = NOTIFICATION_NAMES,
             ignore_tls: bool = True) -> KumaMonitors:
    return KumaMonitors(monitors=monitors, notification_names=names, ignore_tls=ignore_tls, url=kuma.url,
                        app_dir=str(installed(CLIENT_PACKAGES[-1])), timeout_seconds=30)


def run_monitors(settings: KumaMonitors) -> subprocess.CompletedProcess[str]:
    """As ContainerScript runs it: `sh -s` with the script on stdin, the admin login in the environment."""
    env = {"PATH": os.environ["PATH"], USERNAME_ENV: USERNAME, PASSWORD_ENV: PASSWORD}
    return subprocess.run(["sh", "-s"], input=monitors_script(settings), env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def ours(kuma: StubKuma) -> dict[str, dict]:
    return {m["name"]: m for m in kuma.state()["monitors"] if (m.get("description") or "").startswith(MANAGED_MARK)}


def linked(kuma: StubKuma, monitor_id: int) -> list[int]:
    return sorted(notification for monitor, notification in kuma.state()["links"] if monitor == monitor_id)


def test_the_program_and_script_parse() -> None:
    settings = KumaMonitors(monitors=ENDPOINTS, notification_names=NOTIFICATION_NAMES)
    checked = subprocess.run([_require("node", "nodejs"), "--check", "-"], input=monitors_program(settings),
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert checked.returncode == 0, checked.stderr
    assert subprocess.run(["sh", "-n"], input=monitors_script(settings), text=True, timeout=TIMEOUT).returncode == 0


def test_one_monitor_per_endpoint_is_made_once_with_both_notifications(notified_kuma: StubKuma) -> None:
    kuma = notified_kuma
    foreign_before = [m for m in kuma.state()["monitors"] if m["id"] in (1, 2)]
    settings = watching(kuma, *ENDPOINTS)
    assert last_line(run_monitors(settings)) == "monitors: Gitea created, Prometheus created"

    made = ours(kuma)
    assert set(made) == {"Gitea", "Prometheus"}
    gitea = made["Gitea"]
    assert gitea["id"] not in (1, 2), "the UI's own 'Gitea' is not taken over: ours is made beside it"
    assert gitea["url"] == "https://gitea.ceres.localhost" and gitea["type"] == "http" and gitea["method"] == "GET"
    assert (gitea["interval"], gitea["retryInterval"], gitea["maxretries"], gitea["timeout"]) == (60, 60, 2, 48)
    assert json.loads(gitea["accepted_statuscodes_json"]) == list(ACCEPTED_STATUS_CODES) == ["200-299", "300-399"]
    assert gitea["maxredirects"] == 0 and gitea["active"] == 1
    for monitor in made.values():
        assert linked(kuma, monitor["id"]) == [1, 2], "Mattermost and e-mail on every platform monitor"
    assert [m for m in kuma.state()["monitors"] if m["id"] in (1, 2)] == foreign_before

    before = kuma.state()
    events = len(kuma.events())
    assert last_line(run_monitors(settings)) == "monitors: Gitea unchanged, Prometheus unchanged"
    assert kuma.state() == before, "a second run changes nothing"
    assert not {"add", "editMonitor", "pauseMonitor", "resumeMonitor", "deleteMonitor"} & set(kuma.names()[events:])


def test_a_changed_url_edits_the_monitor_in_place_and_keeps_what_the_ui_added(notified_kuma: StubKuma) -> None:
    kuma = notified_kuma
    last_line(run_monitors(watching(kuma, *ENDPOINTS)))
    state = kuma.state()
    gitea = next(m for m in state["monitors"] if m["name"] == "Gitea" and m["id"] > 2)
    gitea["resendInterval"] = 10  # someone asked for reminders in the UI
    kuma.edit(monitors=state["monitors"], links=[*state["links"], [gitea["id"], 9]])  # and their own pager

    moved = HttpMonitor("Gitea", "https://git.ceres.localhost")
    assert last_line(run_monitors(watching(kuma, moved, ENDPOINTS[1]))) == "monitors: Gitea updated, Prometheus unchanged"
    after = ours(kuma)["Gitea"]
    assert after["id"] == gitea["id"] and after["url"] == "https://git.ceres.localhost"
    assert after["resendInterval"] == 10, "the edit sends the whole monitor, not only our fields"
    assert linked(kuma, gitea["id"]) == [1, 2, 9]
    assert kuma.names().count("editMonitor") == 1 and kuma.names().count("add") == 2


def test_a_removed_endpoint_is_paused_not_deleted_and_comes_back_with_its_history(notified_kuma: StubKuma) -> None:
    kuma = notified_kuma
    last_line(run_monitors(watching(kuma, *ENDPOINTS)))
    prometheus_id = ours(kuma)["Prometheus"]["id"]

    assert last_line(run_monitors(watching(kuma, ENDPOINTS[0]))) == "monitors: Gitea unchanged, Prometheus retired"
    retired = ours(kuma)["Prometheus"]
    assert retired["active"] == 0 and "retired" in retired["description"]
    assert "deleteMonitor" not in kuma.names()
    assert last_line(run_monitors(watching(kuma, ENDPOINTS[0]))) == "monitors: Gitea unchanged", "retired once"

    assert last_line(run_monitors(watching(kuma, *ENDPOINTS))) == "monitors: Gitea unchanged, Prometheus resumed"
    back = ours(kuma)["Prometheus"]
    assert back["id"] == prometheus_id and back["active"] == 1 and "retired" not in back["description"]


def test_a_monitor_paused_in_the_ui_stays_paused(notified_kuma: StubKuma) -> None:
    kuma = notified_kuma
    last_line(run_monitors(watching(kuma, *ENDPOINTS)))
    state = kuma.state()
    for monitor in state["monitors"]:
        if monitor["name"] == "Prometheus":
            monitor["active"] = 0
    kuma.edit(monitors=state["monitors"])
    moved = HttpMonitor("Prometheus", "https://metrics.ceres.localhost")
    assert last_line(run_monitors(watching(kuma, ENDPOINTS[0], moved))) == "monitors: Gitea unchanged, Prometheus updated"
    assert ours(kuma)["Prometheus"]["active"] == 0
    assert "resumeMonitor" not in kuma.names()


def test_duplicates_of_ours_keep_the_oldest_and_retire_the_rest(notified_kuma: StubKuma) -> None:
    kuma = notified_kuma
    last_line(run_monitors(watching(kuma, ENDPOINTS[0])))
    state = kuma.state()
    first = next(m for m in state["monitors"] if m["id"] > 2)
    kuma.edit(monitors=[*state["monitors"], dict(first, id=7)], nextMonitorId=8)
    assert last_line(run_monitors(watching(kuma, ENDPOINTS[0]))) == "monitors: Gitea unchanged, Gitea retired"
    rows = {m["id"]: m for m in kuma.state()["monitors"]}
    assert rows[first["id"]]["active"] == 1 and rows[7]["active"] == 0


@pytest.mark.parametrize(("ignore_tls", "expiry"), [(True, False), (False, True)])
def test_tls_is_checked_and_expiry_watched_unless_the_ca_is_caddys_own(notified_kuma: StubKuma, ignore_tls: bool,
                                                                        expiry: bool) -> None:
    kuma = notified_kuma
    last_line(run_monitors(watching(kuma, ENDPOINTS[0], ignore_tls=ignore_tls)))
    gitea = ours(kuma)["Gitea"]
    assert (gitea["ignoreTls"], gitea["expiryNotification"]) == (ignore_tls, expiry)


def test_without_notifications_monitors_are_made_bare(set_up_kuma: StubKuma) -> None:
    kuma = set_up_kuma
    assert last_line(run_monitors(watching(kuma, ENDPOINTS[0], names=()))) == "monitors: Gitea created"
    assert linked(kuma, ours(kuma)["Gitea"]["id"]) == []


def test_a_missing_notification_fails_before_any_monitor_is_made(set_up_kuma: StubKuma) -> None:
    result = run_monitors(watching(set_up_kuma, *ENDPOINTS))
    assert result.returncode != 0
    assert "notification ceres-mattermost is missing" in result.stderr
    assert "add" not in set_up_kuma.names()


def test_no_endpoints_is_a_valid_run(notified_kuma: StubKuma) -> None:
    assert last_line(run_monitors(watching(notified_kuma))) == "monitors: none"


def test_the_password_travels_only_in_login(notified_kuma: StubKuma) -> None:
    kuma = notified_kuma
    events = len(kuma.events())
    settings = watching(kuma, *ENDPOINTS)
    result = run_monitors(settings)
    last_line(result)
    assert PASSWORD not in monitors_script(settings)
    carrying = {e["event"] for e in kuma.events()[events:] if PASSWORD in json.dumps(e["args"])}
    assert carrying == {"login"}
    assert PASSWORD not in result.stdout + result.stderr


@pytest.mark.parametrize("bad", [
    lambda: HttpMonitor("Gitea", "ftp://gitea.example.org"),
    lambda: HttpMonitor("Gitea", "https://gitea.example.org/'quote"),
    lambda: HttpMonitor(" Gitea", "https://gitea.example.org"),
    lambda: HttpMonitor("line\nbreak", "https://gitea.example.org"),
    lambda: KumaMonitors(monitors=(ENDPOINTS[0], ENDPOINTS[0])),
    lambda: KumaMonitors(interval_seconds=10),
    lambda: KumaMonitors(notification_names=("bad\"name",)),
])
def test_rendering_refuses_what_kuma_would_refuse_or_the_script_cannot_carry(bad) -> None:
    with pytest.raises(ValueError):
        bad()
