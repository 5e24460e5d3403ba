"""The real Alertmanager (Debian's `prometheus-alertmanager`) running a rendered `alertmanager.yml`,
and a local SMTP sink for its e-mail: shared by the delivery tests and `scripts/bench_alert_delivery.py`.

    with smtp_sink() as mail, fake_chat(...) as chat, running_alertmanager(settings, workdir) as am:
        am.post(alert("Down", "critical", summary="db is down"))
        chat.wait_for(...); mail.wait_for(...)

The config is the renderer's text with its secrets directory (`SECRETS_DIR`, absolute for the
container) rewritten to a folder under `workdir`, where each secret is written: the process reads the
same keys (`api_url_file`, `smtp_auth_password_file`) the container would.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Callable, Iterator

from components.config.alertmanager import SECRETS_DIR, AlertmanagerSettings, alertmanager_yml, secret_files
from tests.components.config.stubs import stop_process
from tests.support import free_port

ALERTMANAGER = "prometheus-alertmanager"
INSTALL = "apt-get install -y prometheus-alertmanager (Debian ships the server as /usr/bin/prometheus-alertmanager)"
START_SECONDS = 20
STOP_SECONDS = 10
HTTP_SECONDS = 5
# Mail bigger than this is refused: a runaway sender cannot fill the test's memory.
MAX_MAIL_BYTES = 1_000_000


def alertmanager_binary() -> str:
    """The server's path; raises (a test turns it into a failure naming the package) when missing."""
    path = shutil.which(ALERTMANAGER)
    if path is None:
        raise FileNotFoundError(f"`{ALERTMANAGER}` is not installed: {INSTALL}")
    return path


def alert(name: str, severity: str, *, summary: str, resolved: bool = False, **labels: str) -> dict[str, Any]:
    """One alert as Prometheus posts it to /api/v2/alerts; resolved = its end is already past."""
    now = datetime.now(timezone.utc)
    body: dict[str, Any] = {
        "labels": {"alertname": name, "severity": severity, "instance": "test:9100", **labels},
        "annotations": {"summary": summary},
        # Now, as Prometheus sends a new alert: a start older than group_wait is flushed at once.
        "startsAt": (now - timedelta(minutes=1) if resolved else now).isoformat(),
    }
    if resolved:
        body["endsAt"] = (now - timedelta(seconds=1)).isoformat()
    return body


@dataclass
class RunningAlertmanager:
    url: str
    config: Path
    process: subprocess.Popen
    log: Path

    def post(self, *alerts: dict[str, Any]) -> None:
        request = urllib.request.Request(f"{self.url}/api/v2/alerts", data=json.dumps(list(alerts)).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=HTTP_SECONDS) as response:
            assert response.status == 200, response.read()

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def write_config(settings: AlertmanagerSettings, workdir: Path) -> Path:
    """The rendered config and its secret files under `workdir`, secrets moved to `workdir/secrets`."""
    secrets_dir = workdir / "secrets"
    for container_path, value in secret_files(settings).items():
        path = secrets_dir / Path(container_path).relative_to(SECRETS_DIR)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
        path.chmod(0o600)
    config = workdir / "alertmanager.yml"
    config.write_text(alertmanager_yml(settings).replace(SECRETS_DIR, str(secrets_dir)))
    return config


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_alertmanager(settings: AlertmanagerSettings, workdir: Path) -> Iterator[RunningAlertmanager]:
    """Alertmanager on a free 127.0.0.1 port, no cluster listener, state in `workdir`; waits (bounded)
    until it is ready and always stops it on the way out."""
    binary = alertmanager_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    config = write_config(settings, workdir)
    url = f"http://127.0.0.1:{free_port()}"
    log = workdir / "alertmanager.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.path={workdir / 'data'}",
             f"--web.listen-address={url.removeprefix('http://')}", f"--web.external-url={url}",
             # One instance: no gossip port; debug logs say why a notification failed.
             "--cluster.listen-address=", "--log.level=debug"],
            stdout=log_file, stderr=subprocess.STDOUT)
    running = RunningAlertmanager(url, config, process, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"alertmanager did not become ready:\n{running.logs()}")
            time.sleep(0.1)
        yield running
    finally:
        stop_process(process, STOP_SECONDS)


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage
    login: str | None  # the SMTP AUTH user, None if the client did not log in
    received_at: float

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        """Every text part, joined (Alertmanager sends HTML and plain text)."""
        parts = [part.get_content() for part in self.message.walk() if part.get_content_maintype() == "text"]
        return "\n".join(parts)


class SmtpSink:
    """Keeps what an SMTP client sends; with `password`, advertises AUTH and refuses other passwords."""

    def __init__(self, username: str | None = None, password: str | None = None):
        self.username, self.password = username, password
        self.port = free_port()
        self._mails: list[Mail] = []
        self._changed = threading.Condition()

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.port}"

    def mails(self) -> list[Mail]:
        with self._changed:
            return list(self._mails)

    def wait_for(self, predicate: Callable[[Mail], bool] = lambda m: True, timeout: float = 10.0) -> Mail:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [mail for mail in self._mails if predicate(mail)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching mail within {timeout}s; got {[m.subject for m in self._mails]}")
                self._changed.wait(left)

    # aiosmtpd handler hooks
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        login = session.auth_data.login.decode() if session.authenticated else None
        mail = Mail(envelope.mail_from, tuple(envelope.rcpt_tos),
                    message_from_bytes(envelope.original_content, policy=policy.default),  # type: ignore[arg-type]
                    login, time.monotonic())
        with self._changed:
            self._mails.append(mail)
            self._changed.notify_all()
        return "250 Message accepted for delivery"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult

        ok = (auth_data.login.decode(), auth_data.password.decode()) == (self.username, self.password)
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


@contextmanager
def smtp_sink(username: str | None = None, password: str | None = None) -> Iterator[SmtpSink]:
    """An SMTP server on a free 127.0.0.1 port (plain text, AUTH without TLS when a password is given:
    Go's SMTP client allows that only towards localhost), stopped on the way out."""
    from aiosmtpd.controller import Controller

    sink = SmtpSink(username, password)
    auth: dict[str, Any] = {}
    if password is not None:
        # PLAIN only: aiosmtpd's LOGIN challenges ("User Name") are not the "Username:" Alertmanager's
        # LOGIN client expects (real relays such as Postfix send the latter). Not `auth_required`: the
        # test asserts the login instead (`Mail.login`), without aiosmtpd's warning about it.
        auth = {"authenticator": sink.authenticate, "auth_require_tls": False, "auth_exclude_mechanism": ["LOGIN"]}
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port, ready_timeout=START_SECONDS,
                            data_size_limit=MAX_MAIL_BYTES, **auth)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()
