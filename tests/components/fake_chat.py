"""A stand-in Mattermost for tests that post to its incoming webhooks (Alertmanager, Gitea, relays).

    from tests.components.fake_chat import fake_chat

    with fake_chat(channels=("alerts",)) as chat:
        url = chat.hook_url("abc", channel="town-square")  # http://127.0.0.1:PORT/hooks/abc
        ...                                                 # the program under test posts to url
        message = chat.wait_for(lambda m: "Disk full" in m.content, channel="alerts", timeout=10)
        chat.messages("alerts")                             # every post that landed there, in order
        chat.down(); chat.up()                              # stop listening (connection refused), listen again
        with chat.failing(500): ...                         # answer every post 500 meanwhile

It answers `POST /hooks/{id}` as Mattermost's handler does (mattermost/mattermost
server/channels/web/webhook.go `incomingWebhook` and app/webhook.go `HandleIncomingWebhook`):
- the route only matches ids of `[A-Za-z0-9]+` (anything else 404, other methods 405);
- body: `application/x-www-form-urlencoded` reads the JSON in the form field `payload`; any other or
  no Content-Type reads the body as JSON (multipart is not modelled: 400 here); bad JSON is 400;
- `text` empty and no `attachments` key (null counts as none, `[]` does not): 400, checked before the hook;
- an unknown hook id: 400 `web.incoming_webhook.invalid.app_error` (Mattermost says 400, not 404);
- `channel` overrides the hook's channel: a channel *name* (`alerts` or `#alerts`) of the team, 404 if
  the team has none; `@user` is a direct message to a known user (400 if unknown), recorded as `@user`;
  a hook made `locked=True` refuses any other channel with 403;
- success is 200 `ok` (text/plain); errors are Mattermost's AppError JSON (`id`, `message`, `status_code`).
The post is recorded as sent: Slack markup (`<url|text>`) is not rewritten to Markdown and long texts are
not split, and `username`/`icon_url` are recorded even though a real server ignores them unless
`EnablePostUsernameOverride`/`EnablePostIconOverride` are on.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs

from tests.support import serving

# Mattermost's default team channels: every team has them.
DEFAULT_CHANNELS = ("town-square", "off-topic")
_ROUTE = re.compile(r"^/hooks/([A-Za-z0-9]+)$")
# Mattermost's own ids: 26 lowercase letters and digits.
_ID_ALPHABET = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class ChatMessage:
    """One accepted post, as the channel shows it."""

    hook_id: str
    channel: str
    text: str
    username: str | None = None
    icon_url: str | None = None
    attachments: tuple[dict[str, Any], ...] = ()
    props: dict[str, Any] = field(default_factory=dict)
    received_at: float = 0.0  # time.monotonic() when it landed

    @property
    def content(self) -> str:
        """Everything a reader sees: the text, then each attachment's pretext, title, text and fields."""
        parts = [self.text]
        for attachment in self.attachments:
            parts += [str(attachment.get(key) or "") for key in ("pretext", "title", "text")]
            for item in attachment.get("fields") or ():
                parts += [str(item.get("title") or ""), str(item.get("value") or "")]
        return "\n".join(part for part in parts if part)


@dataclass(frozen=True)
class Attempt:
    """One request the fake answered (accepted or not), for tests that check retries and refusals."""

    path: str
    status: int
    error_id: str | None = None


@dataclass(frozen=True)
class _Hook:
    channel: str
    locked: bool


class _Refusal(Exception):
    def __init__(self, status: int, error_id: str, message: str):
        super().__init__(message)
        self.status, self.error_id = status, error_id


class FakeChat:
    """A team's channels, its incoming webhooks and what was posted; serve it with `fake_chat()`."""

    def __init__(self, channels: Iterable[str] = (), users: Iterable[str] = ()):
        self._channels = set(DEFAULT_CHANNELS) | set(channels)
        self._users = set(users)
        self._hooks: dict[str, _Hook] = {}
        self._messages: list[ChatMessage] = []
        self._attempts: list[Attempt] = []
        self._failing_status: int | None = None
        self._changed = threading.Condition()
        self._running = ExitStack()
        self._listening = False
        self.port = 0

    # -- setup ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_channel(self, name: str) -> None:
        with self._changed:
            self._channels.add(name)

    def hook_url(self, hook_id: str | None = None, channel: str = "town-square", *, locked: bool = False) -> str:
        """Create an incoming webhook posting to `channel` (made if new) and return its URL. Without
        an id, one is generated like Mattermost's (26 lowercase letters and digits)."""
        hook_id = hook_id or "".join(secrets.choice(_ID_ALPHABET) for _ in range(26))
        if not re.fullmatch(r"[A-Za-z0-9]+", hook_id):
            raise ValueError(f"hook id {hook_id!r}: Mattermost's route only matches [A-Za-z0-9]+")
        with self._changed:
            self._channels.add(channel)
            self._hooks[hook_id] = _Hook(channel, locked)
        return f"{self.base_url}/hooks/{hook_id}"

    # -- reading ---------------------------------------------------------------------------------

    def messages(self, channel: str | None = None) -> list[ChatMessage]:
        """Accepted posts in arrival order, all of them or one channel's."""
        with self._changed:
            return [m for m in self._messages if channel is None or m.channel == channel]

    def attempts(self) -> list[Attempt]:
        """Every POST to a `/hooks/{id}` route, in order, with its status (refusals and `failing` answers
        included; not connections refused while `down()`)."""
        with self._changed:
            return list(self._attempts)

    def wait_for(self, predicate: Callable[[ChatMessage], bool] = lambda m: True, timeout: float = 10.0, *,
                 channel: str | None = None) -> ChatMessage:
        """The first accepted post (in `channel`, if given) matching `predicate`, waiting at most
        `timeout` seconds for it; fails the test with what did arrive if none does."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in self._messages if (channel is None or m.channel == channel) and predicate(m)]
                if found:
                    return found[0]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching chat message within {timeout}s; got {self._messages!r}, "
                                         f"attempts {self._attempts!r}")
                self._changed.wait(left)

    # -- availability ----------------------------------------------------------------------------

    def up(self) -> None:
        """Listen (again) on 127.0.0.1, on the same port after a `down()`."""
        if self._listening:
            return
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _handler_for(self))
        self.port = server.server_address[1]
        self._running.enter_context(serving(server))
        self._listening = True

    def down(self) -> None:
        """Stop listening: posts now fail to connect, as when the chat server is gone."""
        self._running.close()
        self._listening = False

    @contextmanager
    def failing(self, status: int = 500) -> Iterator[None]:
        """Meanwhile, answer every post `status` (the server is up but broken) and record nothing."""
        with self._changed:
            self._failing_status = status
        try:
            yield
        finally:
            with self._changed:
                self._failing_status = None

    # -- the webhook -----------------------------------------------------------------------------

    def _answer(self, path: str, content_type: str, body: bytes) -> tuple[int, str | None, str]:
        """(status, error id, reply body) for one POST, recording the post if accepted."""
        with self._changed:
            if self._failing_status is not None:
                status, error_id, reply = self._failing_status, "fake_chat.failing", "failing on purpose"
            else:
                try:
                    self._messages.append(self._post(path, content_type, body))
                    status, error_id, reply = 200, None, "ok"
                except _Refusal as refusal:
                    status, error_id, reply = refusal.status, refusal.error_id, str(refusal)
            self._attempts.append(Attempt(path, status, error_id))
            self._changed.notify_all()
        return status, error_id, reply

    def _post(self, path: str, content_type: str, body: bytes) -> ChatMessage:
        hook_id = _ROUTE.match(path).group(1)  # the handler only calls this for matching paths
        request = _payload(content_type, body)
        text = request.get("text") or ""
        if not isinstance(text, str):
            raise _Refusal(400, "model.incoming_hook.parse_data.app_error", "text must be a string")
        if text == "" and request.get("attachments") is None:
            raise _Refusal(400, "web.incoming_webhook.text.app_error", "No text specified")
        hook = self._hooks.get(hook_id)
        if hook is None:
            raise _Refusal(400, "web.incoming_webhook.invalid.app_error", "Invalid webhook")
        channel = self._channel(hook, request.get("channel") or "")
        attachments = request.get("attachments") or []
        if not isinstance(attachments, list) or not all(isinstance(a, dict) for a in attachments):
            raise _Refusal(400, "model.incoming_hook.parse_data.app_error", "attachments must be a list of objects")
        return ChatMessage(hook_id=hook_id, channel=channel, text=text, username=request.get("username") or None,
                           icon_url=request.get("icon_url") or None, attachments=tuple(attachments),
                           props=dict(request.get("props") or {}), received_at=time.monotonic())

    def _channel(self, hook: _Hook, override: str) -> str:
        if not override:
            return hook.channel
        if override.startswith("@"):
            if override[1:] not in self._users:
                raise _Refusal(400, "web.incoming_webhook.user.app_error", f"Couldn't find the user {override}")
            channel = override
        else:
            channel = override.removeprefix("#")
            if channel not in self._channels:
                raise _Refusal(404, "web.incoming_webhook.channel.app_error", f"Couldn't find the channel {channel}")
        if hook.locked and channel != hook.channel:
            raise _Refusal(403, "web.incoming_webhook.channel_locked.app_error", "This webhook is locked to its channel")
        return channel


def _payload(content_type: str, body: bytes) -> dict[str, Any]:
    media_type = content_type.split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        raise _Refusal(400, "api.webhook.incoming.error", "fake_chat does not model multipart posts")
    if media_type == "application/x-www-form-urlencoded":
        raw = (parse_qs(body.decode("utf-8", "replace")).get("payload") or [""])[0]
    else:
        raw = body.decode("utf-8", "replace")
    try:
        request = json.loads(raw)
    except json.JSONDecodeError as error:
        raise _Refusal(400, "model.incoming_hook.parse_data.app_error", f"Unable to parse incoming data: {error}")
    if not isinstance(request, dict):
        raise _Refusal(400, "model.incoming_hook.parse_data.app_error", "Unable to parse incoming data")
    return request


def _handler_for(chat: FakeChat) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if not _ROUTE.match(self.path):
                self._reply(404, "text/plain", b"404 page not found")
                return
            status, error_id, message = chat._answer(self.path, self.headers.get("Content-Type", ""), body)
            if status == 200:
                self._reply(200, "text/plain", b"ok")
            else:
                error = {"id": error_id, "message": message, "detailed_error": "", "request_id": "",
                         "status_code": status}
                self._reply(status, "application/json", json.dumps(error).encode())

        def do_GET(self) -> None:
            self._not_allowed()

        do_PUT = do_DELETE = do_PATCH = do_GET

        def _not_allowed(self) -> None:
            if _ROUTE.match(self.path):
                self._reply(405, "text/plain", b"")
            else:
                self._reply(404, "text/plain", b"404 page not found")

        def _reply(self, status: int, content_type: str, data: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def fake_chat(channels: Iterable[str] = (), users: Iterable[str] = ()) -> Iterator[FakeChat]:
    """A FakeChat listening on a free 127.0.0.1 port, whose team has the default channels plus
    `channels` (and any a hook is made for) and the `users` a `@user` override may name; stopped on
    the way out, even if the test fails or took it down."""
    chat = FakeChat(channels, users)
    chat.up()
    try:
        yield chat
    finally:
        chat.down()
