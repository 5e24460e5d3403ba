"""Mattermost teams, channels and incoming webhooks as Pulumi dynamic resources.

Validation rules mirror the server (mattermost/mattermost server/public/model, read on main):
team.go, channel.go, incoming_webhook.go, user.go, utils.go. `check` applies them so bad input
fails at preview; it never calls the server.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Callable
from urllib.parse import urlsplit

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from components.providers.mattermost_api import MattermostApi
from components.providers.rest import REQUEST_TIMEOUT_S, TOTAL_TIMEOUT_S, ApiError, Hidden, is_unknown

# Bump when the providers' behaviour changes, so every resource gets an update.
PROVIDER_VERSION = "1"

COMMON_INPUTS = ("api_url", "token", "verify_tls", "provider_version")

# utils.go validAlphaNum (teams); 2..64 (team.go TeamNameMinLength/TeamNameMaxLength).
TEAM_NAME = re.compile(r"^[a-z0-9]+([a-z\-0-9]+|(__)?)[a-z0-9]+$")
# utils.go reservedName: IsReservedTeamName refuses any name that STARTS with one of these.
RESERVED_TEAM_PREFIXES = (
    "admin", "api", "channel", "claim", "error", "files", "help", "landing", "login",
    "mfa", "oauth", "plug", "plugins", "post", "signup", "boards", "playbooks",
)
# utils.go validSimpleAlphaNum (IsValidChannelIdentifier); 1..64 (channel.go ChannelName*Length).
CHANNEL_NAME = re.compile(r"^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]*$")
# channel.go IsValid: names shaped like group (40 hex) or direct (id__id) channels are refused.
GROUP_CHANNEL_NAME = re.compile(r"^[a-f0-9]{40}$")
# utils.go IsValidId: 26 lowercase letters/digits.
MATTERMOST_ID = re.compile(r"^[a-z0-9]{26}$")
# user.go IsValidUsername (a hook's username override): 3..64 chars of these, not restricted.
USERNAME = re.compile(r"^[a-z0-9.\-_]{3,64}$")
RESTRICTED_USERNAMES = ("all", "channel", "matterbot", "system")


# --- check helpers (each returns a reason, or None when the value is fine) -----------------

def _api_url_problem(value: Any) -> str | None:
    if not isinstance(value, str):
        return "must be a string such as https://chat.example.com"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} must be an http:// or https:// URL of the Mattermost server"
    if value.endswith("/") or parts.query or parts.fragment:
        return f"{value!r} must be the bare base URL: no trailing slash, query or fragment"
    return None


def _text_problem(value: Any, *, low: int, high: int, runes: bool = True) -> str | None:
    if not isinstance(value, str):
        return "must be a string"
    size = len(value) if runes else len(value.encode())
    unit = "characters" if runes else "bytes"
    if not low <= size <= high:
        return f"must be {low}-{high} {unit} long, got {size}"
    return None


def _team_name_problem(value: Any) -> str | None:
    problem = _text_problem(value, low=2, high=64)
    if problem:
        return problem
    if not TEAM_NAME.match(value):
        return f"{value!r}: lowercase letters, digits and '-' only, starting and ending with a letter or digit"
    reserved = next((p for p in RESERVED_TEAM_PREFIXES if value.startswith(p)), None)
    if reserved:
        return f"{value!r} starts with {reserved!r}, which Mattermost reserves for its own URLs"
    return None


def _channel_name_problem(value: Any) -> str | None:
    problem = _text_problem(value, low=1, high=64)
    if problem:
        return problem
    if not CHANNEL_NAME.match(value):
        return f"{value!r}: lowercase letters, digits, '-' and '_' only, starting with a letter or digit"
    halves = value.split("__")
    if GROUP_CHANNEL_NAME.match(value) or (len(halves) == 2 and all(MATTERMOST_ID.match(h) for h in halves)):
        return f"{value!r} looks like a direct or group message channel's name, which Mattermost refuses"
    return None


def _id_problem(value: Any) -> str | None:
    if isinstance(value, str) and MATTERMOST_ID.match(value):
        return None
    return f"{value!r} is not a Mattermost id (26 lowercase letters and digits)"


def _username_problem(value: Any) -> str | None:
    if value == "":
        return None
    if not isinstance(value, str) or not USERNAME.match(value) or value in RESTRICTED_USERNAMES:
        return (f"{value!r}: 3-64 of lowercase letters, digits, '.', '-', '_' and not one of "
                f"{', '.join(RESTRICTED_USERNAMES)} (or empty for the hook owner's name)")
    return None


def _icon_url_problem(value: Any) -> str | None:
    if value == "":
        return None
    # The server only caps the length (1024 bytes); the http(s) scheme is our rule, as the
    # browsers showing the hook's posts load the icon from it.
    problem = _text_problem(value, low=1, high=1024, runes=False)
    if problem:
        return problem
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{value!r} must be an http:// or https:// URL (or empty)"
    return None


def _bool_problem(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"must be true or false, got {value!r}"


def _token_problem(value: Any) -> str | None:
    return None if isinstance(value, str) and value.strip() else "must be a non-empty bot token"


Rule = Callable[[Any], "str | None"]
COMMON_RULES: dict[str, Rule] = {"api_url": _api_url_problem, "token": _token_problem, "verify_tls": _bool_problem}


class _MattermostProvider(ResourceProvider):
    """What the three providers share: check by rules, diff by key lists, the API client.

    Subclasses set INPUTS (their own), DEFAULTS, RULES, REPLACE_ON (keys whose change replaces)
    and KIND.
    """

    INPUTS: tuple[str, ...] = ()
    DEFAULTS: dict[str, Any] = {}
    RULES: dict[str, Rule] = {}
    REPLACE_ON: tuple[str, ...] = ("api_url",)
    KIND = ""

    def __init__(self, total_timeout_s: float = TOTAL_TIMEOUT_S, request_timeout_s: float = REQUEST_TIMEOUT_S):
        super().__init__()
        # Tests shorten these; the resources always use rest.py's defaults.
        self.total_timeout_s = total_timeout_s
        self.request_timeout_s = request_timeout_s

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        inputs = {"verify_tls": True, "provider_version": PROVIDER_VERSION, **self.DEFAULTS,
                  **{k: v for k, v in news.items() if v is not None}}
        failures = []
        for key, rule in {**COMMON_RULES, **self.RULES}.items():
            value = inputs.get(key)
            if is_unknown(value):
                continue
            problem = rule(value)
            if problem:
                # Never quote the token, whatever it holds.
                shown = "must be a non-empty bot token" if key == "token" else problem
                failures.append(CheckFailure(key, f"{self.KIND} {key}: {shown}"))
        return CheckResult(inputs, failures)

    def diff(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = COMMON_INPUTS + self.INPUTS
        changed = [k for k in keys if is_unknown(news.get(k)) or olds.get(k) != news.get(k)]
        replaces = [k for k in changed if k in self.REPLACE_ON]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def _api(self, props: dict[str, Any]) -> MattermostApi:
        return MattermostApi(props["api_url"], props["token"], props.get("verify_tls", True),
                             total_timeout_s=self.total_timeout_s, request_timeout_s=self.request_timeout_s)

    def _inputs(self, props: dict[str, Any]) -> dict[str, Any]:
        inputs = {k: props.get(k) for k in COMMON_INPUTS + self.INPUTS}
        inputs["token"] = Hidden(inputs["token"])
        return inputs


class TeamProvider(_MattermostProvider):
    INPUTS = ("team_name", "display_name")
    RULES = {
        "team_name": _team_name_problem,
        # team.go: 1..64 runes (TeamDisplayNameMaxRunes).
        "display_name": lambda v: _text_problem(v, low=1, high=64),
    }
    REPLACE_ON = ("api_url", "team_name")
    KIND = "Mattermost team"

    def create(self, props: dict[str, Any]) -> CreateResult:
        api = self._api(props)
        team = api.get_team_by_name(props["team_name"])
        if team is None or team.get("delete_at"):
            team = api.create_team(props["team_name"], props["display_name"])
        elif team.get("display_name") != props["display_name"]:
            team = api.patch_team(team["id"], props["team_name"], props["display_name"])
        return CreateResult(team["id"], self._outs(props, team))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        team = self._api(props).get_team_by_name(props["team_name"])
        # A team archived, or deleted and made again under the same name, is not this one.
        if team is None or team.get("delete_at") or team.get("id") != id_:
            return ReadResult("", {})
        return ReadResult(id_, self._outs(props, team))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        team = {"id": id_, "display_name": olds.get("display_name")}
        if olds.get("display_name") != news["display_name"]:
            team = self._api(news).patch_team(id_, news["team_name"], news["display_name"])
        return UpdateResult(self._outs(news, team))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Leaves the team on the server (there is no delete in our contract): it holds people's
        channels and messages. Archive it by hand if it really should go."""

    def _outs(self, props: dict[str, Any], team: dict[str, Any]) -> dict[str, Any]:
        return {**self._inputs(props), "display_name": team.get("display_name"), "team_id": team["id"]}


class ChannelProvider(_MattermostProvider):
    INPUTS = ("team_id", "channel_name", "display_name", "purpose")
    DEFAULTS = {"purpose": ""}
    RULES = {
        "team_id": _id_problem,
        "channel_name": _channel_name_problem,
        # channel.go: display name up to 64 runes (the API refuses an empty one), purpose up to 250.
        "display_name": lambda v: _text_problem(v, low=1, high=64),
        "purpose": lambda v: _text_problem(v, low=0, high=250),
    }
    REPLACE_ON = ("api_url", "team_id", "channel_name")
    KIND = "Mattermost channel"

    def create(self, props: dict[str, Any]) -> CreateResult:
        api = self._api(props)
        channel = api.get_channel_by_name(props["team_id"], props["channel_name"])
        if channel is None:
            channel = api.create_channel(props["team_id"], props["channel_name"], props["display_name"], props["purpose"])
        elif (channel.get("display_name"), channel.get("purpose")) != (props["display_name"], props["purpose"]):
            channel = self._patch(api, channel["id"], props)
        return CreateResult(channel["id"], self._outs(props, channel))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        # Archived channels answer 404 here (include_deleted defaults to false).
        channel = self._api(props).get_channel_by_name(props["team_id"], props["channel_name"])
        if channel is None or channel.get("id") != id_:
            return ReadResult("", {})
        return ReadResult(id_, self._outs(props, channel))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        channel = {"id": id_, "display_name": olds.get("display_name"), "purpose": olds.get("purpose")}
        if (olds.get("display_name"), olds.get("purpose")) != (news["display_name"], news["purpose"]):
            channel = self._patch(self._api(news), id_, news)
        return UpdateResult(self._outs(news, channel))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Leaves the channel on the server: it holds people's messages. Archive it by hand if it
        really should go (a later create of the same name then fails until it is restored)."""

    @staticmethod
    def _patch(api: MattermostApi, channel_id: str, props: dict[str, Any]) -> dict[str, Any]:
        return api.patch_channel(channel_id, props["team_id"], props["channel_name"], props["display_name"], props["purpose"])

    def _outs(self, props: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
        return {**self._inputs(props), "display_name": channel.get("display_name"),
                "purpose": channel.get("purpose", ""), "channel_id": channel["id"]}


HOOK_FIELDS = ("channel_id", "display_name", "description", "username", "icon_url", "channel_locked")


def hook_resource_id(hook_id: str) -> str:
    """A resource id is never secret, and the hook id is the hook's credential: derive one."""
    return "hook-" + hashlib.sha256(hook_id.encode()).hexdigest()[:16]


class IncomingWebhookProvider(_MattermostProvider):
    INPUTS = HOOK_FIELDS
    DEFAULTS = {"description": "", "username": "", "icon_url": "", "channel_locked": True}
    RULES = {
        "channel_id": _id_problem,
        # incoming_webhook.go IsValid (byte lengths): display name 64, description 500,
        # username 64 (and user.go IsValidUsername when set), icon_url 1024.
        "display_name": lambda v: _text_problem(v, low=0, high=64, runes=False),
        "description": lambda v: _text_problem(v, low=0, high=500, runes=False),
        "username": _username_problem,
        "icon_url": _icon_url_problem,
        "channel_locked": _bool_problem,
    }
    KIND = "Mattermost incoming webhook"

    def create(self, props: dict[str, Any]) -> CreateResult:
        api = self._api(props)
        hook = api.create_incoming_hook(self._body(props))
        try:
            self._require_overrides_kept(props, hook)
        except ApiError:
            # Without the hook in the state nobody would ever delete it: undo, then explain.
            api.delete_incoming_hook(hook["id"], props["display_name"])
            raise
        return CreateResult(hook_resource_id(hook["id"]), self._outs(props, hook))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        hook = self._api(props).get_incoming_hook(props["hook_id"], props["display_name"])
        if hook is None or hook.get("delete_at"):
            return ReadResult("", {})
        return ReadResult(id_, self._outs(props, hook))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        hook = self._api(news).update_incoming_hook(olds["hook_id"], self._body(news))
        self._require_overrides_kept(news, hook)
        return UpdateResult(self._outs(news, hook))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        self._api(props).delete_incoming_hook(props["hook_id"], props["display_name"])

    @staticmethod
    def _body(props: dict[str, Any]) -> dict[str, Any]:
        return {k: props[k] for k in HOOK_FIELDS}

    @staticmethod
    def _require_overrides_kept(props: dict[str, Any], hook: dict[str, Any]) -> None:
        # The server silently drops these unless the matching ServiceSettings are on
        # (app/webhook.go CreateIncomingWebhookForChannel); every refresh would then show drift.
        for key, setting in (("username", "EnablePostUsernameOverride"), ("icon_url", "EnablePostIconOverride")):
            if props[key] and hook.get(key) != props[key]:
                raise ApiError(
                    f"Mattermost incoming webhook '{props['display_name']}': the server dropped {key} "
                    f"{props[key]!r}; turn on ServiceSettings.{setting} in Mattermost or leave {key} empty"
                )

    def _outs(self, props: dict[str, Any], hook: dict[str, Any]) -> dict[str, Any]:
        seen = {k: hook.get(k, props.get(k)) for k in HOOK_FIELDS}
        return {**self._inputs(props), **seen, "hook_id": Hidden(hook["id"])}


# --- Resources the platform composes ------------------------------------------------------

SECRET_OUTPUTS = ["token"]


def _secret_opts(opts: pulumi.ResourceOptions | None, secrets: list[str]) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=secrets))


def _common(api_url: pulumi.Input[str], token: pulumi.Input[str], verify_tls: pulumi.Input[bool]) -> dict[str, Any]:
    return {"api_url": api_url, "token": pulumi.Output.secret(token), "verify_tls": verify_tls,
            "provider_version": PROVIDER_VERSION}


class Team(Resource, module="mattermost", name="Team"):
    """An open Mattermost team; an existing team of that name is adopted. Deleting leaves it."""

    team_id: pulumi.Output[str]

    def __init__(self, name: str, *, api_url: pulumi.Input[str], token: pulumi.Input[str], team_name: pulumi.Input[str],
                 display_name: pulumi.Input[str], verify_tls: pulumi.Input[bool] = True,
                 opts: pulumi.ResourceOptions | None = None):
        props = {**_common(api_url, token, verify_tls), "team_name": team_name, "display_name": display_name, "team_id": None}
        super().__init__(TeamProvider(), name, props, _secret_opts(opts, SECRET_OUTPUTS))


class Channel(Resource, module="mattermost", name="Channel"):
    """A public channel in a team; an existing one of that name is adopted. Deleting leaves it."""

    channel_id: pulumi.Output[str]

    def __init__(self, name: str, *, api_url: pulumi.Input[str], token: pulumi.Input[str], team_id: pulumi.Input[str],
                 channel_name: pulumi.Input[str], display_name: pulumi.Input[str], purpose: pulumi.Input[str] = "",
                 verify_tls: pulumi.Input[bool] = True, opts: pulumi.ResourceOptions | None = None):
        props = {**_common(api_url, token, verify_tls), "team_id": team_id, "channel_name": channel_name,
                 "display_name": display_name, "purpose": purpose, "channel_id": None}
        super().__init__(ChannelProvider(), name, props, _secret_opts(opts, SECRET_OUTPUTS))


class IncomingWebhook(Resource, module="mattermost", name="IncomingWebhook"):
    """An incoming webhook posting into a channel.

    `hook_id` is secret: whoever has it can post to `{site}/hooks/{hook_id}`. The resource id is
    derived from it (see `hook_resource_id`) and tells nothing.
    """

    hook_id: pulumi.Output[str]

    def __init__(self, name: str, *, api_url: pulumi.Input[str], token: pulumi.Input[str], channel_id: pulumi.Input[str],
                 display_name: pulumi.Input[str], description: pulumi.Input[str] = "", username: pulumi.Input[str] = "",
                 icon_url: pulumi.Input[str] = "", channel_locked: pulumi.Input[bool] = True,
                 verify_tls: pulumi.Input[bool] = True, opts: pulumi.ResourceOptions | None = None):
        props = {**_common(api_url, token, verify_tls), "channel_id": channel_id, "display_name": display_name,
                 "description": description, "username": username, "icon_url": icon_url,
                 "channel_locked": channel_locked, "hook_id": None}
        super().__init__(IncomingWebhookProvider(), name, props, _secret_opts(opts, SECRET_OUTPUTS + ["hook_id"]))
