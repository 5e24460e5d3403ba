"""Mattermost's rendered environment and bootstrap scripts.

No Mattermost runs here, so the scripts run for real with `sh` (dash, as in the image) against
stub `mmctl` and `curl` programs that keep the server's state in a file and record every command
line. The stubs answer in the formats mmctl 10.x prints (server/cmd/mmctl/commands: bot list
`{{.UserId}}: {{.Username}}(Owned by ...)`, token list `{{.Id}}: {{.Description}}` failing with
"there are no tokens" when empty, token generate `{{.Token}}: {{.Description}}`, user search failing
for an unknown user) and accept only what local mode serves (no `bot create`: it refuses --local).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from components.config import mattermost as config
from tests.components.config.stubs import path_with, python_stub

TIMEOUT = 30
PASSWORD = "Adm1n-'quote'\"dq\\back $HOME x"  # quoting traps; the real one is 32 alphanumerics
BOOTSTRAP = config.Bootstrap(
    admin_email="ceres-admin@ceres.example.com",
    bot_email="ceres-bot@ceres.example.com",
)

STUB = r'''
import json, os, sys

state_path = os.environ["STUB_STATE"]
state = json.load(open(state_path)) if os.path.exists(state_path) else {
    "users": {}, "bots": [], "tokens": [], "next": 1}
name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(json.dumps([name, *args]) + "\n")

def save():
    json.dump(state, open(state_path, "w"))

def die(message, code=1):
    sys.stderr.write(f"Error: {message}\n")
    sys.exit(code)

def new_id():
    state["next"] += 1
    return f"id{state['next']:024d}"

def need_user(user):
    if user not in state["users"]:
        die(f"user {user} not found")

if name == "curl":
    socket = args[args.index("--unix-socket") + 1]
    if socket != os.environ.get("MMCTL_LOCAL_SOCKET_PATH") or args[-1] != "http://localhost/api/v4/users":
        die(f"unexpected curl call {args}", 2)
    assert args[args.index("--data-binary") + 1] == "@-"
    body = json.loads(sys.stdin.read())
    if body["username"] in state["users"]:
        sys.stderr.write("curl: (22) The requested URL returned error: 400\n"); sys.exit(22)
    state["users"][body["username"]] = {"email": body["email"], "password": body["password"], "roles": ["system_user"]}
    save(); print(json.dumps({"id": new_id(), "username": body["username"]})); sys.exit(0)

if args[:1] != ["--local"] or not os.environ.get("MMCTL_LOCAL_SOCKET_PATH"):
    die("this stub only speaks local mode", 2)
command = args[1:]
match command:
    case ["user", "search", user]:
        need_user(user); print(f"id: x\nusername: {user}")
    case ["roles", "system-admin", user]:
        need_user(user)
        if "system_admin" not in state["users"][user]["roles"]:
            state["users"][user]["roles"].append("system_admin")
    case ["bot", "create", *_]:
        die("This command cannot be run in local mode", 1)
    case ["bot", "list", "--all"]:
        for bot in state["bots"]:
            print(f"uid-{bot}: {bot}(Owned by {bot}, Enabled)")
    case ["user", "convert", user, "--bot"]:
        need_user(user)
        if user not in state["bots"]:
            state["bots"].append(user)
        print(f"{user} converted to bot.")
    case ["token", "list", user]:
        need_user(user)
        mine = [t for t in state["tokens"] if t["user"] == user]
        if not mine:
            die(f'there are no tokens for the "{user}"')
        for token in mine:
            print(f"{token['id']}: {token['description']}")
    case ["token", "generate", user, description]:
        need_user(user)
        token = {"id": new_id(), "token": f"tok{len(state['tokens']) + 1:023d}", "user": user, "description": description}
        state["tokens"].append(token)
        print(f"{token['token']}: {description}")
    case _:
        die(f"stub mmctl does not know {command}", 3)
save()
'''


@pytest.fixture
def server(tmp_path: Path):
    """A stub Mattermost: `mmctl` and `curl` on PATH sharing one state file and one command log."""
    stub = python_stub(tmp_path, "fake_mattermost.py", STUB)
    for name in ("mmctl", "curl"):
        (stub.parent / name).symlink_to(stub)
    return tmp_path


def run_script(server: Path, script: str, *, password: str | None = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path_with(server),
        "STUB_STATE": str(server / "state.json"),
        "STUB_LOG": str(server / "calls.jsonl"),
    }
    if password is not None:
        env[config.ADMIN_PASSWORD_VARIABLE] = password
    # As the bootstrap step runs it, the script on stdin of `sh -s`; the image's sh is dash (Ubuntu).
    return subprocess.run(["dash", "-s"], input=script, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def state(server: Path) -> dict:
    return json.loads((server / "state.json").read_text())


def calls(server: Path) -> list[list[str]]:
    log = server / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def creations(server: Path) -> list[list[str]]:
    made = []
    for call in calls(server):
        if call[0] == "curl" or call[2:4] in (["user", "convert"], ["token", "generate"]):
            made.append(call)
    return made


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"script failed ({result.returncode}):\n{result.stderr}"
    return result


def test_scripts_are_valid_sh():
    for script in (config.setup_script(BOOTSTRAP), config.bot_token_script()):
        result = subprocess.run(["dash", "-n"], input=script, capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr


def test_first_run_makes_the_admin_and_the_bot(server: Path):
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    made = state(server)
    admin = made["users"]["ceres-admin"]
    assert admin["password"] == PASSWORD, "the password survives JSON quoting byte for byte"
    assert admin["email"] == "ceres-admin@ceres.example.com"
    assert "system_admin" in admin["roles"]
    assert made["bots"] == ["ceres-bot"]
    # The bot gets its rights from the team it creates (team admin), never system-wide ones.
    assert "system_admin" not in made["users"]["ceres-bot"]["roles"]
    assert not [call for call in calls(server) if call[0] == "mmctl" and call[2] in ("team", "channel")], \
        "the team and channels are the provider's, not the bootstrap's"


def test_second_run_creates_nothing(server: Path):
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    first = state(server)
    before = len(creations(server))
    result = ok(run_script(server, config.setup_script(BOOTSTRAP)))
    assert len(creations(server)) == before
    assert state(server) == first
    assert "exists" in result.stderr


def test_the_password_never_appears_on_a_command_line(server: Path):
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    assert calls(server)
    for call in calls(server):
        assert PASSWORD not in " ".join(call), call
    assert PASSWORD not in config.setup_script(BOOTSTRAP)


def test_without_the_password_it_stops_before_touching_the_server(server: Path):
    result = run_script(server, config.setup_script(BOOTSTRAP), password=None)
    assert result.returncode != 0
    assert "MM_ADMIN_PASSWORD is not set" in result.stderr
    assert calls(server) == []


def test_a_human_user_called_like_the_bot_stops_the_run(server: Path):
    (server / "state.json").write_text(json.dumps({
        "users": {"ceres-bot": {"email": "x@y.z", "password": "p", "roles": ["system_user"]}},
        "teams": {}, "bots": [], "tokens": [], "next": 1,
    }))
    result = run_script(server, config.setup_script(BOOTSTRAP))
    assert result.returncode != 0
    assert "a user named ceres-bot exists and is not a bot" in result.stderr
    assert not any(call[2:4] == ["user", "convert"] for call in calls(server))


def test_bot_token_is_issued_once_and_printed_last(server: Path):
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    result = ok(run_script(server, config.bot_token_script(), password=None))
    tokens = state(server)["tokens"]
    assert [(t["user"], t["description"]) for t in tokens] == [("ceres-bot", config.TOKEN_MARKER)]
    assert result.stdout.strip().splitlines()[-1] == tokens[0]["token"]


def test_a_second_token_run_issues_nothing_and_says_what_to_do(server: Path):
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    ok(run_script(server, config.bot_token_script(), password=None))
    result = run_script(server, config.bot_token_script(), password=None)
    assert result.returncode != 0
    assert "already has the token CERES issued" in result.stderr
    assert "token revoke" in result.stderr
    assert result.stdout == ""
    assert len(state(server)["tokens"]) == 1


def test_tokens_made_by_others_do_not_count_as_ceres_token(server: Path):
    ok(run_script(server, config.setup_script(BOOTSTRAP)))
    data = state(server)
    data["tokens"].append({"id": "other", "token": "t", "user": "ceres-bot", "description": "made by hand"})
    (server / "state.json").write_text(json.dumps(data))
    ok(run_script(server, config.bot_token_script(), password=None))
    assert [t["description"] for t in state(server)["tokens"]] == ["made by hand", config.TOKEN_MARKER]


def test_token_run_fails_clearly_when_the_bot_is_missing(server: Path):
    result = run_script(server, config.bot_token_script(), password=None)
    assert result.returncode != 0
    assert "cannot list the tokens of ceres-bot" in result.stderr


@pytest.mark.parametrize("field, value", [
    ("admin_username", "ceres; rm -rf /"), ("admin_username", "Ceres"), ("admin_email", "a@b'c.d"),
    ("bot_username", "bot name"), ("bot_username", "$(id)"),
])
def test_rendering_refuses_what_could_break_the_script(field, value):
    with pytest.raises(ValueError):
        config.Bootstrap(**{**BOOTSTRAP.__dict__, field: value})


def test_environment_sets_documented_keys_of_the_pinned_version():
    # Mattermost maps MM_<SECTION>_<KEY> onto config.json (model/config.go, 10.11): these are the
    # ServiceSettings/SqlSettings fields the brief and INTEGRATION_FACTS name.
    documented = {
        "SqlSettings": {"DriverName"},
        "ServiceSettings": {
            "SiteURL", "ListenAddress", "TrustedProxyIPHeader", "EnableIncomingWebhooks", "EnablePostUsernameOverride",
            "EnablePostIconOverride", "EnableBotAccountCreation", "EnableUserAccessTokens", "EnableLocalMode",
            "LocalModeSocketLocation",
        },
    }
    allowed = {f"MM_{section.upper()}_{key.upper()}" for section, keys in documented.items() for key in keys}
    env = dict(entry.split("=", 1) for entry in config.environment(
        config.MattermostSettings(site_url="https://chat.example.com", port=8065)))
    assert set(env) == allowed
    assert env["MM_SERVICESETTINGS_SITEURL"] == "https://chat.example.com"
    assert env["MM_SERVICESETTINGS_LISTENADDRESS"] == ":8065"
    assert env["MM_SERVICESETTINGS_LOCALMODESOCKETLOCATION"] == config.LOCAL_SOCKET


def test_datasource_percent_encodes_the_credentials():
    password = "p@ss:w/rd?#%"
    url = config.datasource("mattermost", password, "postgres", 5432, "mattermost")
    parts = urlsplit(url)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == ("postgres", "postgres", 5432, "/mattermost")
    assert unquote(parts.password) == password and parts.username == "mattermost"
    assert parts.query == "sslmode=disable&connect_timeout=10"

