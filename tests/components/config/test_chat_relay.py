"""The rendered Nextcloud -> Mattermost relay, run for real with this Python against the fake
Mattermost (`tests.components.fake_chat`), fed payloads shaped as Nextcloud 31's webhook_listeners
sends them (WebhooksEventListener.php: `event` (+ `class`), `user` from JsonSerializer::serializeUser,
`time`; node events carry `node` = JsonSerializer::serializeFileInfo: `id`, `path`), POSTed the way
WebhookCall.php does: the JSON body, the webhook's auth headers, no Content-Type of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from components.config.chat_relay import (
    HEALTH_PATH,
    NEXTCLOUD_PATH,
    NODE_CREATED,
    NODE_WRITTEN,
    SECRET_HEADER,
    RelaySettings,
    relay_program,
)
from tests.components.config.stubs import stop_process
from tests.components.fake_chat import FakeChat, fake_chat
from tests.support import free_port

SECRET = "relay-shared-secret-0123456789abcdef"
PUBLIC = "https://nextcloud.ceres.localhost"


def payload(event_class: str, path: str, node_id: int | None = 42, user: dict | None = None) -> dict:
    node = {"path": path} if node_id is None else {"id": node_id, "path": path}
    return {"event": {"class": event_class, "node": node},
            "user": user if user is not None else {"uid": "alice", "displayName": "Alice Liddell"},
            "time": 1760000000}


class Relay:
    def __init__(self, port: int, process: subprocess.Popen, hook_file: Path):
        self.url = f"http://127.0.0.1:{port}"
        self.process = process
        self.hook_file = hook_file

    def post(self, body: bytes | dict, secret: str | None = SECRET, timeout: float = 30) -> tuple[int, dict]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        request = urllib.request.Request(self.url + NEXTCLOUD_PATH, data=data, headers=headers, method="POST")
        # urllib adds a form Content-Type; Nextcloud sends none: the relay must not care either way.
        request.remove_header("Content-type")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


def start_relay(tmp_path: Path, hook_url: str, **overrides) -> Iterator[Relay]:
    port = free_port()
    settings = RelaySettings(public_url=PUBLIC, channel="files", hook_url_file=str(tmp_path / "hook-url"),
                             secret_file=str(tmp_path / "relay-secret"), listen_host="127.0.0.1", port=port, **overrides)
    (tmp_path / "hook-url").write_text(hook_url + "\n")
    (tmp_path / "relay-secret").write_text(SECRET + "\n")
    program = tmp_path / "relay.py"
    program.write_text(relay_program(settings))
    process = subprocess.Popen([sys.executable, str(program)], env={"PATH": os.environ["PATH"]},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    relay = Relay(port, process, tmp_path / "hook-url")
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(relay.url + HEALTH_PATH, timeout=2) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None, f"relay exited: {process.stderr.read()}"
                assert time.monotonic() < deadline, "relay did not answer its health endpoint within 15 s"
                time.sleep(0.1)
        yield relay
    finally:
        stop_process(process, timeout=5)


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    with fake_chat(channels=("files",)) as fake:
        yield fake


@pytest.fixture
def relay(chat: FakeChat, tmp_path: Path) -> Iterator[Relay]:
    yield from start_relay(tmp_path, chat.hook_url("nextcloudhook", channel="files"),
                           timeout_seconds=1.0, attempts=3, backoff_seconds=0.2)


def test_an_upload_in_a_project_folder_reaches_the_files_channel_as_one_readable_message(relay: Relay, chat: FakeChat):
    path = "/alice/files/Projects/Apollo/launch plan.pdf"
    assert relay.post(payload(NODE_CREATED, path)) == (200, {"status": "posted"})
    message = chat.wait_for(channel="files", timeout=5)
    assert message.username == "Nextcloud"
    assert "**Alice Liddell** added" in message.text
    assert f"<{PUBLIC}/index.php/f/42|launch plan.pdf>" in message.text
    assert "in `Projects/Apollo`" in message.text
    # The upload's write event right after the creation is the same news: not posted twice.
    assert relay.post(payload(NODE_WRITTEN, path)) == (202, {"status": "ignored"})
    assert len(chat.messages("files")) == 1


def test_a_later_write_is_an_update_and_anonymous_uploads_are_named_as_such(relay: Relay, chat: FakeChat):
    assert relay.post(payload(NODE_WRITTEN, "/bob/files/Projects/notes.md", node_id=7,
                              user={"uid": "bob", "displayName": ""}))[0] == 200
    assert "**bob** updated" in chat.wait_for(lambda m: "notes.md" in m.text, channel="files").text
    anonymous = payload(NODE_CREATED, "/alice/files/Projects/Drop/scan.png", node_id=None)
    anonymous["user"] = None
    assert relay.post(anonymous)[0] == 200
    text = chat.wait_for(lambda m: "scan.png" in m.text, channel="files").text
    assert "Someone with a public link" in text and "/index.php/apps/files/?dir=/Projects/Drop" in text


def test_labels_cannot_break_the_slack_link(relay: Relay, chat: FakeChat):
    assert relay.post(payload(NODE_CREATED, "/alice/files/Projects/a|b<c>.txt", node_id=9))[0] == 200
    assert "|a\u2758b&lt;c&gt;.txt>" in chat.wait_for(channel="files").text


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", SECRET + "x"])
def test_a_bad_or_missing_secret_is_401_and_nothing_is_posted(relay: Relay, chat: FakeChat, secret):
    status, body = relay.post(payload(NODE_CREATED, "/alice/files/Projects/x"), secret=secret)
    assert status == 401 and SECRET_HEADER in body["error"]
    assert chat.attempts() == []


@pytest.mark.parametrize("garbage", [
    b"not json", b"[1, 2]", b'{"event": "x"}', b'{"event": {"class": 3}}',
    json.dumps({"event": {"class": NODE_CREATED}}).encode(),
    json.dumps({"event": {"class": NODE_CREATED, "node": {"path": ""}}}).encode(),
    b"\xff\xfe",
])
def test_garbage_is_400_and_nothing_is_posted(relay: Relay, chat: FakeChat, garbage: bytes):
    assert relay.post(garbage)[0] == 400
    assert chat.attempts() == []


def test_events_it_does_not_translate_are_accepted_and_dropped(relay: Relay, chat: FakeChat):
    other = {"event": {"class": "OCP\\SystemTag\\TagAssignedEvent", "objectType": "files"}, "user": None, "time": 1}
    assert relay.post(other) == (202, {"status": "ignored"})
    assert chat.attempts() == []


def test_the_health_endpoint_answers_without_touching_mattermost(relay: Relay, chat: FakeChat):
    chat.down()
    with urllib.request.urlopen(relay.url + HEALTH_PATH, timeout=5) as response:
        assert response.status == 200


def test_receiver_down_is_retried_then_502_within_the_bound(relay: Relay, chat: FakeChat):
    settings = RelaySettings(public_url=PUBLIC, channel="files", timeout_seconds=1.0, attempts=3, backoff_seconds=0.2)
    chat.down()
    started = time.monotonic()
    status, body = relay.post(payload(NODE_CREATED, "/alice/files/Projects/lost.txt"))
    took = time.monotonic() - started
    assert status == 502 and "Mattermost" in body["error"]
    assert 0.6 <= took <= settings.worst_case_seconds + 2, f"took {took:.1f}s"
    chat.up()
    assert relay.post(payload(NODE_CREATED, "/alice/files/Projects/found.txt", node_id=43))[0] == 200
    chat.wait_for(lambda m: "found.txt" in m.text, channel="files")


def test_a_failing_server_is_retried_and_a_recovery_within_the_retries_posts_once(relay: Relay, chat: FakeChat):
    with chat.failing(500):
        status, _ = relay.post(payload(NODE_CREATED, "/alice/files/Projects/flaky.txt"))
    assert status == 502
    assert [a.status for a in chat.attempts()] == [500, 500, 500], "three attempts, each answered 500"


def test_a_refusal_by_mattermost_is_not_retried(chat: FakeChat, tmp_path: Path):
    for relay in start_relay(tmp_path, chat.base_url + "/hooks/unknownhook", attempts=3, timeout_seconds=1.0):
        assert relay.post(payload(NODE_CREATED, "/alice/files/Projects/x.txt"))[0] == 502
        assert [a.status for a in chat.attempts()] == [400]


def test_the_hook_url_and_secret_never_reach_the_log(relay: Relay, chat: FakeChat):
    hook = relay.hook_file.read_text().strip()
    chat.down()
    relay.post(payload(NODE_CREATED, "/alice/files/Projects/x.txt"))
    relay.post(b"garbage")
    relay.post(payload(NODE_CREATED, "/alice/files/Projects/x.txt"), secret="nope")
    stop_process(relay.process, timeout=5)
    log = relay.process.stderr.read() + relay.process.stdout.read()
    assert "failed" in log, "the relay says why a post failed"
    assert hook not in log and "nextcloudhook" not in log and SECRET not in log


def test_the_worst_case_stays_under_nextclouds_http_timeout():
    assert RelaySettings(public_url=PUBLIC, channel="files").worst_case_seconds < 30


def test_it_refuses_to_start_without_a_secret(tmp_path: Path):
    program = tmp_path / "relay.py"
    secret_file = str(tmp_path / "missing-secret")
    program.write_text(relay_program(RelaySettings(public_url=PUBLIC, channel="files", port=free_port(),
                                                   listen_host="127.0.0.1", secret_file=secret_file)))
    result = subprocess.run([sys.executable, str(program)], env={"PATH": os.environ["PATH"]},
                            capture_output=True, text=True, timeout=15)
    assert result.returncode == 1 and secret_file in result.stderr


@pytest.mark.parametrize("bad", [{"public_url": "https://x/path"}, {"channel": "Files!"},
                                 {"hook_url_file": "relative"}, {"attempts": 0}])
def test_rendering_refuses_unsafe_settings(bad: dict):
    with pytest.raises(ValueError):
        RelaySettings(**{"public_url": PUBLIC, "channel": "files", **bad})
