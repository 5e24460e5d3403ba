"""Nextcloud's SSO step, run for real by `sh` against a stub `php` that plays `occ`.

The stub knows the commands the step uses as Nextcloud 31 and user_oidc 8.x define them:
`app:getpath` fails for an app that is not there, `app:install` fetches and enables it,
`app:enable`, `config:system:set`, and `user_oidc:provider`, an upsert by identifier that accepts
exactly the options of user_oidc's UpsertProvider.php (with `--clientsecret-env`, read from the
environment; an "old" stub, as user_oidc up to 8.2.1, lacks it) and keeps the options it is not
given. Every call's argv is recorded.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.config.nextcloud import (
    ADMIN_GROUP,
    CLIENT_SECRET_VARIABLE,
    GROUPS_CLAIM,
    SSO_CALLBACK_PATHS,
    SsoProvider,
    sso_script,
)
from tests.components.config.stubs import path_with, python_stub

DISCOVERY = "http://keycloak:8080/realms/ceres/.well-known/openid-configuration"
SECRET = "Hb7nQ2xW9kT4mR6vL1cJ8sD3fG5aYzPe"
ROTATED = "Ze3PaY5Gf3Ds8Jc1Lv6Rm4Tk9Wx2Qn7b"

STUB_PHP = textwrap.dedent("""\
    import json, os, sys
    path = os.environ["STUB_STATE"]
    state = json.load(open(path))
    occ, *args = sys.argv[1:]
    state["calls"].append(args)
    sys.stdin.read()  # as a CLI may: under `sh -s` that would swallow the rest of the script

    OLD = os.environ.get("STUB_OLD_USER_OIDC") == "1"
    OPTIONS = ["clientid", "clientsecret", "discoveryuri", "endsessionendpointuri", "postlogouturi", "scope",
               "output", "unique-uid", "use-private-key-jwt", "check-bearer", "bearer-provisioning",
               "send-id-token-hint", "mapping-display-name", "mapping-email", "mapping-quota", "mapping-uid",
               "extra-claims", "mapping-language", "mapping-locale", "mapping-groups", "group-provisioning",
               "group-whitelist-regex", "group-restrict-login-to-whitelist", "entraid-group-names",
               "resolve-nested-claims"] + ([] if OLD else ["clientsecret-file", "clientsecret-env"])

    def done(code=0):
        json.dump(state, open(path, "w"))
        sys.exit(code)

    def options(flags, allowed):
        parsed, positional, i = {}, [], 0
        while i < len(flags):
            flag = flags[i]
            if not flag.startswith("--"):
                positional.append(flag)
                i += 1
                continue
            name = flag[2:].split("=", 1)[0]
            if name not in allowed:
                print(f'The "--{name}" option does not exist.', file=sys.stderr)
                done(1)
            value = flag.split("=", 1)[1] if "=" in flag else flags[i + 1]
            i += 1 if "=" in flag else 2
            parsed[name] = value
        return positional, parsed

    command = args[0]
    app = state["apps"].get(args[1]) if len(args) > 1 else None
    if command == "app:getpath":
        if app is None:
            done(1)
        print(f"/var/www/html/custom_apps/{args[1]}")
    elif command == "app:install":
        if app is not None:
            print(f"{args[1]} already installed")
            done(1)
        state["apps"][args[1]] = {"enabled": True}
        print(f"{args[1]} 8.7.0 installed")
    elif command == "app:enable":
        app["enabled"] = True
        print(f"{args[1]} enabled")
    elif command == "config:system:set":
        positional, parsed = options(args[1:], {"value", "type"})
        state["system"][positional[0]] = {"value": parsed["value"], "type": parsed["type"]}
    elif command == "user_oidc:provider":
        if not state["apps"].get("user_oidc", {}).get("enabled"):
            print('Command "user_oidc:provider" is not defined.', file=sys.stderr)
            done(1)
        if args[1:] == ["--help"]:
            print("Options:")
            for name in OPTIONS:
                print(f"      --{name}={name.upper()}")
            done()
        positional, parsed = options(args[1:], set(OPTIONS))
        if "clientsecret-env" in parsed:
            secret = os.environ.get(parsed.pop("clientsecret-env"), "")
            if not secret:
                print("Client secret environment variable could not be read or is empty", file=sys.stderr)
                done(1)
            parsed["clientsecret"] = secret
        provider = state["providers"].setdefault(positional[0], {"scope": "openid email profile"})
        provider.update(parsed)
    else:
        print(f"stub occ: unexpected {args}", file=sys.stderr)
        done(1)
    done()
""")


@pytest.fixture
def occ(tmp_path: Path) -> Path:
    python_stub(tmp_path, "php", STUB_PHP)
    (tmp_path / "state.json").write_text(json.dumps({"apps": {}, "system": {}, "providers": {}, "calls": []}))
    return tmp_path


def run(stubs: Path, secret: str | None = SECRET, old: bool = False) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(stubs), "STUB_STATE": str(stubs / "state.json")}
    if secret is not None:
        env[CLIENT_SECRET_VARIABLE] = secret
    if old:
        env["STUB_OLD_USER_OIDC"] = "1"
    script = sso_script(SsoProvider(client_id="nextcloud", discovery_url=DISCOVERY))
    return subprocess.run(["sh", "-s"], input=script, env=env, capture_output=True, text=True, timeout=30)


def state(stubs: Path) -> dict:
    return json.loads((stubs / "state.json").read_text())


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


PROVIDER = {
    "clientid": "nextcloud", "clientsecret": SECRET, "discoveryuri": DISCOVERY, "scope": "openid email profile",
    "unique-uid": "0", "mapping-uid": "preferred_username", "mapping-groups": GROUPS_CLAIM,
    "group-provisioning": "1", "group-whitelist-regex": f"^{ADMIN_GROUP}$",
}


def test_script_is_valid_sh() -> None:
    script = sso_script(SsoProvider(client_id="nextcloud", discovery_url=DISCOVERY))
    result = subprocess.run(["sh", "-n"], input=script, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_first_run_installs_user_oidc_and_creates_the_provider(occ: Path) -> None:
    assert ok(run(occ)) == "configured"
    assert state(occ)["apps"] == {"user_oidc": {"enabled": True}}
    assert state(occ)["system"] == {"allow_local_remote_servers": {"value": "true", "type": "boolean"}}
    assert state(occ)["providers"] == {"keycloak": PROVIDER}
    assert ["app:install", "user_oidc"] in state(occ)["calls"]


def test_a_second_run_enables_instead_of_installing_and_changes_nothing(occ: Path) -> None:
    ok(run(occ))
    before = {key: value for key, value in state(occ).items() if key != "calls"}
    ok(run(occ))
    after = {key: value for key, value in state(occ).items() if key != "calls"}
    assert after == before
    calls = state(occ)["calls"]
    assert calls.count(["app:install", "user_oidc"]) == 1 and ["app:enable", "user_oidc"] in calls


def test_a_rotated_secret_reaches_the_provider(occ: Path) -> None:
    ok(run(occ))
    ok(run(occ, secret=ROTATED))
    assert state(occ)["providers"] == {"keycloak": {**PROVIDER, "clientsecret": ROTATED}}


def test_the_secret_never_reaches_an_argv_when_user_oidc_can_read_the_environment(occ: Path) -> None:
    script = sso_script(SsoProvider(client_id="nextcloud", discovery_url=DISCOVERY))
    assert SECRET not in script
    ok(run(occ))
    ok(run(occ, secret=ROTATED))
    assert SECRET not in json.dumps(state(occ)["calls"]) and ROTATED not in json.dumps(state(occ)["calls"])
    upserts = [call for call in state(occ)["calls"] if call[0] == "user_oidc:provider" and call[1] != "--help"]
    assert all(f"--clientsecret-env={CLIENT_SECRET_VARIABLE}" in call for call in upserts)


def test_an_older_user_oidc_gets_the_secret_as_an_option_and_the_run_says_so(occ: Path) -> None:
    result = run(occ, old=True)
    assert ok(result) == "configured"
    assert "only as --clientsecret" in result.stderr
    assert state(occ)["providers"]["keycloak"]["clientsecret"] == SECRET


def test_without_the_secret_nothing_runs(occ: Path) -> None:
    result = run(occ, secret=None)
    assert result.returncode != 0 and CLIENT_SECRET_VARIABLE in result.stderr
    assert state(occ)["calls"] == []


def test_the_callback_is_user_oidc_s_code_route_with_and_without_the_front_controller() -> None:
    assert SSO_CALLBACK_PATHS == ("/apps/user_oidc/code", "/index.php/apps/user_oidc/code")


def test_inputs_are_validated() -> None:
    with pytest.raises(ValueError):
        SsoProvider(client_id="nextcloud", discovery_url="http://keycloak:8080/realms/ceres'; rm -rf /")
    with pytest.raises(ValueError):
        SsoProvider(client_id="Next Cloud", discovery_url=DISCOVERY)
