"""A fake Mattermost API v4 for the provider tests: 127.0.0.1 only, state in memory.

Every request is checked against /work/shared/specs/mattermost-api.openapi.yaml with openapi-core;
a mismatch is answered 400 (Mattermost's answer to a bad body) and kept in `contract_errors` (the
tests assert it stays empty). The answers follow the server (server/public/model team.go,
channel.go, incoming_webhook.go, user.go; api4/webhook.go; app/webhook.go): the AppError body
`{id, message, detailed_error, request_id, status_code}`, 26-character ids, 404 after delete,
username/icon_url silently dropped unless the post-override settings are on, `team_id` filter on
the hook list. Knobs: `fail_next`, `delay_next`, `token`, `echo_path_in_errors`,
`username_override`, `icon_override`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qsl, unquote, urlsplit

import yaml
from openapi_core import OpenAPI

from tests.components.providers.fake_api import InjectedFaults, Recorded, contract_problem, serving_fake

CONTRACT = Path("/work/shared/specs/mattermost-api.openapi.yaml")
VALID_TOKEN = "fake-mattermost-token-0123456789"


def _patch_operation(operation_id: str, id_param: str, schema: str, properties: dict) -> dict:
    return {
        "operationId": operation_id,
        "parameters": [{"name": id_param, "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "properties": properties}}}},
        "responses": {
            "200": {"description": "patched", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}},
            "400": {"$ref": "#/components/responses/BadRequest"},
            "401": {"$ref": "#/components/responses/Unauthorized"},
            "403": {"$ref": "#/components/responses/Forbidden"},
        },
    }


# The contract subset has no PatchTeam / PatchChannel; the server has had both since API v4
# (teams.yaml PUT /api/v4/teams/{team_id}/patch, channels.yaml PUT /api/v4/channels/{channel_id}/patch).
# Added here in memory only, in the contract's own style, until the lead adds them to the file.
_SUPPLEMENT = {
    "/api/v4/teams/{team_id}/patch": {"put": _patch_operation("PatchTeam", "team_id", "Team", {
        "display_name": {"type": "string"}, "description": {"type": "string"}, "company_name": {"type": "string"},
        "invite_id": {"type": "string"}, "allow_open_invite": {"type": "boolean"}})},
    "/api/v4/channels/{channel_id}/patch": {"put": _patch_operation("PatchChannel", "channel_id", "Channel", {
        "name": {"type": "string"}, "display_name": {"type": "string"}, "purpose": {"type": "string"},
        "header": {"type": "string"}})},
}


def load_contract() -> OpenAPI:
    spec = yaml.safe_load(CONTRACT.read_text())
    for path, item in _SUPPLEMENT.items():
        spec["paths"].setdefault(path, item)
    return OpenAPI.from_dict(spec)


# server/public/model: utils.go validAlphaNum / validSimpleAlphaNum / reservedName, user.go.
_TEAM_NAME = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")
_CHANNEL_NAME = re.compile(r"^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]*$")
_RESERVED = ("admin", "api", "channel", "claim", "error", "files", "help", "landing", "login", "mfa", "oauth",
             "plug", "plugins", "post", "signup", "boards", "playbooks")
_USERNAME = re.compile(r"^[a-z0-9.\-_]+$")


class Refusal(Exception):
    def __init__(self, status: int, error_id: str, message: str):
        super().__init__(message)
        self.status, self.error_id, self.message = status, error_id, message


@dataclass
class FakeMattermost(InjectedFaults):
    base_url: str = ""
    token: str = VALID_TOKEN
    # ServiceSettings.EnablePostUsernameOverride / EnablePostIconOverride: off on a real server
    # until CERES's config turns them on; the fake starts with them on.
    username_override: bool = True
    icon_override: bool = True
    # A server or proxy quoting the request path (which holds a hook id) in its errors.
    echo_path_in_errors: bool = False
    teams: dict[str, dict] = field(default_factory=dict)
    channels: dict[str, dict] = field(default_factory=dict)
    hooks: dict[str, dict] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    contract_errors: list[str] = field(default_factory=list)
    _ids: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # Hand edits (what an admin does in the UI)

    def add_team(self, name: str, display_name: str) -> dict:
        return self._save_team({"name": name, "display_name": display_name, "type": "O"})

    def add_channel(self, team_id: str, name: str, display_name: str, purpose: str = "") -> dict:
        return self._save_channel({"team_id": team_id, "name": name, "display_name": display_name,
                                   "purpose": purpose, "type": "O"})

    def edit_hook(self, hook_id: str, **changes: Any) -> None:
        self.hooks[hook_id].update(changes, update_at=self.hooks[hook_id]["update_at"] + 1)

    def delete_hook(self, hook_id: str) -> None:
        del self.hooks[hook_id]

    def archive_channel(self, channel_id: str) -> None:
        self.channels[channel_id]["delete_at"] = _now()

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
            return failure, self._error(failure, "fake.injected_failure", "fake: injected failure", parts.path)
        problem = contract_problem(_CONTRACT, self.base_url, method, parts.path, query, headers, body)
        if problem:
            self.contract_errors.append(f"{method} {parts.path}: {problem}")
            return 400, self._error(400, "api.context.invalid_body_param.app_error", f"contract: {problem}", parts.path)
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, self._error(401, "api.context.session_expired.app_error",
                                    "Invalid or expired session, please login again.", parts.path)
        data = json.loads(body) if body else None
        try:
            with self._lock:
                return self._route(method, [unquote(s) for s in parts.path.split("/")[3:]], query, data)
        except Refusal as refusal:
            return refusal.status, self._error(refusal.status, refusal.error_id, refusal.message, parts.path)

    def _error(self, status: int, error_id: str, message: str, path: str) -> dict:
        if self.echo_path_in_errors:
            message += f" (path: {path})"
        return {"id": error_id, "message": message, "detailed_error": "", "request_id": "fakerequest", "status_code": status}

    def _route(self, method: str, seg: list[str], query: dict, data: Any) -> tuple[int, Any]:
        match (method, seg):
            case ("POST", ["teams"]):
                return 201, self._save_team(data)
            case ("GET", ["teams", "name", name]):
                return 200, self._team_by_name(name)
            case ("PUT", ["teams", team_id, "patch"]):
                return 200, self._patch_team(team_id, data)
            case ("POST", ["channels"]):
                return 201, self._save_channel(data)
            case ("GET", ["teams", team_id, "channels", "name", name]):
                return 200, self._channel_by_name(team_id, name, query.get("include_deleted") == "true")
            case ("PUT", ["channels", channel_id, "patch"]):
                return 200, self._patch_channel(channel_id, data)
            case ("POST", ["hooks", "incoming"]):
                return 201, self._create_hook(data)
            case ("GET", ["hooks", "incoming"]):
                hooks = [h for h in self.hooks.values() if query.get("team_id") in (None, h["team_id"])]
                return 200, hooks
            case ("GET", ["hooks", "incoming", hook_id]):
                return 200, self._hook(hook_id)
            case ("PUT", ["hooks", "incoming", hook_id]):
                return 200, self._update_hook(hook_id, data)
            case ("DELETE", ["hooks", "incoming", hook_id]):
                self._hook(hook_id)
                del self.hooks[hook_id]
                return 200, {"status": "OK"}
        raise Refusal(404, "api.context.404.app_error", "Sorry, we could not find the page.")

    # Teams (model/team.go Team.IsValid; store: unique name)

    def _save_team(self, data: dict) -> dict:
        name, display = data.get("name", ""), data.get("display_name", "")
        if not 1 <= len(display) <= 64:
            raise Refusal(400, "model.team.is_valid.name.app_error", "Invalid name.")
        if len(name) > 64:
            raise Refusal(400, "model.team.is_valid.url.app_error", "Invalid URL Identifier.")
        if name.startswith(_RESERVED):
            raise Refusal(400, "model.team.is_valid.reserved.app_error", "This URL is unavailable. Please try another.")
        if len(name) < 2 or not _TEAM_NAME.match(name):
            raise Refusal(400, "model.team.is_valid.characters.app_error", "Name must be 2 or more lowercase alphanumeric characters.")
        if data.get("type") not in ("O", "I"):
            raise Refusal(400, "model.team.is_valid.type.app_error", "Invalid type.")
        if any(t["name"] == name for t in self.teams.values()):
            raise Refusal(400, "store.sql_team.save_team.existing.app_error", "A team with that name already exists")
        team = {"id": self._new_id(), "create_at": _now(), "update_at": _now(), "delete_at": 0, "name": name,
                "display_name": display, "description": "", "email": "", "type": data["type"],
                "allow_open_invite": bool(data.get("allow_open_invite")), "company_name": "", "allowed_domains": "",
                "invite_id": self._new_id()}
        self.teams[team["id"]] = team
        return team

    def _team_by_name(self, name: str) -> dict:
        found = next((t for t in self.teams.values() if t["name"] == name), None)
        if found is None:
            raise Refusal(404, "app.team.get_by_name.missing.app_error", "Unable to find the existing team.")
        return found

    def _patch_team(self, team_id: str, data: dict) -> dict:
        team = self.teams.get(team_id)
        if team is None:
            raise Refusal(404, "app.team.get.find.app_error", "Unable to find the existing team.")
        if "display_name" in data and not 1 <= len(data["display_name"]) <= 64:
            raise Refusal(400, "model.team.is_valid.name.app_error", "Invalid name.")
        team.update({k: data[k] for k in ("display_name", "description") if k in data}, update_at=_now())
        return team

    # Channels (model/channel.go Channel.IsValid; store: unique name per team)

    def _save_channel(self, data: dict) -> dict:
        team_id, name = data.get("team_id", ""), data.get("name", "")
        if team_id not in self.teams:
            raise Refusal(404, "app.team.get.find.app_error", "Unable to find the existing team.")
        self._check_channel(data)
        if not 1 <= len(name) <= 64 or not _CHANNEL_NAME.match(name):
            raise Refusal(400, "model.channel.is_valid.1_or_more.app_error", "Name must be 1 or more lowercase alphanumeric characters.")
        if data.get("type") not in ("O", "P"):
            raise Refusal(400, "model.channel.is_valid.type.app_error", "Invalid type.")
        if any(c["team_id"] == team_id and c["name"] == name for c in self.channels.values()):
            raise Refusal(400, "store.sql_channel.save_channel.exists.app_error", "A channel with that name already exists on the same team.")
        channel = {"id": self._new_id(), "create_at": _now(), "update_at": _now(), "delete_at": 0, "team_id": team_id,
                   "type": data["type"], "display_name": data.get("display_name", ""), "name": name,
                   "header": data.get("header", ""), "purpose": data.get("purpose", ""), "creator_id": self._new_id()}
        self.channels[channel["id"]] = channel
        return channel

    @staticmethod
    def _check_channel(data: dict) -> None:
        if "display_name" in data and not 1 <= len(data["display_name"]) <= 64:
            raise Refusal(400, "model.channel.is_valid.display_name.app_error", "Invalid display name.")
        if len(data.get("purpose", "")) > 250:
            raise Refusal(400, "model.channel.is_valid.purpose.app_error", "Invalid purpose.")

    def _channel_by_name(self, team_id: str, name: str, include_deleted: bool) -> dict:
        found = next((c for c in self.channels.values() if c["team_id"] == team_id and c["name"] == name
                      and (include_deleted or not c["delete_at"])), None)
        if found is None:
            raise Refusal(404, "app.channel.get_by_name.missing.app_error", "Channel does not exist.")
        return found

    def _patch_channel(self, channel_id: str, data: dict) -> dict:
        channel = self.channels.get(channel_id)
        if channel is None or channel["delete_at"]:
            raise Refusal(404, "app.channel.get.existing.app_error", "Unable to find the existing channel.")
        self._check_channel(data)
        channel.update({k: data[k] for k in ("display_name", "purpose", "header") if k in data}, update_at=_now())
        return channel

    # Incoming webhooks (model/incoming_webhook.go IsValid; app/webhook.go; api4/webhook.go)

    def _create_hook(self, data: dict) -> dict:
        channel = self.channels.get(data["channel_id"])
        if channel is None or channel["delete_at"]:
            raise Refusal(400, "api.incoming_webhook.invalid_channel.app_error", "Invalid channel_id.")
        hook = {"id": self._new_id(), "create_at": _now(), "update_at": _now(), "delete_at": 0,
                "user_id": self._new_id(), "team_id": channel["team_id"], "webhook_schema_translation": None}
        hook.update(self._hook_fields(data, keep=None))
        self.hooks[hook["id"]] = hook
        return hook

    def _update_hook(self, hook_id: str, data: dict) -> dict:
        hook = self._hook(hook_id)
        if data["id"] != hook_id:
            raise Refusal(400, "api.context.invalid_param.app_error", "Invalid hook_id parameter.")
        channel = self.channels.get(data["channel_id"])
        if channel is None or channel["delete_at"]:
            raise Refusal(400, "api.incoming_webhook.invalid_channel.app_error", "Invalid channel_id.")
        if channel["team_id"] != hook["team_id"]:
            raise Refusal(400, "api.webhook.team_mismatch.app_error", "Unable to update webhook across teams.")
        hook.update(self._hook_fields(data, keep=hook), update_at=hook["update_at"] + 1)
        return hook

    def _hook_fields(self, data: dict, keep: dict | None) -> dict:
        fields = {"channel_id": data["channel_id"], "display_name": data.get("display_name", ""),
                  "description": data.get("description", ""), "username": data.get("username", ""),
                  "icon_url": data.get("icon_url", ""), "channel_locked": bool(data.get("channel_locked", False))}
        # Dropped (create) or kept as they were (update) when the override settings are off.
        if not self.username_override:
            fields["username"] = keep["username"] if keep else ""
        if not self.icon_override:
            fields["icon_url"] = keep["icon_url"] if keep else ""
        name = fields["username"]
        if name and (not 3 <= len(name) <= 64 or not _USERNAME.match(name) or name in ("all", "channel", "matterbot", "system")):
            raise Refusal(400, "api.incoming_webhook.invalid_username.app_error", "Invalid username.")
        for key, limit in (("display_name", 64), ("description", 500), ("username", 64), ("icon_url", 1024)):
            if len(fields[key].encode()) > limit:
                raise Refusal(400, f"model.incoming_hook.{key}.app_error", f"Invalid {key}.")
        return fields

    def _hook(self, hook_id: str) -> dict:
        if hook_id not in self.hooks:
            raise Refusal(404, "app.webhooks.get_incoming.app_error", "Unable to get the webhook.")
        return self.hooks[hook_id]

    def _new_id(self) -> str:
        self._ids += 1
        return hashlib.sha1(f"fake-{self._ids}".encode()).hexdigest()[:26]


def _now() -> int:
    return int(time.time() * 1000)


_CONTRACT = load_contract()


@contextmanager
def running_fake_mattermost() -> Iterator[FakeMattermost]:
    """Start a fake Mattermost on a free 127.0.0.1 port; stopped on exit, even after a failure."""
    with serving_fake(FakeMattermost()) as fake:
        yield fake
