"""Wiki.js's SSO step, run for real: `sh -s` running the Node script with the machine's `node`
against a stub Wiki.js 2.5 on 127.0.0.1.

The stub executes GraphQL with graphql-core against the 2.5 schema of the parts the step touches
(authentication and groups, as published for 2.5: server/graph/schemas), and behaves as the 2.5
resolvers do (server/graph/resolvers/authentication.js, group.js): `updateStrategies` patches or
inserts each strategy it is sent by instance key and deletes every one it is not sent; strategy
settings go in as `{"v": value}` JSON and come out of `activeStrategies` as
`{...definition, value}` JSON, only for keys the strategy's definition declares; a new group gets
Wiki.js's default permissions until it is updated.
"""

from __future__ import annotations

import copy
import json
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

try:
    from graphql import GraphQLError, build_schema, parse, validate
except ImportError:  # pragma: no cover - the failure names the package
    pytest.fail("graphql-core is not installed: `pip install graphql-core` (the stub Wiki.js executes GraphQL with it)",
                pytrace=False)

from components.config import wikijs as config
from tests.components.config.stubs import JsonApiHandler, execute_graphql, path_with, recording_wrapper
from tests.support import serve

TIMEOUT = 60
EMAIL = "admin@ceres.example.com"
PASSWORD = "wiki-admin-pass"
SECRET = "Wk4mQ8xT2nR6vB1cL9hJ3sD7fG5aYzPe"
ROTATED = "eP7zYa5Gf3Ds9Jh1Lc6Bv2Rn8Tx4Qm9k"
REALM = "https://keycloak.ceres.example.com/realms/ceres"
INTERNAL = "http://keycloak:8080/realms/ceres/protocol/openid-connect"
SSO = config.WikiJsSso(
    port=0,  # replaced per test by the stub's port
    client_id="wikijs",
    authorization_url=f"{REALM}/protocol/openid-connect/auth",
    token_url=f"{INTERNAL}/token",
    userinfo_url=f"{INTERNAL}/userinfo",
    issuer=REALM,
    logout_url=f"{REALM}/protocol/openid-connect/logout?client_id=wikijs&post_logout_redirect_uri=https%3A%2F%2Fwikijs.ceres.example.com%2F",
    admin_group="ceres-admins",
    user_group="ceres-users",
    wait_seconds=5,
)

SCHEMA = build_schema("""
scalar Date
type Query { authentication: AuthenticationQuery groups: GroupQuery }
type Mutation { authentication: AuthenticationMutation groups: GroupMutation }
type ResponseStatus { succeeded: Boolean! errorCode: Int! slug: String! message: String }
type DefaultResponse { responseResult: ResponseStatus }
type KeyValuePair { key: String! value: String! }
input KeyValuePairInput { key: String! value: String! }
type AuthenticationQuery {
  apiState: Boolean!
  strategies: [AuthenticationStrategy]
  activeStrategies(enabledOnly: Boolean): [AuthenticationActiveStrategy]
}
type AuthenticationMutation {
  login(username: String!, password: String!, strategy: String!): AuthenticationLoginResponse
  updateStrategies(strategies: [AuthenticationStrategyInput]!): DefaultResponse
}
type AuthenticationLoginResponse {
  responseResult: ResponseStatus jwt: String mustChangePwd: Boolean mustProvideTFA: Boolean mustSetupTFA: Boolean
  continuationToken: String redirect: String tfaQRImage: String
}
type AuthenticationStrategy {
  key: String! props: [KeyValuePair] title: String! description: String isAvailable: Boolean useForm: Boolean!
  usernameType: String logo: String color: String website: String icon: String
}
type AuthenticationActiveStrategy {
  key: String! strategy: AuthenticationStrategy! displayName: String! order: Int! isEnabled: Boolean!
  config: [KeyValuePair] selfRegistration: Boolean! domainWhitelist: [String]! autoEnrollGroups: [Int]!
}
input AuthenticationStrategyInput {
  key: String! strategyKey: String! config: [KeyValuePairInput] displayName: String! order: Int!
  isEnabled: Boolean! selfRegistration: Boolean! domainWhitelist: [String]! autoEnrollGroups: [Int]!
}
type GroupQuery { list(filter: String, orderBy: String): [GroupMinimal] single(id: Int!): Group }
type GroupMutation {
  create(name: String!): GroupResponse
  update(id: Int!, name: String!, redirectOnLogin: String!, permissions: [String]!, pageRules: [PageRuleInput]!): DefaultResponse
}
type GroupResponse { responseResult: ResponseStatus! group: Group }
type GroupMinimal { id: Int! name: String! isSystem: Boolean! userCount: Int createdAt: Date! updatedAt: Date! }
type Group {
  id: Int! name: String! isSystem: Boolean! redirectOnLogin: String permissions: [String]! pageRules: [PageRule]
  createdAt: Date! updatedAt: Date!
}
enum PageRuleMatch { START EXACT END REGEX TAG }
type PageRule { id: String! deny: Boolean! match: PageRuleMatch! roles: [String]! path: String! locales: [String]! }
input PageRuleInput { id: String! deny: Boolean! match: PageRuleMatch! roles: [String]! path: String! locales: [String]! }
""")

# server/modules/authentication/*/definition.yml as 2.5.308 ships them (props only).
OIDC_PROPS = ["clientId", "clientSecret", "authorizationURL", "tokenURL", "userInfoURL", "skipUserProfile", "issuer",
              "emailClaim", "displayNameClaim", "mapGroups", "groupsClaim", "logoutURL"]
GITHUB_PROPS = ["clientId", "clientSecret", "useEnterprise", "enterpriseDomain", "enterpriseUserEndpoint"]
# server/app/data.yml: what groups.create gives a new group.
DEFAULT_PERMISSIONS = ["read:pages", "read:assets", "read:comments", "write:comments"]
NOW = "2025-01-01T00:00:00Z"


def ok_status(message: str = "ok") -> dict:
    return {"succeeded": True, "errorCode": 0, "slug": "ok", "message": message}


class WikiState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.jwts: set[str] = set()
        self.definitions = {"local": [], "oidc": list(OIDC_PROPS), "github": list(GITHUB_PROPS)}
        self.strategies: list[dict] = [{
            "key": "local", "strategyKey": "local", "displayName": "Local", "order": 0, "isEnabled": True,
            "config": {}, "selfRegistration": False, "domainWhitelist": [], "autoEnrollGroups": [],
        }]
        self.groups: list[dict] = [
            {"id": 1, "name": "Administrators", "isSystem": True, "redirectOnLogin": "/",
             "permissions": ["manage:system"], "pageRules": []},
            {"id": 2, "name": "Guests", "isSystem": True, "redirectOnLogin": "/",
             "permissions": ["read:pages"], "pageRules": []},
        ]
        self.operations: list[str] = []
        self.sent_lists: list[list[dict]] = []


def definition(state: WikiState, key: str) -> dict:
    props = [{"key": p, "value": json.dumps({"type": "String", "title": p})} for p in state.definitions[key]]
    return {"key": key, "props": props, "title": key, "useForm": key == "local", "isAvailable": True}


class Authentication:
    def __init__(self, state: WikiState, bearer: str | None):
        self.state, self.bearer = state, bearer

    def _admin(self) -> None:
        if self.bearer not in self.state.jwts:
            raise GraphQLError("Forbidden")

    def login(self, info, username: str, password: str, strategy: str) -> dict:
        self.state.operations.append("login")
        if strategy != "local" or (username, password) != (EMAIL, PASSWORD):
            return {"responseResult": {"succeeded": False, "errorCode": 1002, "slug": "invalid_login", "message": "Invalid login"}}
        jwt = f"jwt-{len(self.state.jwts) + 1}"
        self.state.jwts.add(jwt)
        return {"responseResult": ok_status(), "jwt": jwt}

    def strategies(self, info) -> list[dict]:
        self._admin()
        return [definition(self.state, key) for key in self.state.definitions]

    def activeStrategies(self, info, enabledOnly: bool = False) -> list[dict]:
        self._admin()
        self.state.operations.append("activeStrategies")
        result = []
        for row in self.state.strategies:
            declared = self.state.definitions[row["strategyKey"]]
            config = [{"key": k, "value": json.dumps({"type": "String", "title": k, "value": v})}
                      for k, v in sorted(row["config"].items()) if k in declared]
            result.append({**row, "strategy": definition(self.state, row["strategyKey"]), "config": config})
        return result

    def updateStrategies(self, info, strategies: list[dict]) -> dict:
        self._admin()
        self.state.operations.append("updateStrategies")
        self.state.sent_lists.append(copy.deepcopy(strategies))
        rows = []
        for sent in strategies:
            row = {k: v for k, v in sent.items() if k != "config"}
            row["config"] = {entry["key"]: json.loads(entry["value"]).get("v") for entry in sent.get("config") or []}
            rows.append(row)
        self.state.strategies = rows
        return {"responseResult": ok_status("Strategies updated successfully")}


class Groups:
    def __init__(self, state: WikiState, bearer: str | None):
        self.state, self.bearer = state, bearer
        if bearer not in state.jwts:
            raise GraphQLError("Forbidden")

    def _full(self, group: dict) -> dict:
        return {**group, "createdAt": NOW, "updatedAt": NOW}

    def list(self, info, filter: str | None = None, orderBy: str | None = None) -> list[dict]:
        return [self._full(g) for g in self.state.groups]

    def single(self, info, id: int) -> dict | None:
        return next((self._full(g) for g in self.state.groups if g["id"] == id), None)

    def create(self, info, name: str) -> dict:
        self.state.operations.append(f"createGroup:{name}")
        group = {"id": max(g["id"] for g in self.state.groups) + 1, "name": name, "isSystem": False,
                 "redirectOnLogin": "/", "permissions": list(DEFAULT_PERMISSIONS),
                 "pageRules": [{"id": "default", "deny": False, "match": "START", "roles": list(DEFAULT_PERMISSIONS),
                                "path": "", "locales": []}]}
        self.state.groups.append(group)
        return {"responseResult": ok_status("Group created successfully."), "group": self._full(group)}

    def update(self, info, id: int, name: str, redirectOnLogin: str, permissions: list, pageRules: list) -> dict:
        self.state.operations.append(f"updateGroup:{name}")
        group = next(g for g in self.state.groups if g["id"] == id)
        group.update(name=name, redirectOnLogin=redirectOnLogin, permissions=permissions,
                     pageRules=[dict(rule) for rule in pageRules])
        return {"responseResult": ok_status("Group has been updated.")}


def make_handler(state: WikiState):
    class Handler(JsonApiHandler):
        def do_POST(self) -> None:
            body = self.json_body()
            if self.path != "/graphql":
                return self.answer(404, {"message": "Not Found"})
            with state.lock:
                bearer = self.bearer()
                root = {"authentication": Authentication(state, bearer), "groups": lambda info: Groups(state, bearer)}
                self.answer(*execute_graphql(SCHEMA, body, root))

    return Handler


@pytest.fixture
def wiki() -> Iterator[tuple[WikiState, int]]:
    state = WikiState()
    with serve(make_handler(state)) as port:
        yield state, port


@pytest.fixture
def node_log(tmp_path: Path) -> Path:
    """A `node` on PATH that records its command line (in node-argv.log), then runs the real one."""
    return recording_wrapper(tmp_path, "node", "run `apt-get install -y nodejs` (it runs the Wiki.js SSO step)")


def script(port: int) -> str:
    return config.sso_script(config.WikiJsSso(**{**SSO.__dict__, "port": port}))


def run(node_log: Path, port: int, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(node_log),
           config.ADMIN_EMAIL_VARIABLE: EMAIL, config.ADMIN_PASSWORD_VARIABLE: PASSWORD}
    if secret is not None:
        env[config.CLIENT_SECRET_VARIABLE] = secret
    return subprocess.run(["sh", "-s"], input=script(port), env=env, capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"SSO step failed ({result.returncode}):\n{result.stderr}"
    return result.stdout.strip().splitlines()[-1]


def strategy(state: WikiState, key: str) -> dict:
    return next(row for row in state.strategies if row["key"] == key)


def group(state: WikiState, name: str) -> dict:
    return next(g for g in state.groups if g["name"] == name)


EXPECTED_CONFIG = {
    "clientId": "wikijs", "clientSecret": SECRET,
    "authorizationURL": f"{REALM}/protocol/openid-connect/auth",
    "tokenURL": f"{INTERNAL}/token", "userInfoURL": f"{INTERNAL}/userinfo", "issuer": REALM,
    "emailClaim": "email", "displayNameClaim": "name", "mapGroups": True, "groupsClaim": "groups",
    "logoutURL": SSO.logout_url,
}


def test_every_graphql_document_fits_the_2_5_schema():
    for document in config.SSO_GRAPHQL_DOCUMENTS:
        assert validate(SCHEMA, parse(document)) == [], document


def test_script_is_valid_sh_and_valid_javascript(tmp_path: Path):
    assert subprocess.run(["sh", "-n"], input=script(3000), text=True, timeout=TIMEOUT).returncode == 0
    source = tmp_path / "sso.js"
    source.write_text(config.sso_node_script(SSO))
    result = subprocess.run(["node", "--check", str(source)], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr


def test_first_run_adds_the_oidc_strategy_whose_key_is_the_callback_and_keeps_local(wiki, node_log):
    state, port = wiki
    assert ok(run(node_log, port)) == "created"
    assert [row["key"] for row in state.strategies] == ["local", "keycloak"]
    assert strategy(state, "local")["isEnabled"] is True
    added = strategy(state, "keycloak")
    assert {k: v for k, v in added.items() if k != "config"} == {
        "key": "keycloak", "strategyKey": "oidc", "displayName": "Keycloak", "order": 1, "isEnabled": True,
        "selfRegistration": True, "domainWhitelist": [], "autoEnrollGroups": [],
    }
    assert added["config"] == EXPECTED_CONFIG
    # Wiki.js 2.5 calls back at /login/<instance key>/callback (server/core/auth.js).
    assert config.SSO_CALLBACK_PATH == f"/login/{added['key']}/callback"


def test_the_realm_groups_exist_in_the_wiki_and_the_admin_one_is_an_admin_group(wiki, node_log):
    state, port = wiki
    ok(run(node_log, port))
    admins, users = group(state, "ceres-admins"), group(state, "ceres-users")
    assert admins["permissions"] == ["manage:system"] and admins["pageRules"] == []
    assert set(users["permissions"]) == set(config.EDITOR_PERMISSIONS) and "manage:system" not in users["permissions"]
    assert users["pageRules"][0]["roles"] == list(config.EDITOR_PERMISSIONS)


def test_a_second_run_changes_nothing(wiki, node_log):
    state, port = wiki
    ok(run(node_log, port))
    before = copy.deepcopy((state.strategies, state.groups))
    state.operations.clear()
    assert ok(run(node_log, port)) == "unchanged"
    assert (state.strategies, state.groups) == before
    assert not [op for op in state.operations if op.startswith(("updateStrategies", "createGroup", "updateGroup"))]


def test_a_rotated_secret_is_updated_and_other_strategies_survive(wiki, node_log):
    state, port = wiki
    state.strategies.append({
        "key": "b2c8e1d4", "strategyKey": "github", "displayName": "GitHub", "order": 1, "isEnabled": True,
        "config": {"clientId": "gh", "clientSecret": "gh-secret", "useEnterprise": False},
        "selfRegistration": False, "domainWhitelist": ["example.com"], "autoEnrollGroups": [2],
    })
    github = copy.deepcopy(state.strategies[-1])
    ok(run(node_log, port))
    assert strategy(state, "keycloak")["order"] == 2
    assert ok(run(node_log, port, secret=ROTATED)) == "updated"
    assert strategy(state, "keycloak")["config"] == {**EXPECTED_CONFIG, "clientSecret": ROTATED}
    assert strategy(state, "keycloak")["order"] == 2
    assert strategy(state, "b2c8e1d4") == github
    assert strategy(state, "local")["isEnabled"] is True
    assert all("local" in [s["key"] for s in sent] for sent in state.sent_lists)


def test_an_admin_group_made_by_hand_regains_manage_system_and_keeps_the_rest(wiki, node_log):
    state, port = wiki
    state.groups.append({"id": 3, "name": "ceres-admins", "isSystem": False, "redirectOnLogin": "/start",
                         "permissions": ["read:pages"], "pageRules": [
                             {"id": "r1", "deny": False, "match": "START", "roles": ["read:pages"], "path": "", "locales": []}]})
    state.groups.append({"id": 4, "name": "ceres-users", "isSystem": False, "redirectOnLogin": "/",
                         "permissions": ["read:pages"], "pageRules": []})
    ok(run(node_log, port))
    admins = group(state, "ceres-admins")
    assert admins["permissions"] == ["read:pages", "manage:system"]
    assert admins["redirectOnLogin"] == "/start" and admins["pageRules"][0]["id"] == "r1"
    assert group(state, "ceres-users")["permissions"] == ["read:pages"], "an existing user group is the admins' to shape"
    assert not [op for op in state.operations if op.startswith("createGroup")]


def test_a_wiki_whose_oidc_strategy_cannot_map_groups_is_refused(wiki, node_log):
    state, port = wiki
    state.definitions["oidc"] = [p for p in OIDC_PROPS if p not in ("mapGroups", "groupsClaim")]
    result = run(node_log, port)
    assert result.returncode != 0
    assert "has no mapGroups, groupsClaim" in result.stderr
    assert [row["key"] for row in state.strategies] == ["local"]
    assert "updateStrategies" not in state.operations


def test_secrets_reach_node_only_through_the_environment_and_are_never_printed(wiki, node_log):
    state, port = wiki
    text = script(port)
    assert SECRET not in text and PASSWORD not in text and EMAIL not in text
    first = run(node_log, port)
    second = run(node_log, port, secret=ROTATED)
    for result in (first, second):
        ok(result)
        assert SECRET not in result.stdout + result.stderr and ROTATED not in result.stdout + result.stderr
    assert (node_log / "node-argv.log").read_text() == "-\n-\n", "node reads the script from stdin, no arguments"


def test_without_the_client_secret_it_stops_before_asking_anything(wiki, node_log):
    state, port = wiki
    result = run(node_log, port, secret=None)
    assert result.returncode != 0 and config.CLIENT_SECRET_VARIABLE in result.stderr
    assert state.operations == []


@pytest.mark.parametrize("field, value", [
    ("token_url", "keycloak/token"), ("admin_group", "Admins"), ("user_group", "ceres-admins"), ("strategy_key", "Key Cloak"),
])
def test_rendering_refuses_bad_settings(field: str, value: str):
    with pytest.raises(ValueError):
        config.WikiJsSso(**{**SSO.__dict__, field: value})
