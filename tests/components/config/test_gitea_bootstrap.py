"""Gitea's bootstrap script, run for real by `sh` against stub `gitea` and `curl` executables.

The stubs keep Gitea's state (users, tokens, the admin's password) in a JSON file and behave as
Gitea 1.24 does where the script depends on it (cmd/admin_user_list.go, admin_user_create.go,
admin_user_generate_access_token.go: a token name can be used once; DELETE
/api/v1/users/{user}/tokens/{name} answers 204, or 404 when there is none, with basic auth).
Every call's argv is recorded, so the tests can say where the password travelled.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.config.gitea import (
    ADMIN_PASSWORD_VARIABLE,
    ADMIN_USERNAME,
    TOKEN_NAME,
    Bootstrap,
    bootstrap_script,
    webhook_allowed_hosts,
)
from tests.components.config.stubs import path_with, python_stub

BOOTSTRAP = Bootstrap(
    admin_username=ADMIN_USERNAME,
    admin_email=f"{ADMIN_USERNAME}@ceres.example.com",
    token_name=TOKEN_NAME,
    api_url="http://localhost:3000/api/v1",
)
PASSWORD = "Zq7pW2kR9xT4mN8vB3cL6hJ1sD5fG0aY"

STUB_GITEA = textwrap.dedent("""\
    import json, os, sys
    state_path = os.environ["STUB_STATE"]
    state = json.load(open(state_path))
    state["calls"].append(["gitea", *sys.argv[1:]])
    args = sys.argv[1:]
    # Drains its stdin, as a CLI may: under `sh -s` that would swallow the rest of the script.
    sys.stdin.read()

    def flag(name):
        for i, arg in enumerate(args):
            if arg == name:
                return args[i + 1]
            if arg.startswith(name + "="):
                return arg.split("=", 1)[1]

    def save():
        json.dump(state, open(state_path, "w"))

    if args[:3] == ["admin", "user", "list"]:
        print("ID   Username     Email                IsActive")
        for i, (name, user) in enumerate(state["users"].items(), 1):
            if user["admin"] or "--admin" not in args:
                print(f"{i}    {name}  {user['email']}  true")
    elif args[:3] == ["admin", "user", "create"]:
        name = flag("--username")
        if name in state["users"]:
            save(); sys.exit("CreateUser: user already exists [name: %s]" % name)
        state["users"][name] = {"email": flag("--email"), "password": flag("--password"),
                                "admin": "--admin" in args, "must_change": flag("--must-change-password")}
        print(f"New user '{name}' has been successfully created!")
    elif args[:3] == ["admin", "user", "generate-access-token"]:
        name, token_name = flag("--username"), flag("--token-name")
        tokens = state["users"][name].setdefault("tokens", {})
        if token_name in tokens:
            save(); sys.exit("access token name has been used already")
        state["issued"] += 1
        tokens[token_name] = {"value": f"token-{state['issued']}", "scopes": flag("--scopes")}
        print(tokens[token_name]["value"] if "--raw" in args else "Access token was successfully created: ...")
    else:
        save(); sys.exit(f"stub gitea: unexpected {args}")
    save()
""")

STUB_CURL = textwrap.dedent("""\
    import json, os, re, sys
    state_path = os.environ["STUB_STATE"]
    state = json.load(open(state_path))
    args = sys.argv[1:]
    state["calls"].append(["curl", *args])
    config = sys.stdin.read() if args[args.index("-K") + 1] == "-" else ""
    user, password = re.fullmatch(r'user = "([^:]*):(.*)"\\n', config).groups()
    url = args[-1]
    owner, token_name = re.fullmatch(r"http://localhost:3000/api/v1/users/([^/]+)/tokens/([^/]+)", url).groups()
    account = state["users"].get(user)
    if args[args.index("-X") + 1] != "DELETE" or "%{http_code}" not in args:
        status = "400"
    elif account is None or account["password"] != password or user != owner:
        status = "401"
    elif account.get("tokens", {}).pop(token_name, None) is not None:
        status = "204"
    else:
        status = "404"
    json.dump(state, open(state_path, "w"))
    sys.stdout.write(status)
""")


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    for name, source in (("gitea", STUB_GITEA), ("curl", STUB_CURL)):
        python_stub(tmp_path, name, source)
    (tmp_path / "state.json").write_text(json.dumps({"users": {}, "calls": [], "issued": 0}))
    return tmp_path


def run(stubs: Path, password: str | None = PASSWORD, bootstrap: Bootstrap = BOOTSTRAP) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(stubs), "STUB_STATE": str(stubs / "state.json")}
    if password is not None:
        env[ADMIN_PASSWORD_VARIABLE] = password
    return subprocess.run(["sh", "-s"], input=bootstrap_script(bootstrap), env=env,
                          capture_output=True, text=True, timeout=30)


def state(stubs: Path) -> dict:
    return json.loads((stubs / "state.json").read_text())


def test_script_is_valid_sh() -> None:
    result = subprocess.run(["sh", "-n"], input=bootstrap_script(BOOTSTRAP), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_first_run_creates_the_admin_and_prints_the_token_last(stubs: Path) -> None:
    result = run(stubs)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["token-1"]
    admin = state(stubs)["users"][ADMIN_USERNAME]
    assert admin["admin"] and admin["password"] == PASSWORD and admin["must_change"] == "false"
    assert admin["email"] == f"{ADMIN_USERNAME}@ceres.example.com"
    assert admin["tokens"] == {TOKEN_NAME: {"value": "token-1", "scopes": "all"}}


def test_a_second_run_keeps_the_admin_and_leaves_exactly_one_platform_token(stubs: Path) -> None:
    assert run(stubs).returncode == 0
    second = run(stubs)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "token-2"
    calls = state(stubs)["calls"]
    assert sum(call[1:4] == ["admin", "user", "create"] for call in calls) == 1
    assert state(stubs)["users"][ADMIN_USERNAME]["tokens"] == {TOKEN_NAME: {"value": "token-2", "scopes": "all"}}
    assert "replaced the old" in second.stderr


def test_the_password_travels_only_where_the_gitea_cli_demands_it(stubs: Path) -> None:
    assert PASSWORD not in bootstrap_script(BOOTSTRAP)
    run(stubs)
    run(stubs)
    carrying = [call for call in state(stubs)["calls"] if any(PASSWORD in arg for arg in call)]
    # `gitea admin user create` has only --password; curl reads it from stdin (-K -).
    assert [call[:4] for call in carrying] == [["gitea", "admin", "user", "create"]]
    assert any(call[0] == "curl" for call in state(stubs)["calls"])


def test_without_the_password_nothing_runs(stubs: Path) -> None:
    result = run(stubs, password=None)
    assert result.returncode != 0 and ADMIN_PASSWORD_VARIABLE in result.stderr
    assert state(stubs)["calls"] == []


def test_a_password_curl_could_misread_is_refused(stubs: Path) -> None:
    result = run(stubs, password='abc"def')
    assert result.returncode != 0
    assert state(stubs)["calls"] == []


def test_a_refused_token_deletion_stops_before_a_new_token(stubs: Path) -> None:
    assert run(stubs).returncode == 0
    result = run(stubs, password=PASSWORD[::-1])  # the admin exists with another password
    assert result.returncode != 0 and "HTTP 401" in result.stderr
    assert state(stubs)["users"][ADMIN_USERNAME]["tokens"] == {TOKEN_NAME: {"value": "token-1", "scopes": "all"}}


def test_bootstrap_inputs_are_validated() -> None:
    with pytest.raises(ValueError):
        Bootstrap("Admin;rm", "a@b.c", TOKEN_NAME, "http://localhost:3000/api/v1")
    with pytest.raises(ValueError):
        Bootstrap(ADMIN_USERNAME, "x' y@b.c", TOKEN_NAME, "http://localhost:3000/api/v1")
    with pytest.raises(ValueError):
        Bootstrap(ADMIN_USERNAME, "a@b.c", TOKEN_NAME, "https://gitea.example.com/api/v1")


def test_webhooks_reach_the_platform_hosts_but_not_private_networks() -> None:
    hosts = webhook_allowed_hosts("ceres.example.com").split(",")
    assert hosts == ["external", "*.ceres.example.com"]
    assert "private" not in hosts and "*" not in hosts


def test_webhooks_reach_named_containers_only() -> None:
    assert webhook_allowed_hosts("ceres.example.com", ("mattermost",)).split(",")[-1] == "mattermost"
    with pytest.raises(ValueError):
        webhook_allowed_hosts("ceres.example.com", ("*",))


WIKI_BOT = Bootstrap("ceres-wiki", "ceres-wiki@ceres.example.com", "ceres-wiki", "http://localhost:3000/api/v1",
                     admin=False, token_scopes="write:repository,read:user")


def test_a_bot_is_a_plain_user_with_a_narrow_token_made_once(stubs: Path) -> None:
    assert run(stubs, bootstrap=BOOTSTRAP).returncode == 0
    result = run(stubs, bootstrap=WIKI_BOT)
    assert result.returncode == 0, result.stderr
    bot = state(stubs)["users"]["ceres-wiki"]
    assert not bot["admin"] and bot["password"] == PASSWORD
    assert bot["tokens"] == {"ceres-wiki": {"value": "token-2", "scopes": "write:repository,read:user"}}
    again = run(stubs, bootstrap=WIKI_BOT)
    assert again.returncode == 0, again.stderr
    creations = [c for c in state(stubs)["calls"] if c[:4] == ["gitea", "admin", "user", "create"]]
    assert len(creations) == 2, "the admin and the bot, each once"
    assert state(stubs)["users"]["ceres-wiki"]["tokens"]["ceres-wiki"]["value"] == "token-3", "a re-run replaces the token"
