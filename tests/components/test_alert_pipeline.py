"""Metrics to people, for real: Debian's Prometheus (2.42) runs the rendered prometheus.yml and alert
rules, scrapes a local target, and alerts the rendered Alertmanager (0.25), which posts to a
Mattermost-compatible chat. The target then goes down: `InstanceDown` must reach the alerts channel,
and its resolution must follow when the target is back.

Only what a test must change is changed: targets and addresses are 127.0.0.1 ports, the scrape and
evaluation intervals 1 s, `InstanceDown`'s `for` 2 s and Alertmanager's group_wait 1 s; every wait
is bounded and every process is stopped by the test that started it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from components.config.alert_rules import RULES_FILE, AlertRuleSettings, prometheus_rules
from components.config.alertmanager import AlertmanagerSettings, ChatReceiver, Timing
from components.config.prometheus import PrometheusSettings, ScrapeJob, prometheus_yml
from tests.components.alert_delivery import running_alertmanager
from tests.components.config.stubs import stop_process
from tests.components.fake_chat import FakeChat, fake_chat
from tests.support import free_port, serving

PROMETHEUS = "prometheus"
INSTALL = "apt-get install -y prometheus (Debian ships the server as /usr/bin/prometheus)"
START_SECONDS = 30
DELIVERY_SECONDS = 40
HOOK_ID = "pipelinehookid0000000000000"


class Metrics(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"# TYPE ceres_test_requests_total counter\nceres_test_requests_total 1\n"
        self.send_response(200 if self.path == "/metrics" else 404)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def metrics_target(port: int) -> Iterator[None]:
    with serving(ThreadingHTTPServer(("127.0.0.1", port), Metrics)):
        yield


def api(url: str, path: str, **params: str) -> dict:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}{path}{query}", timeout=5) as response:
        return json.loads(response.read())


def wait_until(check, what: str, timeout: float, logs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise AssertionError(f"{what} within {timeout}s; Prometheus said:\n{logs()[-3000:]}")


@contextmanager
def running_prometheus(settings: PrometheusSettings, rules: str, workdir: Path) -> Iterator[str]:
    binary = shutil.which(PROMETHEUS)
    if binary is None:
        pytest.fail(f"`{PROMETHEUS}` is not installed: {INSTALL}")
    workdir.mkdir(parents=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_yml(settings))
    # rule_files are resolved against the config's directory, as in /etc/prometheus.
    (workdir / RULES_FILE).parent.mkdir(parents=True)
    (workdir / RULES_FILE).write_text(rules)
    url = f"http://127.0.0.1:{free_port()}"
    log = workdir / "prometheus.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address={url.removeprefix('http://')}"],
            stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=1).status == 200,
                   "Prometheus was not ready", START_SECONDS, lambda: log.read_text(errors="replace"))
        yield url
    finally:
        stop_process(process, 10)
        print(log.read_text(errors="replace")[-4000:])


def up(prometheus: str, job: str) -> float | None:
    result = api(prometheus, "/api/v1/query", query=f'up{{job="{job}"}}')["data"]["result"]
    return float(result[0]["value"][1]) if result else None


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with fake_chat(channels=("alerts",)) as server:
        yield server


def test_a_target_going_down_reaches_the_alerts_channel_through_alertmanager_then_resolves(tmp_path, chat):
    target_port = free_port()
    alertmanager_settings = AlertmanagerSettings(
        receivers=(ChatReceiver("chat", "alerts", hook_url=chat.hook_url(HOOK_ID), username="Alertmanager"),),
        timing=Timing(group_wait="1s", group_interval="1s", repeat_interval="1h"),
    )
    with running_alertmanager(alertmanager_settings, tmp_path / "alertmanager") as alertmanager:
        settings = PrometheusSettings(
            external_labels={"stack": "pipeline", "tier": "dev"},
            jobs=(ScrapeJob("gitea", (f"127.0.0.1:{target_port}",)),),
            alertmanagers=(alertmanager.url.removeprefix("http://"),),
            scrape_interval="1s",
            scrape_timeout="1s",
            evaluation_interval="1s",
        )
        rules = prometheus_rules(AlertRuleSettings(jobs=frozenset({"gitea"}), instance_down_for="2s"))
        with running_prometheus(settings, rules, tmp_path / "prometheus") as prometheus:
            logs = lambda: (tmp_path / "prometheus" / "prometheus.log").read_text(errors="replace")  # noqa: E731
            with metrics_target(target_port):
                wait_until(lambda: up(prometheus, "gitea") == 1, "the target was never scraped", 20, logs)
                groups = api(prometheus, "/api/v1/rules")["data"]["groups"]
                assert "InstanceDown" in {rule["name"] for group in groups for rule in group["rules"]}
                assert chat.messages() == [], "nothing may fire while the target is up"

            firing = chat.wait_for(lambda m: "InstanceDown" in m.content and "FIRING" in m.content,
                                   channel="alerts", timeout=DELIVERY_SECONDS)
            assert "gitea is down" in firing.content
            assert firing.username == "Alertmanager" and firing.hook_id == HOOK_ID
            received = api(alertmanager.url, "/api/v2/alerts")
            labels = next(a["labels"] for a in received if a["labels"]["alertname"] == "InstanceDown")
            # The rule's severity routes it; the stack's external labels say where it came from.
            assert labels["severity"] == "critical" and labels["job"] == "gitea" and labels["stack"] == "pipeline"

            with metrics_target(target_port):
                resolved = chat.wait_for(lambda m: "InstanceDown" in m.content and "RESOLVED" in m.content,
                                         channel="alerts", timeout=DELIVERY_SECONDS)
                assert resolved.received_at > firing.received_at
