"""Uptime Kuma bootstrap: first-run admin, one API key, the platform's notifications and one
monitor per public endpoint, without a click.

Kuma 1.x has no REST or CLI for its first run: the UI itself speaks socket.io (`needSetup`,
`setup`, `login`, `getAPIKeyList`, `addAPIKey`, `deleteAPIKey`). The image ships Node and, in its
production node_modules, `socket.io-client` (a runtime dependency in package.json, installed by
the image's `npm ci --omit=dev`), so the bootstrap is a Node program run with the image's own
node inside the container, speaking the same protocol as the UI.

Idempotent: setup only while Kuma says it needs it; the API key's secret is shown once, so it is
kept on Kuma's data volume (next to the database that holds its hash) and printed again on a
re-run as long as Kuma still accepts it; only a key that is gone, disabled or refused is
replaced, and never more than one key of that name exists. Credentials come from the
environment only. `tests/components/config/test_uptime_kuma_bootstrap.py` and
`test_uptime_kuma_monitors.py` run the programs against a stub socket.io server.
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

    def names(self) -> tuple[str, ...]:
        """The names the platform's notifications are kept under (what monitors are linked to)."""
        return tuple(wanted.name for wanted in (self.mattermost, self.smtp) if wanted is not None)

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


# Monitors: one HTTP monitor per public endpoint, over the same socket API as the UI (Kuma 1.23
# server/server.js: `add` takes the monitor with `notificationIDList` ({id: true}) and
# `accepted_statuscodes` (strings); `editMonitor` overwrites every field from the object it gets,
# so an edit sends the whole monitor as `monitorList` shows it (an object keyed by id, pushed after
# login and after every change) with our fields over it; `pauseMonitor`/`resumeMonitor` by id).
# CERES marks its monitors in `description`: only those are ever edited, so a monitor someone made
# in the UI is never touched, even if it has the same name.
MANAGED_MARK = "Managed by CERES"
_MANAGED_DESCRIPTION = f"{MANAGED_MARK}: a public endpoint of the platform (edits here are reverted)."
_RETIRED_DESCRIPTION = f"{MANAGED_MARK}: retired, no longer a public endpoint (paused to keep its history)."
# 2xx and 3xx: a gated UI answers 302 to its sign-in page. Two of the UI's own ranges, so the
# monitor's edit form shows them as chosen.
ACCEPTED_STATUS_CODES: tuple[str, ...] = ("200-299", "300-399")
_MONITOR_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/[^\s'\"\\]*)?$")
_MONITOR_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,150}$")


@dataclass(frozen=True)
class HttpMonitor:
    """One public endpoint: Kuma's monitor `name` and the URL it fetches."""

    name: str
    url: str

    def __post_init__(self) -> None:
        if not _MONITOR_NAME.match(self.name) or self.name != self.name.strip():
            raise ValueError(f"monitor name {self.name!r}: 1-150 printable characters, no outer spaces")
        if not _MONITOR_URL.match(self.url):
            raise ValueError(f"monitor {self.name!r}: url {self.url!r} must be http(s)://host[:port][/path]")


@dataclass(frozen=True)
class KumaMonitors:
    """The monitors the platform keeps in Kuma, the notifications (by name) each one gets, and how
    they probe. `ignore_tls` only where the certificates come from Caddy's internal CA, which Kuma
    does not trust; otherwise Kuma checks the chain and warns before a certificate expires."""

    monitors: tuple[HttpMonitor, ...] = ()
    notification_names: tuple[str, ...] = ()
    ignore_tls: bool = False
    interval_seconds: int = 60
    # Failed checks in a row before a monitor is DOWN (monitor_status 0); PENDING (2) before that.
    retries: int = 2
    url: str = "http://127.0.0.1:3001"
    app_dir: str = "/app"
    timeout_seconds: int = 120

    def __post_init__(self) -> None:
        KumaBootstrap(url=self.url, app_dir=self.app_dir)  # the same checks on the shared fields
        object.__setattr__(self, "monitors", tuple(self.monitors))
        object.__setattr__(self, "notification_names", tuple(self.notification_names))
        names = [monitor.name for monitor in self.monitors]
        if len(set(names)) != len(names):
            raise ValueError(f"monitor names must be unique, got {names}")
        for name in self.notification_names:
            if not _NAME.match(name):
                raise ValueError(f"notification name {name!r}: letters, digits, ' ', '_', '.', '-' only")
        # Kuma refuses intervals under 20 s (server/model/monitor.js validate()).
        if self.interval_seconds < 20 or self.retries < 0:
            raise ValueError(f"interval {self.interval_seconds}s must be >= 20 and retries {self.retries} >= 0")

    def fields(self) -> dict:
        """What every CERES monitor is set to, besides its name and URL."""
        return {
            "type": "http",
            "method": "GET",
            "description": _MANAGED_DESCRIPTION,
            "interval": self.interval_seconds,
            "retryInterval": self.interval_seconds,
            "maxretries": self.retries,
            # The UI's default: 80 % of the interval, so a slow answer fails before the next check.
            "timeout": int(self.interval_seconds * 0.8),
            "accepted_statuscodes": list(ACCEPTED_STATUS_CODES),
            # The answer of the endpoint itself: following a gate's 302 to the sign-in would test
            # Keycloak's login page through every gated UI, so one Keycloak outage would page once per UI.
            "maxredirects": 0,
            "ignoreTls": self.ignore_tls,
            "expiryNotification": not self.ignore_tls,
            "upsideDown": False,
        }


_MONITORS_MAIN = r"""
let monitors = null;
let notifications = null;
// Kuma pushes both lists after login (monitorList as an object keyed by id) and again after
// every change; the program reads them once, then works from the answers to its own calls.
socket.on("monitorList", (list) => { monitors = list; });
socket.on("notificationList", (list) => { notifications = list; });

async function pushed(read) {
    while (read() === null) await new Promise((resolve) => setTimeout(resolve, 50));
    return read();
}

const isOurs = (monitor) => typeof monitor.description === "string" && monitor.description.startsWith(settings.mark);
const isRetired = (monitor) => monitor.description === settings.retiredDescription;

function notificationIDs(list) {
    const ids = {};
    for (const name of settings.notificationNames) {
        const found = list.find((candidate) => candidate.name === name);
        if (!found) fail("notification " + name + " is missing: the notifications step makes it first");
        ids[String(found.id)] = true;
    }
    return ids;
}

// Kuma returns some booleans as 0/1: compare as the type we send.
function same(current, wanted) {
    if (typeof wanted === "boolean") return Boolean(current) === wanted;
    return JSON.stringify(current) === JSON.stringify(wanted);
}

function unchanged(current, wanted, ids) {
    const linked = current.notificationIDList || {};
    return Object.keys(wanted).every((key) => same(current[key], wanted[key]))
        && Object.keys(ids).every((id) => linked[id]);
}

async function save(current, wanted, ids) {
    // Notifications someone added in the UI stay; ours are added to them.
    const monitor = Object.assign({}, current, wanted, { notificationIDList: Object.assign({}, current.notificationIDList, ids) });
    const saved = await call("editMonitor", monitor);
    if (!saved.ok) refused("saving monitor " + current.name, saved);
}

async function keep(current, wanted, ids) {
    if (unchanged(current, wanted, ids)) return current.name + " unchanged";
    const retired = isRetired(current);
    await save(current, wanted, ids);
    if (!retired) return current.name + " updated";
    const resumed = await call("resumeMonitor", current.id);
    if (!resumed.ok) refused("resuming monitor " + current.name, resumed);
    return current.name + " resumed";
}

async function create(wanted, ids) {
    const added = await call("add", Object.assign({}, wanted, { notificationIDList: ids }));
    if (!added.ok) refused("adding monitor " + wanted.name, added);
    return wanted.name + " created";
}

// Deleting a monitor loses its history: one that is no longer wanted is paused and marked retired
// (a stopped monitor leaves /metrics, model/monitor.js stop(), so it raises no monitor_status alert).
async function retire(current) {
    if (isRetired(current)) return null;
    await save(current, { description: settings.retiredDescription }, {});
    const paused = await call("pauseMonitor", current.id);
    if (!paused.ok) refused("pausing monitor " + current.name, paused);
    return current.name + " retired";
}

async function main() {
    await ready;
    await logIn();
    const ids = notificationIDs(await pushed(() => notifications));
    const ours = Object.values(await pushed(() => monitors)).filter(isOurs).sort((a, b) => a.id - b.id);
    const done = [];
    const kept = new Set();
    for (const endpoint of settings.monitors) {
        const wanted = Object.assign({ name: endpoint.name, url: endpoint.url }, settings.fields);
        const current = ours.find((monitor) => monitor.name === endpoint.name);
        if (current) kept.add(current.id);
        done.push(current ? await keep(current, wanted, ids) : await create(wanted, ids));
    }
    // Ours that no endpoint names any more, and duplicates of a name (the lowest id is kept).
    for (const stale of ours.filter((monitor) => !kept.has(monitor.id))) {
        const retired = await retire(stale);
        if (retired) done.push(retired);
    }
    clearTimeout(deadline);
    socket.close();
    process.stdout.write("monitors: " + (done.join(", ") || "none") + "\n", () => process.exit(0));
}

main().catch((error) => fail(error.stack || String(error)));
"""


def monitors_program(settings: KumaMonitors) -> str:
    """The Node program that keeps one HTTP monitor per public endpoint in Kuma."""
    values = {
        "url": settings.url,
        "appDir": settings.app_dir,
        "timeoutSeconds": settings.timeout_seconds,
        "monitors": [{"name": monitor.name, "url": monitor.url} for monitor in settings.monitors],
        "notificationNames": list(settings.notification_names),
        "fields": settings.fields(),
        "mark": MANAGED_MARK,
        "retiredDescription": _RETIRED_DESCRIPTION,
    }
    return _render(_PRELUDE + _MONITORS_MAIN, "one HTTP monitor per public endpoint", values)


def monitors_script(settings: KumaMonitors) -> str:
    """The shell script `docker exec ... sh -s` runs for the monitors step."""
    return _shell(monitors_program(settings), settings.app_dir)
