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


_PROGRAM = r"""
"use strict";
// Rendered by CERES: Uptime Kuma first-run setup and the Prometheus API key, over socket.io.
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
let apiKeys = null;
// Kuma sends the list after login and after every change; the ack of a call comes after it.
socket.on("apiKeyList", (list) => { apiKeys = list; });
// Kuma answers calls only once it has sent `info` (2.x registers its handlers after that).
const ready = new Promise((resolve) => socket.once("info", resolve));
socket.on("connect_error", (error) => process.stderr.write("uptime-kuma bootstrap: waiting for Kuma (" + error.message + ")\n"));

function call(event, ...args) {
    return new Promise((resolve) => socket.emit(event, ...args, resolve));
}

function refused(what, answer) {
    fail(what + " refused: " + ((answer && (answer.msg || (answer.tokenRequired && "2FA is on"))) || JSON.stringify(answer)));
}

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
    const login = await call("login", { username: username, password: password, token: "" });
    if (!login.ok) refused("login as " + username, login);

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
    return (
        _PROGRAM.replace("__SETTINGS__", json.dumps(values))
        .replace("__USERNAME_ENV__", USERNAME_ENV)
        .replace("__PASSWORD_ENV__", PASSWORD_ENV)
        .lstrip()
    )


def bootstrap_script(settings: KumaBootstrap) -> str:
    """The shell script `docker exec ... sh -s` runs: the program on node's stdin, with the
    image's own node_modules on the module path."""
    return "\n".join([
        "set -eu",
        f"cd '{settings.app_dir}'",
        f"NODE_PATH='{settings.app_dir}/node_modules' exec node - <<'{_HEREDOC_END}'",
        bootstrap_program(settings).rstrip("\n"),
        _HEREDOC_END,
        "",
    ])
