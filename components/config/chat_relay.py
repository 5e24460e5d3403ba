"""The Nextcloud -> Mattermost relay: a small stdlib Python HTTP server, rendered as source text.

Nextcloud's `webhook_listeners` app (NC 30+) posts its own JSON, not Slack's, so something must
translate. Its payload (apps/webhook_listeners/lib/Listener/WebhooksEventListener.php and
lib/public/EventDispatcher/JsonSerializer.php, Nextcloud 31) is

    {"event": {"class": "OCP\\\\Files\\\\Events\\\\Node\\\\NodeCreatedEvent", "node": {"id": 42, "path": "/alice/files/Projects/x.pdf"}},
     "user": {"uid": "alice", "displayName": "Alice"}, "time": 1760000000}

(`user` is null for anonymous uploads through a public link), POSTed by the background job
`WebhookCall` with the webhook's auth headers, once, without retries of its own. The relay checks
the shared-secret header, turns file events into one readable Slack-format message (who, what,
path, a link to the file at Nextcloud's public URL) and forwards it to the Mattermost incoming
hook with a bounded timeout and retries: 401 on a bad secret, 400 on garbage, 202 on an event it
does not translate, 502 when Mattermost cannot be reached within the bound, 200 once posted.

A new upload fires NodeCreatedEvent then NodeWrittenEvent for the same file: the relay reports the
creation and drops a write of the same node that follows it within `dedupe_seconds`.

The hook URL (a credential: its id is the secret) is read from a file on every post, the shared
secret from the environment; neither is ever logged. Pure function of typed settings, no Pulumi
import; `tests/components/config/test_chat_relay.py` runs the rendered program for real.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

SECRET_HEADER = "X-Ceres-Relay-Secret"
NEXTCLOUD_PATH = "/nextcloud"
HEALTH_PATH = "/healthz"
# The node events Nextcloud 31 can send (AbstractNodeEvent implements IWebhookCompatibleEvent).
NODE_CREATED = "OCP\\Files\\Events\\Node\\NodeCreatedEvent"
NODE_WRITTEN = "OCP\\Files\\Events\\Node\\NodeWrittenEvent"


@dataclass(frozen=True)
class RelaySettings:
    """Where the relay listens, where it posts, and how hard it tries."""

    public_url: str  # Nextcloud's public URL: the links in the messages point there
    channel: str  # the Mattermost channel name the hook posts to
    username: str = "Nextcloud"
    hook_url_file: str = "/run/ceres/mattermost-hook-url"
    # The secret Nextcloud sends in SECRET_HEADER; a file, so `docker inspect` never shows it.
    secret_file: str = "/run/ceres/relay-secret"
    listen_host: str = "0.0.0.0"
    port: int = 8080
    timeout_seconds: float = 5.0
    attempts: int = 3
    backoff_seconds: float = 0.5
    dedupe_seconds: float = 120.0
    max_body_bytes: int = 65536

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[A-Za-z0-9.:-]+$", self.public_url):
            raise ValueError(f"public_url {self.public_url!r} must be http(s)://host[:port] with no path")
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", self.channel):
            raise ValueError(f"channel {self.channel!r} is not a Mattermost channel name")
        for name in ("hook_url_file", "secret_file"):
            if not getattr(self, name).startswith("/"):
                raise ValueError(f"{name} {getattr(self, name)!r} must be an absolute path")
        if not 0 < self.port < 65536 or self.attempts < 1 or self.timeout_seconds <= 0:
            raise ValueError("port, attempts and timeout_seconds must be positive (port below 65536)")

    @property
    def worst_case_seconds(self) -> float:
        """How long a post can take before the relay answers 502: every attempt timing out, plus
        the waits between them. Kept under Nextcloud's own HTTP client timeout (30 s)."""
        waits = sum(self.backoff_seconds * 2**n for n in range(self.attempts - 1))
        return self.attempts * self.timeout_seconds + waits


_PROGRAM = r'''
"""Rendered by CERES: Nextcloud webhook_listeners events -> Mattermost incoming webhook (Slack format)."""
import hmac
import json
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SETTINGS = json.loads(__SETTINGS__)
CONSTANTS = json.loads(__CONSTANTS__)
VERBS = {CONSTANTS["created"]: "added", CONSTANTS["written"]: "updated"}
SECRET = ""
_USER_FILES = re.compile(r"^/([^/]+)/files/(.+)$")
_recent_creations = {}
_recent_lock = threading.Lock()


def log(message):
    sys.stderr.write("nextcloud-relay: " + message + "\n")
    sys.stderr.flush()


class Garbage(ValueError):
    """A request that is not a Nextcloud webhook payload."""


def hook_url():
    # Read on every post: a re-created hook needs no restart, and the URL never sits in argv or env.
    with open(SETTINGS["hook_url_file"], encoding="utf-8") as handle:
        return handle.read().strip()


def slack_label(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\u2758")


def file_link(node, relative):
    base = SETTINGS["public_url"]
    if isinstance(node.get("id"), int):
        return base + "/index.php/f/" + str(node["id"])
    folder = "/" + relative.rsplit("/", 1)[0] if "/" in relative else "/"
    return base + "/index.php/apps/files/?dir=" + urllib.parse.quote(folder)


def message_for(payload):
    """The Slack-format post for one webhook payload; None for an event not worth a message."""
    if not isinstance(payload, dict):
        raise Garbage("not a JSON object")
    event = payload.get("event")
    if not isinstance(event, dict) or not isinstance(event.get("class"), str):
        raise Garbage("no event.class")
    verb = VERBS.get(event["class"])
    if verb is None:
        return None
    node = event.get("node")
    if not isinstance(node, dict) or not isinstance(node.get("path"), str) or not node["path"]:
        raise Garbage("no event.node.path")
    user = payload.get("user")
    if user is not None and not isinstance(user, dict):
        raise Garbage("user is not an object")
    key = node.get("id", node["path"])
    if verb == "updated" and recently_created(key):
        return None
    matched = _USER_FILES.match(node["path"])
    relative = matched.group(2) if matched else node["path"].lstrip("/")
    name = relative.rsplit("/", 1)[-1]
    folder = relative.rsplit("/", 1)[0] if "/" in relative else ""
    who = (user or {}).get("displayName") or (user or {}).get("uid") or "Someone with a public link"
    where = " in `" + folder + "`" if folder else ""
    text = ":file_folder: **" + who + "** " + verb + " <" + file_link(node, relative) + "|" + slack_label(name) + ">" + where
    return {"text": text, "username": SETTINGS["username"], "channel": SETTINGS["channel"]}, (verb, key)


def recently_created(key):
    with _recent_lock:
        now = time.monotonic()
        for stale in [k for k, at in _recent_creations.items() if now - at > SETTINGS["dedupe_seconds"]]:
            del _recent_creations[stale]
        return key in _recent_creations


def remember(verb, key):
    if verb == "added":
        with _recent_lock:
            _recent_creations[key] = time.monotonic()


def forward(message):
    """Post to Mattermost: every attempt bounded by the timeout, retried with a doubling wait on
    connection errors, 5xx and 429; a 4xx is a refusal that retrying cannot fix."""
    body = json.dumps(message).encode("utf-8")
    wait = SETTINGS["backoff_seconds"]
    for attempt in range(1, SETTINGS["attempts"] + 1):
        request = urllib.request.Request(hook_url(), data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=SETTINGS["timeout_seconds"]) as response:
                response.read()
                return True
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code != 429:
                log("Mattermost refused the post: HTTP " + str(error.code))
                return False
            reason = "HTTP " + str(error.code)
        except (urllib.error.URLError, OSError) as error:
            # The reason only (refused, timed out): the URL holds the hook's secret id.
            reason = type(getattr(error, "reason", error)).__name__
        log("post attempt " + str(attempt) + " failed: " + reason)
        if attempt < SETTINGS["attempts"]:
            time.sleep(wait)
            wait *= 2
    return False


class Handler(BaseHTTPRequestHandler):
    server_version = "ceres-nextcloud-relay"

    def log_message(self, *args):
        pass

    def reply(self, status, body):
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == CONSTANTS["health_path"]:
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path != CONSTANTS["nextcloud_path"]:
            self.reply(404, {"error": "not found"})
            return
        given = self.headers.get(CONSTANTS["secret_header"], "")
        if not hmac.compare_digest(given.encode("utf-8"), SECRET.encode("utf-8")):
            self.reply(401, {"error": "bad or missing " + CONSTANTS["secret_header"]})
            return
        try:
            length = int(self.headers.get("Content-Length") or "")
        except ValueError:
            self.reply(400, {"error": "a body with Content-Length is required"})
            return
        if not 0 < length <= SETTINGS["max_body_bytes"]:
            self.reply(400, {"error": "body empty or larger than " + str(SETTINGS["max_body_bytes"]) + " bytes"})
            return
        try:
            translated = message_for(json.loads(self.rfile.read(length).decode("utf-8")))
        except (Garbage, ValueError, UnicodeDecodeError) as error:
            self.reply(400, {"error": "not a Nextcloud webhook payload: " + str(error)[:200]})
            return
        if translated is None:
            self.reply(202, {"status": "ignored"})
            return
        message, (verb, key) = translated
        if forward(message):
            remember(verb, key)
            self.reply(200, {"status": "posted"})
        else:
            self.reply(502, {"error": "Mattermost did not take the post"})


def read_secret():
    try:
        with open(SETTINGS["secret_file"], encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def main():
    global SECRET
    SECRET = read_secret()
    if not SECRET:
        log("no secret in " + SETTINGS["secret_file"] + ": refusing to start")
        sys.exit(1)
    server = ThreadingHTTPServer((SETTINGS["listen_host"], SETTINGS["port"]), Handler)
    server.daemon_threads = True
    log("listening on port " + str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
'''


def relay_program(settings: RelaySettings) -> str:
    """The relay's Python source (stdlib only, Python 3.9+)."""
    constants = {
        "secret_header": SECRET_HEADER,
        "nextcloud_path": NEXTCLOUD_PATH,
        "health_path": HEALTH_PATH,
        "created": NODE_CREATED,
        "written": NODE_WRITTEN,
    }
    return (
        _PROGRAM.replace("__SETTINGS__", repr(json.dumps(asdict(settings))))
        .replace("__CONSTANTS__", repr(json.dumps(constants)))
        .lstrip()
    )
