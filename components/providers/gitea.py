"""Gitea organisations, repositories and webhooks as Pulumi dynamic resources.

Every resource takes `api_url` (the server's base URL), `token` (a secret: the Gitea admin API
token) and `verify_tls`. The providers keep no client between calls: the provider object is pickled.
"""

from __future__ import annotations

from typing import Any, Callable

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)

from components.providers import gitea_api as g
from components.providers.rest import ApiError, is_unknown

# Bump when the providers' behaviour changes, so existing resources get an update.
PROVIDER_VERSION = "1"
COMMON_INPUTS = ("api_url", "token", "verify_tls", "provider_version")


def _known(value: Any) -> bool:
    """False for a value (or a list holding one) the engine does not know yet: never judge those."""
    if isinstance(value, list):
        return all(_known(item) for item in value)
    return not is_unknown(value)


class _GiteaProvider(ResourceProvider):
    """What the three providers share: common checks, the diff rule and the client."""

    inputs: tuple[str, ...] = ()
    replace_on: tuple[str, ...] = ()
    defaults: dict[str, Any] = {}
    secret_keys: tuple[str, ...] = ("token",)

    def __init__(self, *, total_timeout_s: float | None = None, request_timeout_s: float | None = None) -> None:
        # Tests shorten the retry budget; the resources use rest.py's defaults.
        self.timeouts = {k: v for k, v in (("total_timeout_s", total_timeout_s),
                                           ("request_timeout_s", request_timeout_s)) if v is not None}

    def check(self, olds: dict, news: dict) -> CheckResult:
        inputs = {**self.defaults, **{k: v for k, v in news.items() if v is not None}}
        inputs.setdefault("provider_version", PROVIDER_VERSION)
        failures: list[CheckFailure] = []

        def need(prop: str, rule: Callable[[Any], str | None]) -> None:
            value = inputs.get(prop)
            if value is None or not _known(value):
                return
            problem = rule(value)
            if problem:
                failures.append(CheckFailure(prop, f"{prop}: {problem}"))

        need("api_url", lambda v: g.api_url_problem(v) if isinstance(v, str) else "must be a string")
        need("token", lambda v: None if isinstance(v, str) and v else "must be a non-empty secret string (the API token)")
        need("verify_tls", lambda v: None if isinstance(v, bool) else "must be true or false")
        for prop in ("api_url", "token"):
            if prop not in inputs:
                failures.append(CheckFailure(prop, f"{prop} is required"))
        self.check_own(inputs, need, failures)
        return CheckResult(inputs, failures)

    def check_own(self, inputs: dict, need: Callable, failures: list[CheckFailure]) -> None:
        raise NotImplementedError

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        changed = [key for key in self.inputs if _differs(olds.get(key), news.get(key))]
        replaces = [key for key in changed if key in self.replace_on]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def outs(self, props: dict, **outputs: Any) -> dict:
        """Every input plus the outputs, credentials wrapped so a printed dict does not show them."""
        outs = {**props, **outputs}
        for key in self.secret_keys:
            if isinstance(outs.get(key), str):
                outs[key] = g.Hidden(outs[key])
        return outs

    def refreshed(self, props: dict, seen: dict) -> dict:
        """The inputs a refresh leaves behind: the server's values, so the next `up` shows the drift."""
        return {key: value for key, value in self.outs(props, **seen).items() if key in self.inputs}

    def client(self, props: dict) -> g.GiteaClient:
        return g.GiteaClient(props["api_url"], props["token"], props.get("verify_tls", True), **self.timeouts)


def _differs(old: Any, new: Any) -> bool:
    if not _known(new):
        return True
    if isinstance(old, list) and isinstance(new, list):
        return sorted(map(str, old)) != sorted(map(str, new))
    return old != new


def _text(limit: int) -> Callable[[Any], str | None]:
    return lambda v: None if isinstance(v, str) and len(v) <= limit else f"a string of at most {limit} characters"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


# Organisation -----------------------------------------------------------------------------------

class OrganizationProvider(_GiteaProvider):
    inputs = COMMON_INPUTS + ("org_name", "full_name", "visibility")
    replace_on = ("api_url", "org_name")
    defaults = {"full_name": "", "visibility": "private", "verify_tls": True}

    def check_own(self, inputs, need, failures):
        need("org_name", lambda v: g.org_name_problem(v) if isinstance(v, str) else "must be a string")
        need("full_name", _text(g.FULL_NAME_MAX))
        need("visibility", lambda v: None if v in g.VISIBILITIES else f"one of {', '.join(g.VISIBILITIES)}")
        if "org_name" not in inputs:
            failures.append(CheckFailure("org_name", "org_name is required"))

    def create(self, props: dict) -> CreateResult:
        client, name = self.client(props), props["org_name"]
        org = client.get_org(name)  # adopt an organisation made by hand or by an earlier, lost state
        if org is None:
            org = client.create_org(name, props["full_name"], props["visibility"])
        elif (org.get("full_name"), org.get("visibility")) != (props["full_name"], props["visibility"]):
            org = client.edit_org(name, props["full_name"], props["visibility"])
        return CreateResult(name, self.outs(props, org_id=org["id"]))

    def read(self, id_: str, props: dict) -> ReadResult:
        org = self.client(props).get_org(props.get("org_name") or id_)
        if org is None:
            return ReadResult("", {})
        seen = {"full_name": org.get("full_name", ""), "visibility": org.get("visibility", "")}
        return ReadResult(id_, self.outs(props, **seen, org_id=org["id"]), self.refreshed(props, seen))

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        org = self.client(news).edit_org(news["org_name"], news["full_name"], news["visibility"])
        return UpdateResult(self.outs(news, org_id=org["id"]))

    def delete(self, id_: str, props: dict) -> None:
        """Leave the organisation: it holds repositories (people's work); remove it in Gitea by hand."""


class Organization(Resource, module="gitea", name="Organization"):
    """A Gitea organisation, adopted when it exists. Deleting the resource leaves the organisation."""

    org_id: pulumi.Output[int]

    def __init__(self, name: str, *, api_url: Any, token: Any, org_name: Any, full_name: Any = "",
                 visibility: Any = "private", verify_tls: Any = True,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"api_url": api_url, "token": token, "org_name": org_name, "full_name": full_name,
                 "visibility": visibility, "verify_tls": verify_tls, "provider_version": PROVIDER_VERSION,
                 "org_id": None}
        super().__init__(OrganizationProvider(), name, props, _secret_outputs(opts, ["token"]))


# Repository -------------------------------------------------------------------------------------

REPO_FIELDS = ("description", "private", "default_branch")


class RepositoryProvider(_GiteaProvider):
    inputs = COMMON_INPUTS + ("owner", "repo_name", "auto_init") + REPO_FIELDS
    replace_on = ("api_url", "owner", "repo_name")
    defaults = {"description": "", "private": True, "auto_init": True, "default_branch": "main", "verify_tls": True}

    def check_own(self, inputs, need, failures):
        need("owner", lambda v: g.org_name_problem(v) if isinstance(v, str) else "must be a string")
        need("repo_name", lambda v: g.repo_name_problem(v) if isinstance(v, str) else "must be a string")
        need("description", _text(g.DESCRIPTION_MAX))
        need("private", _boolean)
        need("auto_init", _boolean)
        need("default_branch", lambda v: g.branch_problem(v) if isinstance(v, str) else "must be a string")
        for prop in ("owner", "repo_name"):
            if prop not in inputs:
                failures.append(CheckFailure(prop, f"{prop} is required"))

    def create(self, props: dict) -> CreateResult:
        client, owner, name = self.client(props), props["owner"], props["repo_name"]
        repo = client.get_repo(owner, name)  # adopt: the repository may hold work already
        if repo is None:
            fields = {key: props[key] for key in ("description", "private", "auto_init", "default_branch")}
            # The token's own account first: a bot's token may not read organisations at all.
            if client.token_login().lower() == owner.lower():
                repo = client.create_own_repo(owner, name, **fields)
            else:
                repo = client.create_org_repo(owner, name, **fields)
        else:
            changes = {key: props[key] for key in REPO_FIELDS if repo.get(key) != props[key]}
            repo = client.edit_repo(owner, name, changes) if changes else repo
        return CreateResult(f"{owner}/{name}", self.outs(props, **_repo_outputs(repo)))

    def read(self, id_: str, props: dict) -> ReadResult:
        repo = self.client(props).get_repo(props["owner"], props["repo_name"])
        if repo is None:
            return ReadResult("", {})
        seen = {key: repo.get(key) for key in REPO_FIELDS}
        return ReadResult(id_, self.outs(props, **seen, **_repo_outputs(repo)), self.refreshed(props, seen))

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        changes = {key: news[key] for key in REPO_FIELDS if olds.get(key) != news[key]}
        client = self.client(news)
        repo = client.edit_repo(news["owner"], news["repo_name"], changes) if changes else \
            client.get_repo(news["owner"], news["repo_name"])
        if repo is None:
            raise ApiError(f"Gitea repository {id_} is gone from {news['api_url']}: run `pulumi refresh`, then `pulumi up`")
        return UpdateResult(self.outs(news, **_repo_outputs(repo)))

    def delete(self, id_: str, props: dict) -> None:
        """Leave the repository: it holds code and history; remove it in Gitea by hand."""


def _repo_outputs(repo: dict) -> dict:
    return {"repo_id": repo["id"], "clone_url": repo.get("clone_url", ""), "html_url": repo.get("html_url", "")}


class Repository(Resource, module="gitea", name="Repository"):
    """A repository of a Gitea organisation, or of the token's own account (a bot's), adopted when
    it exists. Deleting the resource leaves it."""

    repo_id: pulumi.Output[int]
    clone_url: pulumi.Output[str]
    html_url: pulumi.Output[str]

    def __init__(self, name: str, *, api_url: Any, token: Any, owner: Any, repo_name: Any, description: Any = "",
                 private: Any = True, auto_init: Any = True, default_branch: Any = "main", verify_tls: Any = True,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"api_url": api_url, "token": token, "owner": owner, "repo_name": repo_name,
                 "description": description, "private": private, "auto_init": auto_init,
                 "default_branch": default_branch, "verify_tls": verify_tls, "provider_version": PROVIDER_VERSION,
                 "repo_id": None, "clone_url": None, "html_url": None}
        super().__init__(RepositoryProvider(), name, props, _secret_outputs(opts, ["token"]))


# Webhook ----------------------------------------------------------------------------------------

HOOK_FIELDS = ("url", "channel", "username", "events", "branch_filter", "active", "content_type", "secret")
# Inputs added after the first release: a state written before them holds none, which means these.
HOOK_INPUTS_ADDED = {"hook_type": "slack", "secret": ""}


class WebhookProvider(_GiteaProvider):
    inputs = COMMON_INPUTS + ("scope", "owner", "repo", "hook_type") + HOOK_FIELDS
    # Gitea cannot change a hook's type: a new type is a new hook.
    replace_on = ("api_url", "scope", "owner", "repo", "hook_type")
    # `active` and `content_type` are not arguments: fixed here so a hook disabled or switched to
    # form encoding by hand shows as drift and the next `up` puts it back.
    defaults = {"branch_filter": "*", "username": "", "verify_tls": True, "owner": "", "repo": "",
                **HOOK_INPUTS_ADDED}
    secret_keys = ("token", "url", "secret")

    def check(self, olds: dict, news: dict) -> CheckResult:
        return super().check(olds, {**news, "active": True, "content_type": "json"})

    def check_own(self, inputs, need, failures):
        need("scope", lambda v: None if v in g.SCOPES else f"one of {', '.join(g.SCOPES)}")
        need("hook_type", lambda v: None if v in g.HOOK_TYPES else f"one of {', '.join(g.HOOK_TYPES)}")
        need("url", lambda v: g.http_url_problem(v) if isinstance(v, str) else "must be a string")
        # Never quote the secret's value, not even its length.
        need("secret", lambda v: None if isinstance(v, str) else "must be a string (given as a secret)")
        need("username", _text(255))
        need("branch_filter", _text(255))
        need("events", _events_problem)
        for prop in ("scope", "url", "events"):
            if prop not in inputs:
                failures.append(CheckFailure(prop, f"{prop} is required"))
        self._check_channel(inputs, need, failures)
        scope, owner, repo = inputs.get("scope"), inputs.get("owner"), inputs.get("repo")
        if not all(_known(v) for v in (scope, owner, repo)):
            return
        wanted = {"repo": (True, True), "org": (True, False), "system": (False, False)}.get(scope)
        if wanted is None:
            return
        for prop, value, needed in (("owner", owner, wanted[0]), ("repo", repo, wanted[1])):
            if needed and not value:
                failures.append(CheckFailure(prop, f"{prop} is required when scope is {scope!r}"))
            elif not needed and value:
                failures.append(CheckFailure(prop, f"{prop} must be empty when scope is {scope!r}"))
        if wanted[0] and owner:
            need("owner", lambda v: g.org_name_problem(v) if isinstance(v, str) else "must be a string")
        if wanted[1] and repo:
            need("repo", lambda v: g.repo_name_problem(v) if isinstance(v, str) else "must be a string")

    @staticmethod
    def _check_channel(inputs: dict, need: Callable, failures: list[CheckFailure]) -> None:
        """Slack hooks need the channel; Gitea's own payload has neither channel nor username."""
        hook_type = inputs.get("hook_type")
        if hook_type == "gitea":
            inputs.setdefault("channel", "")
            for prop in ("channel", "username"):
                value = inputs.get(prop)
                if _known(value) and value:
                    failures.append(CheckFailure(prop, f"{prop} must be empty when hook_type is 'gitea' "
                                                       "(Gitea's own payload carries no Slack channel or username)"))
        elif hook_type == "slack" and _known(inputs.get("channel")) and not inputs.get("channel"):
            failures.append(CheckFailure("channel", "channel is required when hook_type is 'slack' "
                                                    "(the Mattermost channel to post to)"))
        elif inputs.get("channel"):
            need("channel", lambda v: g.channel_problem(v) if isinstance(v, str) else "must be a string")

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        return super().diff(id_, {**HOOK_INPUTS_ADDED, **olds}, news)

    def create(self, props: dict) -> CreateResult:
        hook = self.client(props).create_hook(*_where(props), _hook_body(props), secrets=_secrets(props))
        return CreateResult(str(hook["id"]), self.outs(props, hook_id=hook["id"]))

    def read(self, id_: str, props: dict) -> ReadResult:
        hook = self.client(props).get_hook(*_where(props), int(id_))
        if hook is None:
            return ReadResult("", {})
        config = hook.get("config") or {}
        # No "secret": GET never shows it, so only a changed input can update it.
        seen = {
            "hook_type": hook.get("type") or props.get("hook_type", "slack"),
            "channel": config.get("channel", ""),
            "username": config.get("username", ""),
            "content_type": config.get("content_type", ""),
            "branch_filter": hook.get("branch_filter", ""),
            "active": bool(hook.get("active")),
        }
        if "url" in config:  # compared only when the server shows it
            seen["url"] = config["url"]
        served = sorted(hook.get("events") or [])
        if g.enabled_events(served) != g.enabled_events(props.get("events") or []):
            seen["events"] = served
        return ReadResult(id_, self.outs(props, **seen, hook_id=int(id_)), self.refreshed(props, seen))

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        body = _hook_body(news, previous_secret=olds.get("secret") or "")
        hook = self.client(news).edit_hook(*_where(news), int(id_), body, secrets=_secrets(news, olds))
        if hook is None:
            raise ApiError(f"Gitea webhook #{id_} was deleted outside Pulumi: run `pulumi refresh`, then `pulumi up` "
                           "to create it again")
        return UpdateResult(self.outs(news, hook_id=int(id_)))

    def delete(self, id_: str, props: dict) -> None:
        self.client(props).delete_hook(*_where(props), int(id_))


def _events_problem(events: Any) -> str | None:
    if not isinstance(events, list) or not events:
        return "a non-empty list of Gitea event names"
    wrong = sorted({str(e) for e in events if e not in g.HOOK_EVENTS})
    if wrong:
        return f"Gitea ignores unknown events {wrong}; allowed: {', '.join(sorted(g.HOOK_EVENTS))}"
    return None


def _where(props: dict) -> tuple[str, str, str]:
    return props["scope"], props.get("owner") or "", props.get("repo") or ""


def _secrets(*props: dict) -> list[str]:
    """What a server echoing the request must not get to show: the hook URL and the signing secret."""
    return [p[key] for p in props for key in ("url", "secret") if isinstance(p.get(key), str) and p[key]]


def _hook_body(props: dict, previous_secret: str = "") -> dict:
    # Gitea's PATCH replaces events and branch_filter wholesale, so create and update send the same.
    hook_type, secret = props.get("hook_type", "slack"), props.get("secret", "")
    if hook_type == "gitea":
        config = g.gitea_hook_config(props["url"], secret)
    else:
        config = g.slack_hook_config(props["url"], props["channel"], props["username"])
        if secret or previous_secret:  # Gitea keeps a secret the PATCH leaves out: send "" to clear it
            config["secret"] = secret
    return {
        "type": hook_type,
        "active": True,
        "events": list(props["events"]),
        "branch_filter": props["branch_filter"],
        "config": config,
    }


class Webhook(Resource, module="gitea", name="Webhook"):
    """A Gitea webhook.

    hook_type "slack" (default) posts to a Mattermost incoming hook (`url`, a secret) in Slack
    format and needs `channel`. hook_type "gitea" posts Gitea's own JSON payload to `url` (the
    repo-sync worker); `channel` and `username` stay empty. `secret` (a secret) makes Gitea sign
    every payload (HMAC-SHA256 in X-Gitea-Signature); Gitea never shows it back, so a changed
    secret updates the hook but a secret changed by hand in Gitea cannot be seen.
    scope "repo" needs owner and repo, "org" needs owner (the organisation), "system" neither
    (Gitea >= 1.24). Changing hook_type replaces the hook. Output `hook_id` (not secret).
    """

    hook_id: pulumi.Output[int]

    def __init__(self, name: str, *, api_url: Any, token: Any, scope: Any, owner: Any = None, repo: Any = None,
                 url: Any, channel: Any = "", events: Any, branch_filter: Any = "*", username: Any = "",
                 hook_type: Any = "slack", secret: Any = "", verify_tls: Any = True,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"api_url": api_url, "token": token, "scope": scope, "owner": owner or "", "repo": repo or "",
                 "hook_type": hook_type, "url": url, "channel": channel, "events": events,
                 "branch_filter": branch_filter, "username": username, "secret": secret, "verify_tls": verify_tls,
                 "provider_version": PROVIDER_VERSION, "active": True, "content_type": "json", "hook_id": None}
        secrets = ["token", "url"] + ([] if isinstance(secret, str) and not secret else ["secret"])
        super().__init__(WebhookProvider(), name, props, _secret_outputs(opts, secrets))


def _secret_outputs(opts: pulumi.ResourceOptions | None, keys: list[str]) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=keys))
