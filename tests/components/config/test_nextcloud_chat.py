"""Nextcloud's chat bootstrap (webhook_listeners registrations), run with `sh` against a stub `curl`
that answers like the app's OCS API (apps/webhook_listeners/lib/Controller/WebhooksController.php,
Nextcloud 31: `GET|POST /api/v1/webhooks`, `POST|DELETE /api/v1/webhooks/{id}`, `OCS-APIRequest`
required, basic auth as an admin, event classes checked against IWebhookCompatibleEvent, `authData`
never listed back) and a stub `php` that records `occ` calls and runs the real `php -r` snippets
(Debian `php-cli`). Both keep state in files, so runs can be repeated to prove idempotence.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.config.chat_relay import SECRET_HEADER
from components.config.nextcloud import (
    ADMIN_PASSWORD_VARIABLE,
    ADMIN_USERNAME,
    FILE_EVENTS,
    RELAY_SECRET_VARIABLE,
    ChatHooks,
    chat_script,
)
from tests.components.config.stubs import path_with, python_stub, require

PASSWORD = "NcAdminPassw0rdNcAdminPassw0rd42"
SECRET = "RelaySecret0123456789RelaySecret"
HOOKS = ChatHooks(relay_url="http://nextcloud-relay:8080/nextcloud", secret_header=SECRET_HEADER,
                  public_host="nextcloud.ceres.localhost")
API = "http://localhost:80/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks"

STUB_CURL = textwrap.dedent("""\
    import json, os, re, sys
    root = os.environ["STUB_ROOT"]
    def load(name, default):
        path = os.path.join(root, name)
        return json.load(open(path)) if os.path.exists(path) else default
    def save(name, value):
        json.dump(value, open(os.path.join(root, name), "w"))
    calls = load("curl-calls.json", [])
    calls.append(sys.argv[1:])
    save("curl-calls.json", calls)
    args, method, headers, body, config, url = sys.argv[1:], "GET", [], None, "", None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-K":
            config = sys.stdin.read() if args[i + 1] == "-" else open(args[i + 1]).read(); i += 1
        elif a == "-X":
            method = args[i + 1]; i += 1
        elif a == "-H":
            headers.append(args[i + 1]); i += 1
        elif a == "--data-binary":
            body = open(args[i + 1][1:]).read(); i += 1
        elif a == "--max-time":
            i += 1
        elif not a.startswith("-"):
            url = a
        i += 1
    def fail(status, message):
        sys.stderr.write(f"curl: (22) The requested URL returned error: {status} ({message})\\n")
        sys.exit(22)
    user = re.search(r'^user = "(.*)"$', config, re.M)
    if not user or user.group(1) != os.environ["STUB_EXPECT_CREDENTIALS"]:
        fail(401, "bad credentials")
    if "OCS-APIRequest: true" not in headers or "Host: nextcloud.ceres.localhost" not in headers:
        fail(412, "OCS-APIRequest or trusted Host missing")
    if os.environ.get("STUB_FAIL_LIST") and method == "GET":
        fail(500, "list failed on purpose")
    state = load("hooks.json", {"hooks": [], "next": 1})
    base = "http://localhost:80/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks"
    path = url.split("?")[0]
    compatible = {"OCP\\\\Files\\\\Events\\\\Node\\\\NodeCreatedEvent", "OCP\\\\Files\\\\Events\\\\Node\\\\NodeWrittenEvent"}
    def accepted(body):
        data = json.loads(body)
        for key in ("httpMethod", "uri", "event"):
            if not isinstance(data.get(key), str):
                fail(400, f"missing {key}")
        if data["event"].lstrip("\\\\") not in compatible:
            fail(400, "not an event class compatible with webhooks")
        return data
    if method == "GET" and path == base:
        listed = [{k: v for k, v in h.items() if k != "authData"} for h in state["hooks"]]
        print(json.dumps({"ocs": {"meta": {"status": "ok", "statuscode": 200}, "data": listed}}))
    elif method == "POST" and path == base:
        hook = dict(accepted(body), id=state["next"], userId="ceres-admin", userIdFilter="", headers=None)
        state["next"] += 1; state["hooks"].append(hook)
        print(json.dumps({"ocs": {"data": {k: v for k, v in hook.items() if k != "authData"}}}))
    elif method == "POST" and path.startswith(base + "/"):
        ident = int(path.rsplit("/", 1)[1])
        state["hooks"] = [dict(accepted(body), id=ident, userId="ceres-admin", userIdFilter="", headers=None)
                          if h["id"] == ident else h for h in state["hooks"]]
        print("{}")
    elif method == "DELETE" and path.startswith(base + "/"):
        ident = int(path.rsplit("/", 1)[1])
        state["hooks"] = [h for h in state["hooks"] if h["id"] != ident]
        print("{}")
    else:
        fail(404, f"{method} {url}")
    save("hooks.json", state)
""")

STUB_PHP = textwrap.dedent("""\
    import json, os, sys
    if sys.argv[1] == "-r":
        os.execv(os.environ["REAL_PHP"], ["php", *sys.argv[1:]])
    root = os.environ["STUB_ROOT"]
    path = os.path.join(root, "occ-calls.json")
    calls = json.load(open(path)) if os.path.exists(path) else []
    calls.append(sys.argv[1:])
    json.dump(calls, open(path, "w"))
    sys.stdin.read()
""")


def php() -> str:
    return require("php", "apt-get install -y php-cli")


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    python_stub(tmp_path, "curl", STUB_CURL)
    python_stub(tmp_path, "php", STUB_PHP)
    return tmp_path


def run(root: Path, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(root), "STUB_ROOT": str(root), "REAL_PHP": php(),
           "STUB_EXPECT_CREDENTIALS": f"{ADMIN_USERNAME}:{PASSWORD}",
           ADMIN_PASSWORD_VARIABLE: PASSWORD, RELAY_SECRET_VARIABLE: SECRET}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(["sh", "-s"], input=chat_script(HOOKS), env=env, capture_output=True, text=True, timeout=60)


def hooks(root: Path) -> list[dict]:
    return json.loads((root / "hooks.json").read_text())["hooks"]


def curl_calls(root: Path) -> list[list[str]]:
    return json.loads((root / "curl-calls.json").read_text())


def test_script_is_valid_sh() -> None:
    result = subprocess.run(["sh", "-n"], input=chat_script(HOOKS), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_first_run_registers_one_webhook_per_file_event_with_the_secret_header(stubs: Path) -> None:
    result = run(stubs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "registered"
    registered = hooks(stubs)
    assert sorted(h["event"] for h in registered) == sorted(FILE_EVENTS)
    for hook in registered:
        assert hook["uri"] == "http://nextcloud-relay:8080/nextcloud" and hook["httpMethod"] == "POST"
        assert hook["authMethod"] == "header" and hook["authData"] == {SECRET_HEADER: SECRET}
        assert hook["eventFilter"] == {"event.node.path": "/^\\/[^\\/]+\\/files\\/Projects\\//"}
    occ = json.loads((stubs / "occ-calls.json").read_text())
    assert [c[1:] for c in occ] == [["app:enable", "webhook_listeners"],
                                    ["config:system:set", "allow_local_remote_servers", "--value=true", "--type=boolean"]]


def test_a_second_run_converges_without_duplicating(stubs: Path) -> None:
    assert run(stubs).returncode == 0
    before = hooks(stubs)
    calls_before = len(curl_calls(stubs))
    second = run(stubs)
    assert second.returncode == 0, second.stderr
    assert hooks(stubs) == before, "same webhooks, same ids, same settings"
    methods = [c[c.index("-X") + 1] if "-X" in c else "GET" for c in curl_calls(stubs)[calls_before:]]
    creates = [c for c in curl_calls(stubs)[calls_before:] if "-X" in c and c[-1] == API]
    assert creates == [] and methods.count("POST") == 2, "existing webhooks are updated in place, none created"
    assert "updated in place" in second.stderr


def test_duplicates_left_by_hand_are_removed(stubs: Path) -> None:
    assert run(stubs).returncode == 0
    state = json.loads((stubs / "hooks.json").read_text())
    copy = dict(state["hooks"][0], id=99)
    state["hooks"].append(copy)
    (stubs / "hooks.json").write_text(json.dumps(state))
    result = run(stubs)
    assert result.returncode == 0, result.stderr
    assert sorted(h["id"] for h in hooks(stubs)) == [1, 2]
    assert "duplicate webhook 99 deleted" in result.stderr


def test_the_admin_password_and_relay_secret_never_appear_in_arguments(stubs: Path) -> None:
    assert run(stubs).returncode == 0
    assert run(stubs).returncode == 0
    recorded = json.dumps(curl_calls(stubs)) + (stubs / "occ-calls.json").read_text()
    assert PASSWORD not in recorded and SECRET not in recorded
    assert PASSWORD not in chat_script(HOOKS) and SECRET not in chat_script(HOOKS)
    assert all(call[call.index("-K") + 1] == "-" for call in curl_calls(stubs)), "credentials come on stdin"


def test_a_failed_listing_stops_before_anything_is_created(stubs: Path) -> None:
    result = run(stubs, STUB_FAIL_LIST="1")
    assert result.returncode != 0
    assert not (stubs / "hooks.json").exists() or hooks(stubs) == []


@pytest.mark.parametrize("missing", [ADMIN_PASSWORD_VARIABLE, RELAY_SECRET_VARIABLE])
def test_missing_secrets_stop_the_script_before_any_call(stubs: Path, missing: str) -> None:
    result = run(stubs, **{missing: None})
    assert result.returncode != 0 and missing in result.stderr
    assert not (stubs / "curl-calls.json").exists() and not (stubs / "occ-calls.json").exists()


def test_the_event_filter_matches_only_the_project_folders_tree() -> None:
    """The filter, evaluated as webhook_listeners does (PHPMongoQuery::_isEqual: a `/re/flags`
    string is re-wrapped in `/` and run with preg_match), by the real php."""
    pattern = HOOKS.event_filter()["event.node.path"]
    code = ("preg_match('/^\\/(.*?)\\/([a-z]*)$/i', $argv[1], $m);"
            "foreach (array_slice($argv, 2) as $p) echo (int) preg_match('/' . $m[1] . '/' . $m[2], $p);")
    paths = ["/alice/files/Projects/Apollo/plan.pdf", "/bob/files/Projects/x", "/alice/files/Other/plan.pdf",
             "/alice/files/ProjectsOld/x", "/alice/files_trashbin/files/Projects/x", "/alice/files/Projects"]
    result = subprocess.run([php(), "-r", code, pattern, *paths], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "110000"


@pytest.mark.parametrize("bad", [{"relay_url": "http://relay:8080/x?y"}, {"project_folder": "../etc"},
                                 {"public_host": "evil'host"}, {"secret_header": "X Secret"}])
def test_inputs_the_script_cannot_quote_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        ChatHooks(**{"relay_url": HOOKS.relay_url, "secret_header": SECRET_HEADER,
                     "public_host": HOOKS.public_host, **bad})
