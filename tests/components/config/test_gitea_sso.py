"""Gitea's SSO step, run for real by `sh` against a stub `gitea`, and the reload step against a
stub `docker`.

The stub accepts exactly the flags of Gitea 1.24's `admin auth add-oauth` / `update-oauth`
(cmd/admin_auth_oauth.go: `update-oauth` takes `--id` and applies only the flags that are set,
and never `--skip-local-2fa`), refuses a second source of the same name, and prints
`admin auth list` as that command's tab-separated table. Sources live in a JSON file; every
call's argv is recorded, so the tests can say where the client secret travelled.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.config.gitea import (
    CLIENT_SECRET_VARIABLE,
    RESULT_VARIABLE,
    SSO_CALLBACK_PATH,
    SsoSource,
    reload_command,
    sso_envs,
    sso_script,
)
from tests.components.config.stubs import path_with, python_stub

DISCOVERY = "http://keycloak:8080/realms/ceres/.well-known/openid-configuration"
SOURCE = SsoSource(client_id="gitea", discovery_url=DISCOVERY, admin_group="ceres-admins")
SECRET = "Kq3vX8mT2wR7nB5cL9hJ4sD6fG1aYzPe"
ROTATED = "Pz1aYf6DsJ4hL9cB5nR7wT2mX8vK3qeG"

STUB_GITEA = textwrap.dedent("""\
    import json, os, sys
    path = os.environ["STUB_STATE"]
    state = json.load(open(path))
    args = sys.argv[1:]
    state["calls"].append(["gitea", *args])
    sys.stdin.read()  # as a CLI may: under `sh -s` that would swallow the rest of the script

    STRINGS = {"name", "provider", "key", "secret", "auto-discover-url", "use-custom-urls", "custom-tenant-id",
               "custom-auth-url", "custom-token-url", "custom-profile-url", "custom-email-url", "icon-url",
               "required-claim-name", "required-claim-value", "group-claim-name", "admin-group",
               "restricted-group", "group-team-map"}
    BOOLS = {"skip-local-2fa", "group-team-map-removal"}

    def save():
        json.dump(state, open(path, "w"))

    def die(message):
        save()
        sys.exit(message)

    def parse(flags, allowed):
        parsed, scopes, i = {}, None, 0
        while i < len(flags):
            flag = flags[i]
            name = flag[2:].split("=", 1)[0]
            if not flag.startswith("--") or name not in allowed:
                die(f"flag provided but not defined: {flag}")
            if name in BOOLS:
                parsed[name] = True
                i += 1
                continue
            value = flag.split("=", 1)[1] if "=" in flag else flags[i + 1]
            i += 1 if "=" in flag else 2
            if name == "scopes":
                scopes = (scopes or []) + value.split(",")
            else:
                parsed[name] = value
        if scopes is not None:
            parsed["scopes"] = scopes
        return parsed

    if args[:3] == ["admin", "auth", "list"]:
        print("ID\\tName\\tType\\tEnabled")
        for source in state["sources"]:
            print(f"{source['id']}\\t{source['name']}\\tOAuth2\\ttrue")
    elif args[:3] == ["admin", "auth", "add-oauth"]:
        source = parse(args[3:], STRINGS | BOOLS | {"scopes"})
        if any(s["name"] == source.get("name") for s in state["sources"]):
            die(f"login source already exists [name: {source['name']}]")
        if source.get("provider") == "openidConnect" and not source.get("auto-discover-url", "").startswith(("http://", "https://")):
            die("invalid Auto Discovery URL")
        state["next_id"] += 1
        state["sources"].append({"id": state["next_id"], **source})
    elif args[:3] == ["admin", "auth", "update-oauth"]:
        flags = parse(args[3:], STRINGS | BOOLS | {"scopes", "id"})
        if "id" not in flags:
            die("--id flag is missing")
        source = next((s for s in state["sources"] if s["id"] == int(flags.pop("id"))), None)
        if source is None:
            die("login source does not exist")
        flags.pop("skip-local-2fa", None)  # update-oauth never applies it
        source.update(flags)
    else:
        die(f"stub gitea: unexpected {args}")
    save()
""")


@pytest.fixture
def gitea(tmp_path: Path) -> Path:
    python_stub(tmp_path, "gitea", STUB_GITEA)
    (tmp_path / "state.json").write_text(json.dumps({"sources": [], "calls": [], "next_id": 0}))
    return tmp_path


def run(stubs: Path, secret: str | None = SECRET, source: SsoSource = SOURCE) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(stubs), "STUB_STATE": str(stubs / "state.json")}
    if secret is not None:
        env[CLIENT_SECRET_VARIABLE] = secret
    return subprocess.run(["sh", "-s"], input=sso_script(source), env=env, capture_output=True, text=True, timeout=30)


def state(stubs: Path) -> dict:
    return json.loads((stubs / "state.json").read_text())


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


EXPECTED = {
    "id": 1, "name": "keycloak", "provider": "openidConnect", "key": "gitea", "secret": SECRET,
    "auto-discover-url": DISCOVERY, "scopes": ["openid", "email", "profile"],
    "group-claim-name": "groups", "admin-group": "ceres-admins", "skip-local-2fa": True,
}


def test_script_is_valid_sh() -> None:
    for text in (sso_script(SOURCE), reload_command("ceres-dev-gitea")):
        result = subprocess.run(["sh", "-n"], input=text, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr


def test_first_run_adds_the_login_source_named_like_the_callback(gitea: Path) -> None:
    assert ok(run(gitea)) == "created"
    assert state(gitea)["sources"] == [EXPECTED]
    # Gitea's callback is /user/oauth2/<source name>/callback: the redirect URI Keycloak allows.
    assert SSO_CALLBACK_PATH == f"/user/oauth2/{EXPECTED['name']}/callback"


def test_a_second_run_converges_on_the_same_single_source(gitea: Path) -> None:
    ok(run(gitea))
    assert ok(run(gitea)) == "updated"
    assert state(gitea)["sources"] == [EXPECTED]
    adds = [c for c in state(gitea)["calls"] if c[1:4] == ["admin", "auth", "add-oauth"]]
    assert len(adds) == 1


def test_a_rotated_secret_updates_the_source_in_place(gitea: Path) -> None:
    ok(run(gitea))
    assert ok(run(gitea, secret=ROTATED)) == "updated"
    assert state(gitea)["sources"] == [{**EXPECTED, "secret": ROTATED}]
    update = state(gitea)["calls"][-1]
    assert update[1:6] == ["admin", "auth", "update-oauth", "--id", "1"]


def test_a_changed_admin_group_reaches_gitea(gitea: Path) -> None:
    ok(run(gitea))
    ok(run(gitea, source=SsoSource(client_id="gitea", discovery_url=DISCOVERY, admin_group="platform-admins")))
    assert state(gitea)["sources"][0]["admin-group"] == "platform-admins"


def test_the_secret_is_only_in_the_argv_the_gitea_cli_demands(gitea: Path) -> None:
    assert SECRET not in sso_script(SOURCE) and ROTATED not in sso_script(SOURCE)
    ok(run(gitea))
    ok(run(gitea, secret=ROTATED))
    carrying = [call[1:4] for call in state(gitea)["calls"] if any(SECRET in a or ROTATED in a for a in call)]
    # Gitea 1.24 has no file or environment variant of --secret.
    assert carrying == [["admin", "auth", "add-oauth"], ["admin", "auth", "update-oauth"]]


def test_without_the_secret_nothing_runs(gitea: Path) -> None:
    result = run(gitea, secret=None)
    assert result.returncode != 0 and CLIENT_SECRET_VARIABLE in result.stderr
    assert state(gitea)["calls"] == []


def test_other_login_sources_are_left_alone(gitea: Path) -> None:
    seeded = state(gitea)
    seeded["sources"] = [{"id": 1, "name": "keycloak-old", "provider": "openidConnect", "secret": "x"}]
    seeded["next_id"] = 1
    (gitea / "state.json").write_text(json.dumps(seeded))
    assert ok(run(gitea)) == "created"
    assert [s["name"] for s in state(gitea)["sources"]] == ["keycloak-old", "keycloak"]
    assert state(gitea)["sources"][0] == {"id": 1, "name": "keycloak-old", "provider": "openidConnect", "secret": "x"}


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError):
        SsoSource(client_id="gitea", discovery_url="https://evil.example.com/x; rm -rf /", admin_group="ceres-admins")
    with pytest.raises(ValueError):
        SsoSource(client_id="gitea", discovery_url=DISCOVERY, admin_group="Admins'")


def test_registration_through_the_realm_uses_keycloak_usernames() -> None:
    assert sso_envs() == [
        "GITEA__oauth2_client__ENABLE_AUTO_REGISTRATION=true",
        "GITEA__oauth2_client__USERNAME=preferred_username",
        "GITEA__oauth2_client__ACCOUNT_LINKING=auto",
    ]


# The reload step, on the deploying machine: a stub `docker` whose container turns healthy after
# a given number of `inspect` calls.
STUB_DOCKER = textwrap.dedent("""\
    import json, os, sys
    path = os.environ["STUB_STATE"]
    state = json.load(open(path))
    state["calls"].append(sys.argv[1:])
    if sys.argv[1] == "inspect":
        state["inspected"] += 1
        print("healthy" if state["inspected"] >= state["healthy_after"] else "starting")
    json.dump(state, open(path, "w"))
""")


@pytest.fixture
def docker(tmp_path: Path) -> Path:
    python_stub(tmp_path, "docker", STUB_DOCKER)
    return tmp_path


def reload(stubs: Path, result: str, healthy_after: int, attempts: int = 60) -> tuple[subprocess.CompletedProcess[str], list]:
    (stubs / "docker.json").write_text(json.dumps({"calls": [], "inspected": 0, "healthy_after": healthy_after}))
    env = {"PATH": path_with(stubs), "STUB_STATE": str(stubs / "docker.json"), RESULT_VARIABLE: result}
    # As pulumi-command runs `create`: `sh -c`.
    completed = subprocess.run(["sh", "-c", reload_command("ceres-dev-gitea", attempts=attempts, interval_seconds=0)],
                               env=env, capture_output=True, text=True, timeout=30)
    return completed, json.loads((stubs / "docker.json").read_text())["calls"]


def test_a_new_source_needs_no_restart(docker: Path) -> None:
    completed, calls = reload(docker, "created", healthy_after=1)
    assert completed.returncode == 0 and calls == []


def test_an_updated_source_restarts_gitea_and_waits_until_healthy(docker: Path) -> None:
    completed, calls = reload(docker, "updated", healthy_after=3)
    assert completed.returncode == 0, completed.stderr
    assert calls[0] == ["restart", "ceres-dev-gitea"]
    assert calls[1:] == [["inspect", "--format", "{{.State.Health.Status}}", "ceres-dev-gitea"]] * 3


def test_a_gitea_that_stays_unhealthy_fails_the_step(docker: Path) -> None:
    completed, calls = reload(docker, "updated", healthy_after=99, attempts=3)
    assert completed.returncode != 0 and "not healthy" in completed.stderr
    assert len(calls) == 1 + 3
