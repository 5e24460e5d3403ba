"""A fake Gitea API v1 (1.24 behaviour) for the provider tests: 127.0.0.1 only, state in memory.

Every request is checked against /work/shared/specs/gitea-api.openapi.json with openapi-core; a
mismatch is answered 422 and kept in `contract_errors` (the tests assert it stays empty). The
answers copy Gitea's handlers (routers/api/v1/utils/hook.go, org.go, repo.go): status codes, the
`{"message", "url"}` error body, events expanded as updateHookEvents does, 500 on PATCH of a missing
system hook, `config.is_system_webhook` marking system hooks, `config.secret` kept (any hook type; "gitea"
hooks need only url and content_type) but never returned. Knobs: `fail_next`, `delay_next`,
`token`, `echo_body_in_errors` (a server or proxy that quotes the request in its error text).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

from openapi_core import OpenAPI

from tests.components.providers.fake_api import InjectedFaults, Recorded, contract_problem, serving_fake

CONTRACT = Path("/work/shared/specs/gitea-api.openapi.json")
VALID_TOKEN = "fake-gitea-token-0123456789abcdef"

# The contract subset has no PATCH /orgs/{org}; Gitea has had it for years (structs/org.go
# EditOrgOption). Added here in memory only, in the contract's own style, until the lead adds it.
_EDIT_ORG = {
    "operationId": "orgEdit",
    "parameters": [{"name": "org", "in": "path", "required": True, "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "x-fake-supplement": "structs/org.go EditOrgOption",
        "properties": {
            "description": {"type": "string"}, "email": {"type": "string"}, "full_name": {"type": "string"},
            "location": {"type": "string"}, "repo_admin_change_team_access": {"type": "boolean"},
            "visibility": {"type": "string", "enum": ["public", "limited", "private"]}, "website": {"type": "string"},
        }}}}},
    "responses": {"200": {"description": "Organization"}},
}

HOOK_TYPES = {"dingtalk", "discord", "gitea", "gogs", "msteams", "slack", "telegram", "feishu", "matrix",
              "wechatwork", "packagist"}
_ISSUES = ["issue_assign", "issue_label", "issue_milestone", "issue_comment"]
_PULLS = ["pull_request_assign", "pull_request_label", "pull_request_milestone", "pull_request_comment",
          "pull_request_review", "pull_request_review_request", "pull_request_sync"]
_PLAIN = ["create", "push", "delete", "fork", "repository", "wiki", "release", "package", "status"]
_USERNAME = re.compile(r"^[\da-zA-Z][-.\w]*$", re.ASCII)
_SLACK_CHANNEL = re.compile(r"^#?[a-z0-9_-]{1,80}$")


def load_contract() -> OpenAPI:
    spec = json.loads(CONTRACT.read_text())
    spec["paths"].setdefault("/orgs/{org}", {}).setdefault("patch", _EDIT_ORG)
    return OpenAPI.from_dict(spec)


def server_events(events: list[str]) -> list[str]:
    """updateHookEvents, as Gitea runs it: unknown names dropped, families switched on together."""
    chosen = events or ["push"]
    on = {name for name in _PLAIN if name in chosen}
    if "issues" in chosen or "issues_only" in chosen:
        on.add("issues")
    on.update(name for name in _ISSUES if name in chosen or "issues" in chosen)
    if "pull_request" in chosen or "pull_request_only" in chosen:
        on.add("pull_request")
    on.update(name for name in _PULLS if name in chosen or "pull_request" in chosen)
    return sorted(on)


class Refusal(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class FakeGitea(InjectedFaults):
    base_url: str = ""
    token: str = VALID_TOKEN
    # Who the token belongs to (GET /user); POST /user/repos makes repositories of this account.
    user: str = "ceres-admin"
    echo_body_in_errors: bool = False
    orgs: dict[str, dict] = field(default_factory=dict)
    repos: dict[tuple[str, str], dict] = field(default_factory=dict)
    hooks: dict[int, dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    contract_errors: list[str] = field(default_factory=list)
    _ids: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # Hand edits (what an admin does in the UI)
    def add_org(self, name: str, full_name: str = "", visibility: str = "public") -> dict:
        org = {"id": self._next_id(), "name": name, "username": name, "full_name": full_name,
               "visibility": visibility, "description": "", "website": "", "location": "", "avatar_url": "",
               "repo_admin_change_team_access": False}
        self.orgs[name.lower()] = org
        return org

    def system_hooks(self) -> list[dict]:
        return [hook for hook in self.hooks.values() if hook["_scope"] == ("admin", "", "") and hook["_system"]]

    def calls(self, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests if method is None or r.method == method]

    # Request handling
    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        with self._lock:
            self.requests.append(Recorded(method, parts.path, query, headers, body))
        failure = self.next_fault()
        if failure:
            return failure, {"message": "fake: injected failure", "url": self._swagger()}
        problem = contract_problem(_CONTRACT, self.base_url, method, parts.path, query, headers, body)
        if problem:
            self.contract_errors.append(f"{method} {parts.path}: {problem}")
            return 422, {"message": f"contract: {problem}", "url": self._swagger()}
        if headers.get("authorization") != f"token {self.token}":
            return 401, {"message": "user does not exist [uid: 0, name: ]", "url": self._swagger()}
        data = json.loads(body) if body else None
        try:
            with self._lock:
                return self._route(method, [unquote(s) for s in parts.path.split("/")[3:]], query, data)
        except Refusal as refusal:
            message = refusal.message
            if self.echo_body_in_errors and body:
                message += f" (request: {body.decode()})"
            return refusal.status, {"message": message, "url": self._swagger()}

    def _route(self, method: str, seg: list[str], query: dict, data: Any) -> tuple[int, Any]:
        match (method, seg):
            case ("POST", ["orgs"]):
                return 201, self._create_org(data)
            case ("GET", ["orgs", org]):
                return 200, self._org(org)
            case ("PATCH", ["orgs", org]):
                found = self._org(org)
                found.update({k: data[k] for k in ("full_name", "visibility") if k in data})
                return 200, found
            case ("POST", ["orgs", org, "repos"]):
                return 201, self._create_repo(self._org(org), data)
            case ("GET", ["user"]):
                return 200, {"id": 1, "login": self.user, "full_name": "", "email": f"{self.user}@example.com"}
            case ("POST", ["user", "repos"]):
                return 201, self._create_repo({"name": self.user}, data)
            case ("GET", ["repos", owner, repo]):
                return 200, self._repo(owner, repo)
            case ("PATCH", ["repos", owner, repo]):
                found = self._repo(owner, repo)
                found.update({k: data[k] for k in ("description", "private", "default_branch") if k in data})
                return 200, found
            case ("POST", [*where, "hooks"]):
                return 201, self._create_hook(self._scope(where), data)
            case ("GET", [*where, "hooks", hook_id]):
                return 200, self._public(self._hook(self._scope(where), hook_id))
            case ("PATCH", [*where, "hooks", hook_id]):
                return 200, self._edit_hook(self._scope(where), hook_id, data)
            case ("DELETE", [*where, "hooks", hook_id]):
                del self.hooks[self._hook(self._scope(where), hook_id)["id"]]
                return 204, None
        raise Refusal(404, "fake: route not implemented")

    def _create_org(self, data: dict) -> dict:
        name = data["username"]
        # CreateOrgOption binding Username;MaxSize(40) -> 422; reserved / taken names -> 422 too.
        if len(name) > 40 or not _USERNAME.match(name) or re.search(r"[-._]{2,}|[-._]$", name):
            raise Refusal(422, "[UserName]: invalid username")
        if name.lower() in ("admin", "api", "org", "repo", "user", "explore"):
            raise Refusal(422, f"name is reserved [name: {name}]")
        if name.lower() in self.orgs:
            raise Refusal(422, f"user already exists [name: {name}]")
        return self.add_org(name, data.get("full_name", ""), data.get("visibility") or "public")

    def _create_repo(self, org: dict, data: dict) -> dict:
        name = data["name"]
        if len(name) > 100 or not re.fullmatch(r"[-.\w]+", name, re.ASCII) or name.lower().endswith(".git"):
            raise Refusal(422, f"[Name]: name is invalid [{name}]")
        key = (org["name"].lower(), name.lower())
        if key in self.repos:
            raise Refusal(409, "The repository with the same name already exists.")
        html = f"{self.base_url}/{org['name']}/{name}"
        repo = {"id": self._next_id(), "name": name, "full_name": f"{org['name']}/{name}",
                "owner": {"login": org["name"]}, "description": data.get("description", ""),
                "private": bool(data.get("private")), "default_branch": data.get("default_branch") or "main",
                "empty": not data.get("auto_init"), "html_url": html, "clone_url": f"{html}.git"}
        self.repos[key] = repo
        return repo

    def _create_hook(self, scope: tuple, data: dict) -> dict:
        # routers/api/v1/utils/hook.go checkCreateHookOption + addHook, in order.
        config = data.get("config") or {}
        if data.get("type") not in HOOK_TYPES:
            raise Refusal(422, f"Invalid hook type: {data.get('type')}")
        for name in ("url", "content_type"):
            if name not in config:
                raise Refusal(422, f"Missing config option: {name}")
        if config["content_type"] not in ("json", "form"):
            raise Refusal(422, "Invalid content type")
        if not re.match(r"^https?://[^/\s]+", config["url"]):
            raise Refusal(422, "Invalid url")
        system = config.get("is_system_webhook", "")
        if system not in ("", "true", "false", "1", "0", "True", "False"):
            raise Refusal(422, "Invalid is_system_webhook value")
        if data["type"] == "slack":
            if "channel" not in config:
                raise Refusal(422, "Missing config option: channel")
            if not _SLACK_CHANNEL.match(config["channel"].strip()):
                raise Refusal(400, "Invalid slack channel name")
        hook = {"id": self._next_id(), "type": data["type"], "active": bool(data.get("active", False)),
                "branch_filter": data.get("branch_filter", ""), "events": server_events(data.get("events") or []),
                "_url": config["url"], "_content_type": config["content_type"], "_secret": config.get("secret", ""),
                "_meta": {"channel": config.get("channel", "").strip(), "username": config.get("username", "")},
                "_scope": scope, "_system": system in ("true", "1", "True")}
        self.hooks[hook["id"]] = hook
        return self._public(hook)

    def _edit_hook(self, scope: tuple, hook_id: str, data: dict) -> dict:
        if scope[0] == "admin" and int(hook_id) not in self.hooks:
            raise Refusal(500, "GetSystemOrDefaultWebhook: webhook does not exist")  # Gitea's EditSystemHook
        hook = self._hook(scope, hook_id)
        config = data.get("config")
        if config is not None:
            if "url" in config:
                if not re.match(r"^https?://[^/\s]+", config["url"]):
                    raise Refusal(422, "Invalid url")
                hook["_url"] = config["url"]
            if "content_type" in config:
                if config["content_type"] not in ("json", "form"):
                    raise Refusal(422, "Invalid content type")
                hook["_content_type"] = config["content_type"]
            if "secret" in config:  # stored for signing, never shown by GET (editHook)
                hook["_secret"] = config["secret"]
            if hook["type"] == "slack" and "channel" in config:  # not validated on edit, as in Gitea
                hook["_meta"] = {"channel": config["channel"], "username": config.get("username", "")}
        hook["events"] = server_events(data.get("events") or [])
        hook["branch_filter"] = data.get("branch_filter", "")
        if "active" in data:
            hook["active"] = bool(data["active"])
        return self._public(hook)

    def _public(self, hook: dict) -> dict:
        out = {k: copy.deepcopy(v) for k, v in hook.items() if not k.startswith("_")}
        out["config"] = {"url": hook["_url"], "content_type": hook["_content_type"], "http_method": "post"}
        if hook["type"] == "slack":
            out["config"].update({**hook["_meta"], "icon_url": "", "color": ""})
        out.update({"authorization_header": "", "created_at": "2025-01-01T00:00:00Z",
                    "updated_at": "2025-01-01T00:00:00Z"})
        return out

    def _scope(self, where: list[str]) -> tuple:
        match where:
            case ["repos", owner, repo]:
                found = self._repo(owner, repo)
                return ("repo", found["owner"]["login"].lower(), found["name"].lower())
            case ["orgs", org]:
                return ("org", self._org(org)["name"].lower(), "")
            case ["admin"]:
                return ("admin", "", "")
        raise Refusal(404, "Not Found")

    def _hook(self, scope: tuple, hook_id: str) -> dict:
        hook = self.hooks.get(int(hook_id))
        if hook is None or hook["_scope"] != scope:
            raise Refusal(404, "Not Found")
        return hook

    def _org(self, name: str) -> dict:
        if name.lower() not in self.orgs:
            raise Refusal(404, "GetOrgByName")
        return self.orgs[name.lower()]

    def _repo(self, owner: str, name: str) -> dict:
        repo = self.repos.get((owner.lower(), name.lower()))
        if repo is None:
            raise Refusal(404, "The target couldn't be found.")
        return repo

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _swagger(self) -> str:
        return f"{self.base_url}/api/swagger"


_CONTRACT = load_contract()


@contextmanager
def running_fake_gitea() -> Iterator[FakeGitea]:
    """Start a fake Gitea on a free 127.0.0.1 port; stopped on exit, even after a failure."""
    with serving_fake(FakeGitea()) as fake:
        yield fake
