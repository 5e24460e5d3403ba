"""The Uptime Kuma bootstrap script, run for real with `sh` and node against a stub Kuma.

The stub is a small socket.io 4 server that answers the events the script uses the way Uptime
Kuma 1.23's server does (server/server.js, socket-handlers/api-key-socket-handler.js: `info` on
connect, `needSetup`, `setup`, `login`, `getAPIKeyList` + the `apiKeyList` push, `addAPIKey`
returning `uk<id>_<secret>`, `deleteAPIKey`, and `/metrics` taking the key as the basic-auth
password; the notification and monitor events, the latter for test_uptime_kuma_monitors.py).
Like Kuma 2.x it answers only after `info`, so the script must wait for it. It keeps its state
in a JSON file the test can edit, and records every event with its arguments.

The script runs with the same `socket.io-client` line the image bundles: Kuma 1.23.0 shipped
~4.6, later 1.23.X dependency updates moved to the 4.8 line; both are tested. npm packages are
installed once into a cache under the temp dir (`npm install`; needs the npm registry).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from components.config.uptime_kuma import (
    MATTERMOST_URL_ENV,
    PASSWORD_ENV,
    SMTP_PASSWORD_ENV,
    USERNAME_ENV,
    KumaBootstrap,
    KumaNotifications,
    MattermostNotification,
    SmtpNotification,
    bootstrap_program,
    bootstrap_script,
    notifications_program,
    notifications_script,
)
from tests.components.config.stubs import stop_process

TIMEOUT = 60
SERVER_PACKAGE = "socket.io@4.8.1"
CLIENT_PACKAGES = ("socket.io-client@4.6.2", "socket.io-client@4.8.1")
NPM_CACHE = Path(tempfile.gettempdir()) / "ceres-test-node-modules"
USERNAME = "admin"
PASSWORD = "Kuma-bootstrap-s3cret-value-0123"

STUB_SERVER = r"""
"use strict";
const fs = require("fs");
const http = require("http");
const crypto = require("crypto");
const { Server } = require("socket.io");
const [stateFile, logFile] = process.argv.slice(2);

const load = () => JSON.parse(fs.readFileSync(stateFile, "utf8"));
const save = (state) => fs.writeFileSync(stateFile, JSON.stringify(state));
const record = (event, args) => fs.appendFileSync(logFile, JSON.stringify({ event, args }) + "\n");
const publicKeys = (state) => state.keys.map((k) => ({ id: k.id, name: k.name, userID: 1, active: k.active, expires: k.expires, status: k.active ? "active" : "inactive" }));

// The fields `editMonitor` copies from what it is sent (the ones an HTTP monitor uses).
const EDIT_FIELDS = ["name", "description", "type", "url", "method", "body", "headers", "timeout", "interval",
    "retryInterval", "resendInterval", "hostname", "maxretries", "port", "keyword", "ignoreTls", "expiryNotification",
    "upsideDown", "packetSize", "maxredirects", "dns_resolve_type", "proxyId", "authMethod", "httpBodyEncoding"];

const server = http.createServer((request, response) => {
    if (request.url !== "/metrics") { response.writeHead(404); response.end(); return; }
    const state = load();
    const header = request.headers.authorization || "";
    const decoded = Buffer.from(header.replace(/^Basic /, ""), "base64").toString();
    const given = decoded.slice(decoded.indexOf(":") + 1);
    const ok = state.apiKeysEnabled && state.keys.some((k) => k.active && given === "uk" + k.id + "_" + k.clear);
    record("GET /metrics", [ok ? 200 : 401]);
    response.writeHead(ok ? 200 : 401); response.end(ok ? "monitor_status 1\n" : "");
});
const io = new Server(server);

io.on("connection", async (socket) => {
    await new Promise((resolve) => setTimeout(resolve, 200));
    socket.emit("info", { version: "1.23.16-stub" });
    const checkLogin = () => { if (!socket.userID) throw new Error("You are not logged in."); };
    const handle = (event, body) => socket.on(event, async (...args) => {
        const callback = typeof args[args.length - 1] === "function" ? args.pop() : () => {};
        record(event, args);
        try { callback(await body(...args)); } catch (e) { callback({ ok: false, msg: e.message }); }
    });
    handle("needSetup", () => load().admin === null);
    handle("setup", (username, password) => {
        const state = load();
        if (state.admin) throw new Error("Uptime Kuma has been initialized. If you want to run setup again, please delete the database.");
        if (password.length < 6) throw new Error("Password is too weak.");
        state.admin = { username, password }; save(state);
        return { ok: true, msg: "successAdded" };
    });
    handle("login", (data) => {
        const admin = load().admin;
        if (!admin || data.username !== admin.username || data.password !== admin.password) return { ok: false, msg: "authIncorrectCreds" };
        socket.userID = 1;
        socket.emit("apiKeyList", publicKeys(load()));
        // Like Kuma's afterLogin (not awaited before the ack): the lists come after the answer.
        setImmediate(() => { sendMonitors(load()); sendNotifications(load()); });
        return { ok: true, token: "jwt" };
    });
    handle("getAPIKeyList", () => { checkLogin(); socket.emit("apiKeyList", publicKeys(load())); return { ok: true }; });
    handle("addAPIKey", (key) => {
        checkLogin();
        const state = load();
        const id = state.nextId++;
        const clear = crypto.randomBytes(20).toString("hex");
        state.keys.push({ id, name: key.name, active: key.active ? 1 : 0, expires: key.expires, clear });
        state.apiKeysEnabled = true; save(state);
        socket.emit("apiKeyList", publicKeys(state));
        return { ok: true, key: "uk" + id + "_" + clear, keyID: id };
    });
    // Notifications as 1.23 keeps them (server/notification.js save(), client.js sendNotificationList):
    // a row per notification with the whole object as JSON `config`; `applyExisting` links it to every
    // monitor of the user that has none yet.
    const sendNotifications = (state) => socket.emit("notificationList", state.notifications.map((n) => ({ id: n.id, name: n.name, config: n.config, active: 1, user_id: 1, is_default: n.is_default ? 1 : 0 })));
    handle("addNotification", (notification, notificationID) => {
        checkLogin();
        const state = load();
        let row = notificationID ? state.notifications.find((n) => n.id === notificationID) : null;
        if (notificationID && !row) throw new Error("notification not found");
        if (!row) { row = { id: state.nextNotificationId++ }; state.notifications.push(row); }
        row.name = notification.name; row.config = JSON.stringify(notification); row.is_default = notification.isDefault || false;
        if (notification.applyExisting) {
            for (const monitor of state.monitors) {
                if (!state.links.some((l) => l[0] === monitor.id && l[1] === row.id)) state.links.push([monitor.id, row.id]);
            }
        }
        save(state); sendNotifications(state);
        return { ok: true, msg: "Saved", id: row.id };
    });
    handle("deleteNotification", (id) => {
        checkLogin();
        const state = load();
        state.notifications = state.notifications.filter((n) => n.id !== id); save(state); sendNotifications(state);
        return { ok: true, msg: "Deleted" };
    });
    // Monitors as 1.23 keeps them (server/server.js `add`, `editMonitor`, `pauseMonitor`,
    // `resumeMonitor`, `deleteMonitor`; model/monitor.js toJSON): `monitorList` is an object keyed
    // by id; `editMonitor` assigns every field from what it is sent (a missing one becomes null);
    // the monitor's notifications are replaced by the truthy keys of `notificationIDList`.
    const monitorJSON = (state, m) => {
        const json = { id: m.id, user_id: 1, active: Boolean(m.active), parent: null, childrenIDs: [], tags: [], pathName: m.name };
        for (const field of EDIT_FIELDS) json[field] = m[field] ?? null;
        for (const flag of ["ignoreTls", "expiryNotification", "upsideDown"]) json[flag] = Boolean(m[flag]);
        json.accepted_statuscodes = JSON.parse(m.accepted_statuscodes_json);
        json.notificationIDList = {};
        for (const [monitorID, notificationID] of state.links) if (monitorID === m.id) json.notificationIDList[notificationID] = true;
        return json;
    };
    const sendMonitors = (state) => {
        const list = {};
        for (const m of state.monitors) list[m.id] = monitorJSON(state, m);
        socket.emit("monitorList", list);
    };
    const linkNotifications = (state, id, notificationIDList) => {
        state.links = state.links.filter((l) => l[0] !== id);
        for (const key in notificationIDList || {}) if (notificationIDList[key]) state.links.push([id, Number(key)]);
    };
    const validate = (monitor) => {
        if (!monitor.accepted_statuscodes.every((code) => typeof code === "string")) throw new Error("Accepted status codes are not all strings");
        if (!(monitor.interval >= 20)) throw new Error("Interval cannot be less than 20 seconds");
    };
    handle("add", (monitor) => {
        checkLogin();
        validate(monitor);
        const state = load();
        const { notificationIDList, accepted_statuscodes, ...fields } = monitor;
        const row = { ...fields, id: state.nextMonitorId++, accepted_statuscodes_json: JSON.stringify(accepted_statuscodes), active: monitor.active !== false ? 1 : 0 };
        state.monitors.push(row);
        linkNotifications(state, row.id, notificationIDList);
        save(state); sendMonitors(state);
        return { ok: true, msg: "successAdded", msgi18n: true, monitorID: row.id };
    });
    handle("editMonitor", (monitor) => {
        checkLogin();
        const state = load();
        const row = state.monitors.find((m) => m.id === monitor.id);
        if (!row) throw new Error("Cannot read properties of null (reading 'user_id')");
        validate(monitor);
        for (const field of EDIT_FIELDS) row[field] = monitor[field] ?? null;
        row.accepted_statuscodes_json = JSON.stringify(monitor.accepted_statuscodes);
        linkNotifications(state, row.id, monitor.notificationIDList);
        save(state); sendMonitors(state);
        return { ok: true, msg: "Saved.", msgi18n: true, monitorID: row.id };
    });
    const setActive = (id, active) => {
        checkLogin();
        const state = load();
        const row = state.monitors.find((m) => m.id === id);
        if (!row) throw new Error("monitor not found");
        row.active = active; save(state); sendMonitors(state);
        return { ok: true, msg: active ? "successResumed" : "successPaused", msgi18n: true };
    };
    handle("pauseMonitor", (id) => setActive(id, 0));
    handle("resumeMonitor", (id) => setActive(id, 1));
    handle("deleteMonitor", (id) => {
        checkLogin();
        const state = load();
        state.monitors = state.monitors.filter((m) => m.id !== id); linkNotifications(state, id, {});
        save(state); sendMonitors(state);
        return { ok: true, msg: "successDeleted", msgi18n: true };
    });
    handle("getMonitorList", () => { checkLogin(); sendMonitors(load()); return { ok: true }; });
    handle("deleteAPIKey", (id) => {
        checkLogin();
        const state = load();
        state.keys = state.keys.filter((k) => k.id !== id); save(state);
        setImmediate(() => socket.emit("apiKeyList", publicKeys(state)));
        return { ok: true };
    });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(server.address().port + "\n"));
"""


# Two monitors someone made in the UI before CERES: one shares a name with a platform endpoint.
FOREIGN_MONITORS = [
    {"id": 1, "name": "Gitea", "description": None, "type": "http", "url": "https://git.example.org", "interval": 300,
     "maxretries": 0, "ignoreTls": 0, "expiryNotification": 0, "upsideDown": 0, "maxredirects": 10,
     "accepted_statuscodes_json": '["200-299"]', "active": 1},
    {"id": 2, "name": "someone's blog", "description": "mine", "type": "keyword", "url": "https://blog.example.org",
     "keyword": "Welcome", "interval": 120, "maxretries": 1, "ignoreTls": 0, "expiryNotification": 1, "upsideDown": 0,
     "maxredirects": 10, "accepted_statuscodes_json": '["200-299"]', "active": 0},
]


def _require(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"`{binary}` not found: install the Debian package `{package}` (Node.js 18 or newer, with npm)")
    return path


def installed(spec: str) -> Path:
    """`<cache>/<name>-<version>` holding node_modules/<name>, installed on first use."""
    name, _, version = spec.rpartition("@")
    prefix = NPM_CACHE / f"{name}-{version}"
    if not (prefix / "node_modules" / name / "package.json").exists():
        prefix.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [_require("npm", "npm"), "install", "--no-audit", "--no-fund", "--no-save", "--no-package-lock",
             "--loglevel=error", "--prefix", str(prefix), spec],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"npm install {spec} failed (needs the npm registry):\n{result.stderr}"
    return prefix


@dataclass
class StubKuma:
    url: str
    state_file: Path
    log_file: Path

    def state(self) -> dict:
        return json.loads(self.state_file.read_text())

    def edit(self, **changes) -> None:
        self.state_file.write_text(json.dumps({**self.state(), **changes}))

    def events(self) -> list[dict]:
        if not self.log_file.exists():
            return []
        return [json.loads(line) for line in self.log_file.read_text().splitlines()]

    def names(self) -> list[str]:
        return [entry["event"] for entry in self.events()]


@pytest.fixture
def kuma(tmp_path: Path) -> Iterator[StubKuma]:
    node = _require("node", "nodejs")
    server_modules = installed(SERVER_PACKAGE) / "node_modules"
    state_file, log_file, program = tmp_path / "state.json", tmp_path / "events.log", tmp_path / "stub.js"
    state_file.write_text(json.dumps({"admin": None, "keys": [], "nextId": 1, "apiKeysEnabled": False,
                                      "notifications": [], "nextNotificationId": 1, "monitors": FOREIGN_MONITORS,
                                      "nextMonitorId": 3, "links": []}))
    program.write_text(STUB_SERVER)
    server = subprocess.Popen(
        [node, str(program), str(state_file), str(log_file)],
        env={"PATH": os.environ["PATH"], "NODE_PATH": str(server_modules)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = server.stdout.readline().strip()
        assert port.isdigit(), f"stub Kuma did not start: {server.stderr.read() if server.poll() is not None else port}"
        yield StubKuma(f"http://127.0.0.1:{port}", state_file, log_file)
    finally:
        stop_process(server, timeout=10)


def settings_for(kuma: StubKuma, tmp_path: Path, client: str = CLIENT_PACKAGES[-1]) -> KumaBootstrap:
    # The client's install prefix stands in for /app: its node_modules is the image's.
    return KumaBootstrap(url=kuma.url, app_dir=str(installed(client)), key_file=str(tmp_path / "data" / "ceres" / "api-key"),
                         timeout_seconds=30)


def run(settings: KumaBootstrap, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    """As ContainerScript runs it: `sh -s` with the script on stdin, secrets in the environment."""
    env = {"PATH": os.environ["PATH"], USERNAME_ENV: USERNAME}
    if password is not None:
        env[PASSWORD_ENV] = password
    return subprocess.run(["sh", "-s"], input=bootstrap_script(settings), env=env, capture_output=True, text=True,
                          timeout=TIMEOUT)


def last_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"bootstrap failed ({result.returncode}):\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def test_script_and_program_parse() -> None:
    script = bootstrap_script(KumaBootstrap())
    assert subprocess.run(["sh", "-n"], input=script, text=True, timeout=TIMEOUT).returncode == 0
    checked = subprocess.run([_require("node", "nodejs"), "--check", "-"], input=bootstrap_program(KumaBootstrap()),
                             capture_output=True, text=True, timeout=TIMEOUT)
    assert checked.returncode == 0, checked.stderr


@pytest.mark.parametrize("client", CLIENT_PACKAGES)
def test_first_run_sets_up_once_and_a_second_run_changes_nothing(kuma: StubKuma, tmp_path: Path, client: str) -> None:
    settings = settings_for(kuma, tmp_path, client)
    key = last_line(run(settings))
    assert key.startswith("uk1_") and len(key) > 20
    assert kuma.state()["admin"] == {"username": USERNAME, "password": PASSWORD}
    assert kuma.names()[:5] == ["needSetup", "setup", "login", "getAPIKeyList", "addAPIKey"]
    key_file = Path(settings.key_file)
    assert key_file.read_text().strip() == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600

    before = len(kuma.events())
    again = last_line(run(settings))
    assert again == key, "a re-run prints the same key; it neither rotates nor duplicates it"
    second = kuma.names()[before:]
    assert "setup" not in second and "addAPIKey" not in second and "deleteAPIKey" not in second
    assert "GET /metrics" in second, "the kept key is proven against Kuma before it is reused"
    assert [k["name"] for k in kuma.state()["keys"]] == ["ceres-prometheus"]


def test_a_key_deleted_in_kuma_is_replaced_by_exactly_one(kuma: StubKuma, tmp_path: Path) -> None:
    settings = settings_for(kuma, tmp_path)
    first = last_line(run(settings))
    kuma.edit(keys=[])  # someone deleted it in the UI
    second = last_line(run(settings))
    assert second != first and second.startswith("uk2_")
    assert [k["id"] for k in kuma.state()["keys"]] == [2]
    assert Path(settings.key_file).read_text().strip() == second


def test_duplicates_and_a_lost_key_file_end_with_one_fresh_key(kuma: StubKuma, tmp_path: Path) -> None:
    settings = settings_for(kuma, tmp_path)
    last_line(run(settings))
    duplicate = dict(kuma.state()["keys"][0], id=7)
    kuma.edit(keys=[*kuma.state()["keys"], duplicate], nextId=8)
    Path(settings.key_file).unlink()
    key = last_line(run(settings))
    assert key.startswith("uk8_")
    assert [k["id"] for k in kuma.state()["keys"]] == [8]
    assert kuma.names().count("deleteAPIKey") == 2


def test_the_password_travels_only_in_setup_and_login(kuma: StubKuma, tmp_path: Path) -> None:
    settings = settings_for(kuma, tmp_path)
    result = run(settings)
    key = last_line(result)
    assert PASSWORD not in bootstrap_script(settings)
    carrying = {entry["event"] for entry in kuma.events() if PASSWORD in json.dumps(entry["args"])}
    assert carrying == {"setup", "login"}, "Kuma's socket API takes the password only in these two calls"
    assert PASSWORD not in result.stdout + result.stderr
    assert key not in result.stderr


def test_a_changed_admin_password_fails_loudly_and_prints_no_key(kuma: StubKuma, tmp_path: Path) -> None:
    kuma.edit(admin={"username": USERNAME, "password": "changed-in-the-ui-42"})
    result = run(settings_for(kuma, tmp_path))
    assert result.returncode != 0
    assert "login as admin refused: authIncorrectCreds" in result.stderr
    assert result.stdout.strip() == ""
    assert "setup" not in kuma.names() and "addAPIKey" not in kuma.names()


def test_missing_credentials_stop_before_connecting(kuma: StubKuma, tmp_path: Path) -> None:
    result = run(settings_for(kuma, tmp_path), password=None)
    assert result.returncode != 0 and PASSWORD_ENV in result.stderr
    assert kuma.events() == []


def test_an_image_without_socket_io_client_is_named_in_the_error(kuma: StubKuma, tmp_path: Path) -> None:
    empty_app = tmp_path / "app"
    empty_app.mkdir()
    settings = KumaBootstrap(url=kuma.url, app_dir=str(empty_app), key_file=str(tmp_path / "key"), timeout_seconds=10)
    result = run(settings)
    assert result.returncode != 0
    assert "socket.io-client is not in" in result.stderr


@pytest.mark.parametrize("bad", [
    {"url": "http://kuma:3001/path"},
    {"app_dir": "relative"},
    {"key_file": "/x/'quote"},
    {"key_name": "bad\"name"},
])
def test_rendering_refuses_unsafe_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        KumaBootstrap(**bad)


# The notifications step: Mattermost and e-mail, kept by name, secrets from the environment.

HOOK_URL = "http://mattermost:8065/hooks/kumahooksecretid0123456789"
SMTP_PASSWORD = "smtp-relay-s3cret-0123456789"
NOTIFICATIONS = dict(mattermost=MattermostNotification(channel="alerts"),
                     smtp=SmtpNotification(host="smtp.example.org", port=587, from_address="ceres@example.org",
                                           recipients=("ops@example.org", "oncall@example.org"), username="ceres"))


def notifying(kuma: StubKuma, **chosen) -> KumaNotifications:
    return KumaNotifications(**chosen, url=kuma.url, app_dir=str(installed(CLIENT_PACKAGES[-1])), timeout_seconds=30)


def run_notifications(settings: KumaNotifications, **secrets: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], USERNAME_ENV: USERNAME, PASSWORD_ENV: PASSWORD,
           MATTERMOST_URL_ENV: HOOK_URL, SMTP_PASSWORD_ENV: SMTP_PASSWORD}
    for name, value in secrets.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    return subprocess.run(["sh", "-s"], input=notifications_script(settings), env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)


def saved(kuma: StubKuma) -> dict[str, dict]:
    return {n["name"]: json.loads(n["config"]) for n in kuma.state()["notifications"]}


@pytest.fixture
def set_up_kuma(kuma: StubKuma, tmp_path: Path) -> StubKuma:
    last_line(run(settings_for(kuma, tmp_path)))  # the first step has run: admin and key exist
    return kuma


def test_notifications_program_parses() -> None:
    program = notifications_program(KumaNotifications(**NOTIFICATIONS))
    checked = subprocess.run([_require("node", "nodejs"), "--check", "-"], input=program, capture_output=True,
                             text=True, timeout=TIMEOUT)
    assert checked.returncode == 0, checked.stderr
    assert subprocess.run(["sh", "-n"], input=notifications_script(KumaNotifications(**NOTIFICATIONS)),
                          text=True, timeout=TIMEOUT).returncode == 0


def test_mattermost_and_email_are_created_once_default_on_and_applied_to_every_monitor(set_up_kuma: StubKuma) -> None:
    kuma = set_up_kuma
    result = run_notifications(notifying(kuma, **NOTIFICATIONS))
    assert last_line(result) == "notifications: ceres-mattermost created, ceres-email created"
    configs = saved(kuma)
    assert configs["ceres-mattermost"] == {
        "name": "ceres-mattermost", "isDefault": True, "applyExisting": True, "type": "mattermost",
        "mattermostchannel": "alerts", "mattermostusername": "Uptime Kuma", "mattermostWebhookUrl": HOOK_URL}
    email = configs["ceres-email"]
    assert email["type"] == "smtp" and email["smtpHost"] == "smtp.example.org" and email["smtpPort"] == 587
    assert email["smtpSecure"] is False, "587 upgrades with STARTTLS"
    assert email["smtpTo"] == "ops@example.org, oncall@example.org" and email["smtpFrom"] == "ceres@example.org"
    assert email["smtpUsername"] == "ceres" and email["smtpPassword"] == SMTP_PASSWORD
    assert email["isDefault"] is True and email["applyExisting"] is True
    assert sorted(kuma.state()["links"]) == [[1, 1], [1, 2], [2, 1], [2, 2]], "both on both existing monitors"

    before = kuma.state()
    second = run_notifications(notifying(kuma, **NOTIFICATIONS))
    assert last_line(second) == "notifications: ceres-mattermost unchanged, ceres-email unchanged"
    assert kuma.state() == before, "a second run changes nothing"
    assert kuma.names().count("addNotification") == 2


def test_a_new_hook_url_updates_the_notification_in_place(set_up_kuma: StubKuma) -> None:
    kuma = set_up_kuma
    settings = notifying(kuma, mattermost=NOTIFICATIONS["mattermost"])
    last_line(run_notifications(settings))
    result = run_notifications(settings, **{MATTERMOST_URL_ENV: HOOK_URL + "new"})
    assert last_line(result) == "notifications: ceres-mattermost updated"
    assert [n["id"] for n in kuma.state()["notifications"]] == [1]
    assert saved(kuma)["ceres-mattermost"]["mattermostWebhookUrl"] == HOOK_URL + "new"


def test_duplicates_of_ours_are_removed_and_others_left_alone(set_up_kuma: StubKuma) -> None:
    kuma = set_up_kuma
    settings = notifying(kuma, mattermost=NOTIFICATIONS["mattermost"])
    last_line(run_notifications(settings))
    state = kuma.state()
    mine = state["notifications"][0]
    kuma.edit(notifications=[*state["notifications"], dict(mine, id=5),
                             {"id": 6, "name": "someone's pager", "config": "{}", "is_default": False}],
              nextNotificationId=7)
    assert last_line(run_notifications(settings)) == "notifications: ceres-mattermost unchanged"
    assert sorted(n["id"] for n in kuma.state()["notifications"]) == [1, 6]


def test_the_hook_url_and_smtp_password_come_from_the_environment_only(set_up_kuma: StubKuma) -> None:
    kuma = set_up_kuma
    settings = notifying(kuma, **NOTIFICATIONS)
    script = notifications_script(settings)
    assert HOOK_URL not in script and SMTP_PASSWORD not in script
    result = run_notifications(settings)
    last_line(result)
    assert HOOK_URL not in result.stdout + result.stderr and SMTP_PASSWORD not in result.stdout + result.stderr
    carrying = {e["event"] for e in kuma.events() if HOOK_URL in json.dumps(e["args"]) or SMTP_PASSWORD in json.dumps(e["args"])}
    assert carrying == {"addNotification"}


@pytest.mark.parametrize("missing", [MATTERMOST_URL_ENV, SMTP_PASSWORD_ENV])
def test_a_missing_secret_fails_before_saving_anything(set_up_kuma: StubKuma, missing: str) -> None:
    result = run_notifications(notifying(set_up_kuma, **NOTIFICATIONS), **{missing: None})
    assert result.returncode != 0 and missing in result.stderr
    assert set_up_kuma.state()["notifications"] == []


def test_a_relay_without_login_needs_no_password(set_up_kuma: StubKuma) -> None:
    anonymous = SmtpNotification(host="relay", port=25, from_address="a@b", recipients=("c@d",))
    result = run_notifications(notifying(set_up_kuma, smtp=anonymous), **{SMTP_PASSWORD_ENV: None})
    assert last_line(result) == "notifications: ceres-email created"
    assert saved(set_up_kuma)["ceres-email"]["smtpPassword"] == "" and saved(set_up_kuma)["ceres-email"]["smtpUsername"] == ""
