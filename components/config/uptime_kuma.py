"""Uptime Kuma bootstrap: first-run admin and one API key, without a click.

Kuma 1.x has no REST or CLI for its first run: the UI itself speaks socket.io (`needSetup`,
`setup`, `login`, `getAPIKeyList`, `addAPIKey`, `deleteAPIKey`). The image ships Node and, in its
production node_modules, `socket.io-client` (a runtime dependency in package.json, installed by
the image's `npm ci --omit=dev`), so the bootstrap is a Node program run with the image's own
node inside the container, speaking the same protocol as the UI.

Idempotent: setup only while Kuma says it needs it; the API key's secret is shown once, so it is
kept on Kuma's data volume (next to the database that holds its hash) and printed again on a
re-run as long as Kuma still accepts it; only a key that is gone, disabled or refused is
replaced, and never more than one key of that name exists. Credentials come from the
environment only. `tests/components/config/test_uptime_kuma_bootstrap.py` runs it against a
stub socket.io server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

USERNAME_ENV = "CERES_KUMA_USERNAME"
PASSWORD_ENV = "CERES_KUMA_PASSWORD"
_HEREDOC_END = "CERES_KUMA_BOOTSTRAP_JS"


@dataclass(frozen=True)
class KumaBootstrap:
    """Where Kuma answers inside its container, and the API key the platform keeps."""

    url: str = "http://127.0.0.1:3001"
    app_dir: str = "/app"
    key_name: str = "ceres-prometheus"
    key_file: str = "/app/data/ceres/prometheus-api-key"
    timeout_seconds: int = 120

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[A-Za-z0-9.:-]+$", self.url):
            raise ValueError(f"url {self.url!r} must be http(s)://host:port with no path")
        for path in (self.app_dir, self.key_file):
            if not path.startswith("/") or "'" in path:
                raise ValueError(f"{path!r} must be an absolute path without quotes")
        if not re.match(r"^[A-Za-z0-9 _.-]{1,64}$", self.key_name):
            raise ValueError(f"key name {self.key_name!r}: letters, digits, ' ', '_', '.', '-' only")


# What both programs share: settings, credentials from the environment, the socket and its calls.
_PRELUDE = r"""
"use strict";
// Rendered by CERES: __PURPOSE__, over Uptime Kuma's socket.io API.
const fs = require("fs");
const http = require("http");
const https = require("https");
const path = require("path");

const settings = __SETTINGS__;
const username = process.env.__USERNAME_ENV__;
const password = process.env.__PASSWORD_ENV__;

function fail(message) {
    process.stderr.write("uptime-kuma bootstrap: " + message + "\n");
    process.exit(1);
}

if (!username || !password) {
    fail("set __USERNAME_ENV__ and __PASSWORD_ENV__");
}

let io;
try {
    io = require("socket.io-client").io;
} catch (error) {
    fail("socket.io-client is not in " + settings.appDir + "/node_modules: " + error.message);
}

const deadline = setTimeout(() => fail("no answer from " + settings.url + " within " + settings.timeoutSeconds + "s"), settings.timeoutSeconds * 1000);
const socket = io(settings.url, { transports: ["websocket"], reconnectionDelay: 1000 });
// Kuma answers calls only once it has sent `info` (2.x registers its handlers after that).
const ready = new Promise((resolve) => socket.once("info", resolve));
socket.on("connect_error", (error) => process.stderr.write("uptime-kuma bootstrap: waiting for Kuma (" + error.message + ")\n"));

function call(event, ...args) {
    return new Promise((resolve) => socket.emit(event, ...args, resolve));
}

function refused(what, answer) {
    fail(what + " refused: " + ((answer && (answer.msg || (answer.tokenRequired && "2FA is on"))) || JSON.stringify(answer)));
}

async function logIn() {
    const login = await call("login", { username: username, password: password, token: "" });
    if (!login.ok) refused("login as " + username, login);
}
"""

_API_KEY_MAIN = r"""
let apiKeys = null;
// Kuma sends the list after login and after every change; the ack of a call comes after it.
socket.on("apiKeyList", (list) => { apiKeys = list; });

function storedKey() {
    try {
        return fs.readFileSync(settings.keyFile, "utf8").trim();
    } catch (error) {
        return "";
    }
}

// Kuma checks an API key on /metrics as the basic-auth password (the user name is ignored).
function acceptedByKuma(key) {
    const client = settings.url.startsWith("https:") ? https : http;
    return new Promise((resolve) => {
        const request = client.get(settings.url + "/metrics", { auth: "ceres:" + key, timeout: 10000, agent: false }, (response) => {
            response.resume();
            resolve(response.statusCode === 200);
        });
        request.on("timeout", () => request.destroy());
        request.on("error", () => resolve(false));
    });
}

async function keptKey(ours) {
    const key = storedKey();
    const entry = ours.find((candidate) => key.startsWith("uk" + candidate.id + "_"));
    return entry && entry.active && ours.length === 1 && await acceptedByKuma(key) ? key : null;
}

async function main() {
    await ready;
    if (await call("needSetup")) {
        const setup = await call("setup", username, password);
        if (!setup.ok) refused("setup", setup);
    }
    await logIn();

    const listed = await call("getAPIKeyList");
    if (!listed.ok || apiKeys === null) refused("listing API keys", listed);
    const ours = apiKeys.filter((key) => key.name === settings.keyName);
    let key = await keptKey(ours);
    if (key === null) {
        for (const stale of ours) {
            const deleted = await call("deleteAPIKey", stale.id);
            if (!deleted.ok) refused("deleting API key " + stale.id, deleted);
        }
        const added = await call("addAPIKey", { name: settings.keyName, expires: null, active: true });
        if (!added.ok) refused("adding API key", added);
        key = added.key;
        fs.mkdirSync(path.dirname(settings.keyFile), { recursive: true, mode: 0o700 });
        fs.writeFileSync(settings.keyFile, key + "\n", { mode: 0o600 });
    }
    clearTimeout(deadline);
    socket.close();
    // The last line is the step's (secret) output.
    process.stdout.write(key + "\n", () => process.exit(0));
}

main().catch((error) => fail(error.stack || String(error)));
"""


def bootstrap_program(settings: KumaBootstrap) -> str:
    """The Node program; it reads the credentials from the environment."""
    values = {
        "url": settings.url,
        "appDir": settings.app_dir,
        "keyName": settings.key_name,
        "keyFile": settings.key_file,
        "timeoutSeconds": settings.timeout_seconds,
    }
    return _render(_PRELUDE + _API_KEY_MAIN, "first-run setup and the Prometheus API key", values)


def _render(program: str, purpose: str, values: dict) -> str:
    return (
        program.replace("__SETTINGS__", json.dumps(values))
        .replace("__PURPOSE__", purpose)
        .replace("__USERNAME_ENV__", USERNAME_ENV)
        .replace("__PASSWORD_ENV__", PASSWORD_ENV)
        .lstrip()
    )


def bootstrap_script(settings: KumaBootstrap) -> str:
    """The shell script `docker exec ... sh -s` runs: the program on node's stdin, with the
    image's own node_modules on the module path."""
    return _shell(bootstrap_program(settings), settings.app_dir)


def _shell(program: str, app_dir: str) -> str:
    return "\n".join([
        "set -eu",
        f"cd '{app_dir}'",
        f"NODE_PATH='{app_dir}/node_modules' exec node - <<'{_HEREDOC_END}'",
        program.rstrip("\n"),
        _HEREDOC_END,
        "",
    ])


# Notifications: Kuma's own `mattermost` and `smtp` providers (server/notification-providers/
# mattermost.js, smtp.js in 1.23), created over the same socket API as the UI (`addNotification`
# with an id edits in place; `notificationList` is pushed after login and after every change).
# `isDefault` pre-selects them for monitors made later in the UI; `applyExisting` links them to
# every monitor that exists when they are saved. Secrets come from the environment only.
MATTERMOST_URL_ENV = "CERES_KUMA_MATTERMOST_URL"
SMTP_PASSWORD_ENV = "CERES_KUMA_SMTP_PASSWORD"
_NAME = re.compile(r"^[A-Za-z0-9 _.-]{1,64}$")


@dataclass(frozen=True)
class MattermostNotification:
    """Posts to the hook (URL from $CERES_KUMA_MATTERMOST_URL) in `channel` as `username`."""

    channel: str
    username: str = "Uptime Kuma"
    name: str = "ceres-mattermost"

    def config(self) -> dict:
        return {"type": "mattermost", "mattermostchannel": self.channel, "mattermostusername": self.username}


@dataclass(frozen=True)
class SmtpNotification:
    """Mails `recipients` through the relay; the password (if any) from $CERES_KUMA_SMTP_PASSWORD."""

    host: str
    port: int
    from_address: str
    recipients: tuple[str, ...]
    username: str | None = None
    starttls: bool = True
    name: str = "ceres-email"

    def __post_init__(self) -> None:
        if not self.recipients:
            raise ValueError("an e-mail notification needs at least one recipient")

    def config(self) -> dict:
        return {
            "type": "smtp",
            "smtpHost": self.host,
            "smtpPort": self.port,
            # nodemailer: `secure` is TLS from the first byte (port 465); otherwise it upgrades
            # with STARTTLS when the relay offers it.
            "smtpSecure": not self.starttls and self.port == 465,
            "smtpIgnoreTLSError": False,
            "smtpFrom": self.from_address,
            "smtpTo": ", ".join(self.recipients),
            "smtpUsername": self.username or "",
        }


@dataclass(frozen=True)
class KumaNotifications:
    """The notifications the platform keeps in Kuma, and where Kuma answers."""

    mattermost: MattermostNotification | None = None
    smtp: SmtpNotification | None = None
    url: str = "http://127.0.0.1:3001"
    app_dir: str = "/app"
    timeout_seconds: int = 120

    def __post_init__(self) -> None:
        KumaBootstrap(url=self.url, app_dir=self.app_dir)  # the same checks on the shared fields
        for wanted in (self.mattermost, self.smtp):
            if wanted is not None and not _NAME.match(wanted.name):
                raise ValueError(f"notification name {wanted.name!r}: letters, digits, ' ', '_', '.', '-' only")

    def wanted(self) -> list[dict]:
        """Each notification: its name, its plain fields, and the field filled from the environment."""
        result = []
        if self.mattermost is not None:
            result.append({"name": self.mattermost.name, "config": self.mattermost.config(),
                           "secretField": "mattermostWebhookUrl", "secretEnv": MATTERMOST_URL_ENV})
        if self.smtp is not None:
            result.append({"name": self.smtp.name, "config": self.smtp.config(),
                           "secretField": "smtpPassword", "secretEnv": SMTP_PASSWORD_ENV if self.smtp.username else None})
        return result


_NOTIFICATIONS_MAIN = r"""
let notifications = null;
socket.on("notificationList", (list) => { notifications = list; });

function desired(entry) {
    const notification = Object.assign({ name: entry.name, isDefault: true, applyExisting: true }, entry.config);
    if (entry.secretEnv) {
        if (!process.env[entry.secretEnv]) fail("set " + entry.secretEnv + " for " + entry.name);
        notification[entry.secretField] = process.env[entry.secretEnv];
    } else {
        notification[entry.secretField] = "";
    }
    return notification;
}

function stored(entry) {
    try { return JSON.parse(entry.config); } catch (error) { return {}; }
}

// applyExisting is an action, not a setting (Kuma 2.x stops storing it): left out of the comparison.
function unchanged(current, wanted) {
    return Object.keys(wanted).filter((key) => key !== "applyExisting")
        .every((key) => JSON.stringify(stored(current)[key]) === JSON.stringify(wanted[key]));
}

async function listed() {
    while (notifications === null) await new Promise((resolve) => setTimeout(resolve, 50));
    return notifications;
}

async function converge(entry, wanted) {
    const ours = (await listed()).filter((candidate) => candidate.name === entry.name);
    for (const extra of ours.slice(1)) {
        const deleted = await call("deleteNotification", extra.id);
        if (!deleted.ok) refused("deleting notification " + extra.id, deleted);
    }
    if (ours.length > 0 && unchanged(ours[0], wanted)) return entry.name + " unchanged";
    const saved = await call("addNotification", wanted, ours.length > 0 ? ours[0].id : null);
    if (!saved.ok) refused("saving notification " + entry.name, saved);
    return entry.name + (ours.length > 0 ? " updated" : " created");
}

async function main() {
    // Every secret checked before anything is saved: a half-applied set helps no one.
    const wanted = settings.notifications.map(desired);
    await ready;
    await logIn();
    const done = [];
    for (const [index, entry] of settings.notifications.entries()) done.push(await converge(entry, wanted[index]));
    clearTimeout(deadline);
    socket.close();
    process.stdout.write("notifications: " + done.join(", ") + "\n", () => process.exit(0));
}

main().catch((error) => fail(error.stack || String(error)));
"""


def notifications_program(settings: KumaNotifications) -> str:
    """The Node program that keeps the platform's notifications in Kuma."""
    values = {"url": settings.url, "appDir": settings.app_dir, "timeoutSeconds": settings.timeout_seconds,
              "notifications": settings.wanted()}
    return _render(_PRELUDE + _NOTIFICATIONS_MAIN, "the platform's notifications", values)


def notifications_script(settings: KumaNotifications) -> str:
    """The shell script `docker exec ... sh -s` runs for the notifications step."""
    return _shell(notifications_program(settings), settings.app_dir)
