"""Wiki.js's rendered bootstrap, run for real: `sh -s` running the Node script with the machine's
`node` (Debian/NodeSource nodejs) against a stub Wiki.js on 127.0.0.1.

The stub behaves as Wiki.js 2.5 does (requarks/wiki 2.x server/setup.js, graph/schemas,
models/apiKeys.js): while the setup wizard runs, POST /finalize finishes it (answering 200 with
`ok`) and every other POST is a 404; then the server restarts and serves GraphQL. GraphQL is
executed by graphql-core against the 2.5 `authentication` schema (types as published in 2.5), so
a query that does not fit the real schema fails here too.
"""

from __future__ import annotations

import subprocess
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

try:
    from graphql import GraphQLError, build_schema, parse, validate
except ImportError:  # pragma: no cover - the failure names the package
    pytest.fail("graphql-core is not installed: `pip install graphql-core` (the stub Wiki.js executes GraphQL with it)",
                pytrace=False)

from components.config import wikijs as config
from tests.components.config.stubs import (
    JsonApiHandler,
    execute_graphql,
    path_with,
    recording_wrapper,
    with_overrides,
)
from tests.support import free_port, serve

TIMEOUT = 60
EMAIL = "admin@ceres.example.com"
PASSWORD = "wiki-'pass'\"word\\ $HOME"
SITE_URL = "https://wikijs.ceres.example.com"

# Wiki.js 2.5's authentication schema, the part the bootstrap touches (server/graph/schemas).
SCHEMA = build_schema("""
scalar Date
type Query { authentication: AuthenticationQuery }
type Mutation { authentication: AuthenticationMutation }
type ResponseStatus { succeeded: Boolean! errorCode: Int! slug: String! message: String }
type DefaultResponse { responseResult: ResponseStatus }
type AuthenticationQuery {
  apiKeys: [AuthenticationApiKey]
  apiState: Boolean!
}
type AuthenticationMutation {
  createApiKey(name: String!, expiration: String!, fullAccess: Boolean!, group: Int): AuthenticationCreateApiKeyResponse
  login(username: String!, password: String!, strategy: String!): AuthenticationLoginResponse
  revokeApiKey(id: Int!): DefaultResponse
  setApiState(enabled: Boolean!): DefaultResponse
}
type AuthenticationApiKey {
  id: Int! name: String! keyShort: String! expiration: Date! createdAt: Date! updatedAt: Date! isRevoked: Boolean!
}
type AuthenticationCreateApiKeyResponse { responseResult: ResponseStatus key: String }
type AuthenticationLoginResponse {
  responseResult: ResponseStatus jwt: String mustChangePwd: Boolean mustProvideTFA: Boolean mustSetupTFA: Boolean
  continuationToken: String redirect: String tfaQRImage: String
}
""")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31557600}


def ok_status(message: str = "ok") -> dict:
    return {"succeeded": True, "errorCode": 0, "slug": "ok", "message": message}


class WikiState:
    """What the stub wiki remembers, and a log of what it was asked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.setup_done = False
        self.restarting = 0  # GraphQL requests still answered 503 after setup, as during the restart
        self.admin: tuple[str, str] | None = None
        self.jwts: set[str] = set()
        self.api_enabled = False
        self.keys: list[dict[str, Any]] = []
        self.finalize_bodies: list[dict] = []
        self.operations: list[str] = []
        self.finalize_answer: dict | None = None

    def finished(self, email: str, password: str) -> WikiState:
        self.setup_done, self.admin = True, (email, password)
        return self


class Authentication:
    """Root of `authentication { ... }`; graphql-core calls these methods with the field's arguments."""

    def __init__(self, state: WikiState, bearer: str | None):
        self.state, self.bearer = state, bearer

    def _require_admin(self) -> None:
        if self.bearer not in self.state.jwts:
            raise GraphQLError("Forbidden")

    def login(self, info, username: str, password: str, strategy: str) -> dict:
        self.state.operations.append("login")
        if strategy != "local" or self.state.admin != (username, password):
            return {"responseResult": {"succeeded": False, "errorCode": 1002, "slug": "invalid_login",
                                       "message": "Invalid email / username or password."}}
        jwt = f"jwt-{len(self.state.jwts) + 1}"
        self.state.jwts.add(jwt)
        return {"responseResult": ok_status("Login success"), "jwt": jwt}

    def setApiState(self, info, enabled: bool) -> dict:
        self._require_admin()
        self.state.operations.append(f"setApiState:{enabled}")
        self.state.api_enabled = enabled
        return {"responseResult": ok_status()}

    def apiKeys(self, info) -> list[dict]:
        self._require_admin()
        self.state.operations.append("apiKeys")
        return [{**key, "keyShort": "..." + key["key"][-20:]} for key in self.state.keys]

    def createApiKey(self, info, name: str, expiration: str, fullAccess: bool, group: int | None = None) -> dict:
        self._require_admin()
        self.state.operations.append(f"createApiKey:{name}:{expiration}:{fullAccess}")
        now = datetime.now(timezone.utc)
        seconds = int(expiration[:-1]) * _UNITS[expiration[-1]]
        key_id = len(self.state.keys) + 1
        key = f"eyJ.api-{key_id}.{'x' * 20}"
        self.state.keys.append({
            "id": key_id, "name": name, "key": key, "isRevoked": False,
            "expiration": (now + timedelta(seconds=seconds)).isoformat(),
            "createdAt": now.isoformat(), "updatedAt": now.isoformat(),
        })
        return {"responseResult": ok_status("API Key created successfully"), "key": key}


def make_handler(state: WikiState):
    class Handler(JsonApiHandler):
        def do_POST(self) -> None:
            body = self.json_body()
            with state.lock:
                if not state.setup_done:
                    if self.path == "/finalize":
                        return self.finalize(body)
                    return self.answer(404, {"message": "Not Found"})
                if self.path != "/graphql":
                    return self.answer(404, {"message": "Not Found"})
                if state.restarting:
                    state.restarting -= 1
                    return self.answer(503, {"message": "starting"})
                self.graphql(body)

        def finalize(self, body: dict) -> None:
            state.finalize_bodies.append(body)
            if state.finalize_answer is not None:
                return self.answer(200, state.finalize_answer)
            state.setup_done, state.restarting = True, 1
            state.admin = (body["adminEmail"], body["adminPassword"])
            self.answer(200, {"ok": True, "redirectPath": "/", "redirectPort": 3000})

        def graphql(self, body: dict) -> None:
            self.answer(*execute_graphql(SCHEMA, body, {"authentication": Authentication(state, self.bearer())}))

    return Handler


@pytest.fixture
def wiki() -> Iterator[tuple[WikiState, int]]:
    state = WikiState()
    with serve(make_handler(state)) as port:
        yield state, port


@pytest.fixture
def node_log(tmp_path: Path) -> Path:
    """A `node` on PATH that records its command line (in node-argv.log), then runs the real one."""
    return recording_wrapper(tmp_path, "node", "run `apt-get install -y nodejs` (it runs the Wiki.js bootstrap)")


def script_for(port: int, **overrides: Any) -> str:
    return config.bootstrap_script(config.WikiJsBootstrap(site_url=SITE_URL, port=port, **overrides))


def run_bootstrap(node_log: Path, script: str, **env_overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path_with(node_log),
        config.ADMIN_EMAIL_VARIABLE: EMAIL,
        config.ADMIN_PASSWORD_VARIABLE: PASSWORD,
    }
    return subprocess.run(["sh", "-s"], input=script, env=with_overrides(env, env_overrides),
                          capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"bootstrap failed ({result.returncode}):\n{result.stderr}"
    return result


def test_every_graphql_document_fits_the_2_5_schema():
    for document in config.GRAPHQL_DOCUMENTS:
        assert validate(SCHEMA, parse(document)) == [], document


def test_script_is_valid_sh_and_valid_javascript(tmp_path: Path):
    assert subprocess.run(["sh", "-n"], input=script_for(3000), text=True, timeout=TIMEOUT).returncode == 0
    source = tmp_path / "bootstrap.js"
    source.write_text(config.node_script(config.WikiJsBootstrap(site_url=SITE_URL, port=3000)))
    result = subprocess.run(["node", "--check", str(source)], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr


def test_first_run_finishes_setup_and_issues_the_key(wiki, node_log):
    state, port = wiki
    result = ok(run_bootstrap(node_log, script_for(port)))
    assert state.finalize_bodies == [{
        "adminEmail": EMAIL, "adminPassword": PASSWORD, "adminPasswordConfirm": PASSWORD,
        "siteUrl": SITE_URL, "telemetry": False,
    }]
    assert state.restarting == 0, "it waited out the restart after setup"
    assert state.operations == ["login", "setApiState:True", "apiKeys", "createApiKey:ceres:10y:True"]
    assert state.api_enabled
    assert result.stdout.strip().splitlines()[-1] == state.keys[0]["key"]
    assert result.stdout.strip() == state.keys[0]["key"], "nothing but the key on stdout"


def test_second_run_creates_nothing_and_fails_with_instructions(wiki, node_log):
    state, port = wiki
    ok(run_bootstrap(node_log, script_for(port)))
    state.operations.clear()
    result = run_bootstrap(node_log, script_for(port))
    assert result.returncode != 0
    assert "an API key named 'ceres' exists (id 1)" in result.stderr
    assert "revoke it in Administration > API Access" in result.stderr
    assert result.stdout == ""
    assert len(state.finalize_bodies) == 1 and len(state.keys) == 1
    assert not any(op.startswith("createApiKey") for op in state.operations)


@pytest.mark.parametrize("retired", ["revoked", "expired"])
def test_a_revoked_or_expired_key_is_replaced(wiki, node_log, retired):
    state, port = wiki
    ok(run_bootstrap(node_log, script_for(port)))
    if retired == "revoked":
        state.keys[0]["isRevoked"] = True
    else:
        state.keys[0]["expiration"] = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    result = ok(run_bootstrap(node_log, script_for(port)))
    assert len(state.keys) == 2 and result.stdout.strip() == state.keys[1]["key"]
    assert len(state.finalize_bodies) == 1


def test_an_already_set_up_wiki_is_only_logged_into(wiki, node_log):
    state, port = wiki
    state.finished(EMAIL, PASSWORD)
    ok(run_bootstrap(node_log, script_for(port)))
    assert state.finalize_bodies == []
    assert [k["name"] for k in state.keys] == ["ceres"]


def test_a_wiki_set_up_with_another_password_fails_clearly(wiki, node_log):
    state, port = wiki
    state.finished(EMAIL, "someone-elses")
    result = run_bootstrap(node_log, script_for(port))
    assert result.returncode != 0 and "login failed: Invalid email" in result.stderr
    assert state.keys == []


def test_a_failed_setup_stops_the_run(wiki, node_log):
    state, port = wiki
    state.finalize_answer = {"ok": False, "error": "Incorrect groups auto-increment configuration!"}
    result = run_bootstrap(node_log, script_for(port))
    assert result.returncode != 0
    assert "setup failed: Incorrect groups auto-increment configuration!" in result.stderr


def test_secrets_reach_node_only_through_the_environment(wiki, node_log):
    state, port = wiki
    script = script_for(port)
    assert PASSWORD not in script and EMAIL not in script
    ok(run_bootstrap(node_log, script))
    assert (node_log / "node-argv.log").read_text() == "-\n", "node reads the script from stdin, no arguments"


def test_without_credentials_it_stops_before_asking_anything(wiki, node_log):
    state, port = wiki
    result = run_bootstrap(node_log, script_for(port), **{config.ADMIN_PASSWORD_VARIABLE: None})
    assert result.returncode != 0 and "WIKIJS_ADMIN_PASSWORD must be set" in result.stderr
    assert state.finalize_bodies == [] and state.operations == []


def test_a_wiki_that_never_answers_times_out_clearly(node_log):
    result = run_bootstrap(node_log, script_for(free_port(), wait_seconds=2))
    assert result.returncode != 0 and "did not become setup or ready within 2s" in result.stderr


@pytest.mark.parametrize("field, value", [
    ("site_url", "wikijs.example.com"), ("key_name", "Ceres Key"), ("key_expiration", "forever"),
])
def test_rendering_refuses_bad_settings(field: str, value: str):
    with pytest.raises(ValueError):
        config.WikiJsBootstrap(**{"site_url": SITE_URL, "port": 3000, field: value})
