"""Wiki.js 2.5 Git storage (sync mode into a Gitea repository) as a Pulumi dynamic resource.

The wiki has no webhooks: it commits every page change to a Git repository, and that repository's
push hook tells the chat. The provider keeps no client between calls: the provider object is pickled.
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

from components.providers import wikijs_api as w
from components.providers.rest import ApiError, is_unknown

# Bump when the provider's behaviour changes, so existing resources get an update.
PROVIDER_VERSION = "1"
RESOURCE_ID = w.GIT
# Settings the resource does not expose but holds to these values: basic auth (the bot's token over
# HTTPS), the image's data volume for the working copy, files named by path as the wiki shows them.
PINNED_CONFIG = {"authType": "basic", "localRepoPath": "./data/repo", "alwaysNamespace": False}
# Input name -> git config key in the wiki.
CONFIG_KEYS = {
    "repo_url": "repoUrl",
    "branch": "branch",
    "verify_ssl": "verifySSL",
    "username": "basicUsername",
    "author_email": "defaultEmail",
    "author_name": "defaultName",
}
INPUTS = (
    "api_url", "token", "verify_tls", "provider_version", "repo_url", "branch", "username", "password",
    "author_name", "author_email", "sync_interval", "verify_ssl", "enabled", "mode", "pinned_config",
)
REQUIRED = ("api_url", "token", "repo_url", "username", "password", "author_name", "author_email")
DEFAULTS = {"branch": "main", "sync_interval": "PT5M", "verify_ssl": True, "verify_tls": True}
# Not arguments: fixed here so a target disabled, switched to push/pull or to ssh by hand shows as
# drift on refresh and the next `pulumi up` puts it back.
FIXED = {"enabled": True, "mode": "sync", "pinned_config": PINNED_CONFIG, "provider_version": PROVIDER_VERSION}


def _known(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_known(item) for item in value.values())
    return not is_unknown(value)


def _string(rule: Callable[[str], str | None]) -> Callable[[Any], str | None]:
    return lambda value: rule(value) if isinstance(value, str) else "must be a string"


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be true or false"


def _secret_text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "must be a non-empty secret string"


RULES: dict[str, Callable[[Any], str | None]] = {
    "api_url": _string(w.api_url_problem),
    "token": _secret_text,
    "password": _secret_text,
    "repo_url": _string(w.repo_url_problem),
    "branch": _string(w.branch_problem),
    "username": _string(w.username_problem),
    "author_name": _string(w.author_name_problem),
    "author_email": _string(w.email_problem),
    "sync_interval": _string(w.duration_problem),
    "verify_ssl": _boolean,
    "verify_tls": _boolean,
}


class GitStorageProvider(ResourceProvider):
    """Wiki.js's `git` storage target, in sync mode with basic auth; every other target left as found."""

    def check(self, olds: dict, news: dict) -> CheckResult:
        inputs = {**DEFAULTS, **{k: v for k, v in news.items() if v is not None}, **FIXED}
        failures = [CheckFailure(prop, f"{prop} is required") for prop in REQUIRED if prop not in inputs]
        for prop, rule in RULES.items():
            value = inputs.get(prop)
            if value is None or not _known(value):
                continue  # preview: judged once the value is known
            problem = rule(value)
            if problem:
                failures.append(CheckFailure(prop, f"{prop}: {problem}"))
        return CheckResult(inputs, failures)

    def diff(self, id_: str, olds: dict, news: dict) -> DiffResult:
        changed = [key for key in INPUTS if not _known(news.get(key)) or olds.get(key) != news.get(key)]
        # Another wiki is another resource; everything else is one mutation on the same wiki.
        replaces = [key for key in changed if key == "api_url"]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def create(self, props: dict) -> CreateResult:
        # The wiki never shows the stored password, so a create always writes it.
        self._apply(props, force=True)
        return CreateResult(RESOURCE_ID, _outs(props))

    def read(self, id_: str, props: dict) -> ReadResult:
        # A wiki back at its setup wizard (404) or without the git module holds no target: gone.
        git = w.find(_client(props).targets(missing_ok=True), w.GIT)
        if git is None:
            return ReadResult("", {})
        seen = _seen(git, props)
        return ReadResult(id_, _outs({**props, **seen}), _outs({**props, **seen}))

    def update(self, id_: str, olds: dict, news: dict) -> UpdateResult:
        self._apply(news, force=olds.get("password") != news.get("password"))
        return UpdateResult(_outs(news))

    def delete(self, id_: str, props: dict) -> None:
        """Disable the git target, keeping its settings (and every other target) as they are."""
        client = _client(props)
        targets = client.targets(missing_ok=True)
        git = w.find(targets, w.GIT)
        if git is None or not git.is_enabled:
            return  # nothing to disable: a 404 (setup wizard) or a target already off
        body = [t.as_input(is_enabled=False) if t.key == w.GIT else t.as_input() for t in targets]
        client.update_targets(body, f"Wiki.js Git storage at {props['api_url']} (disabling)")

    def _apply(self, props: dict, *, force: bool) -> None:
        """Send the targets only when the git target differs from `props` (or `force`), then make
        sure the wiki kept what was sent."""
        what = f"Wiki.js Git storage at {props['api_url']} -> {props['repo_url']}"
        client = _client(props)
        targets = client.targets()
        git = w.find(targets, w.GIT)
        if git is None:
            raise ApiError(f"{what}: this Wiki.js has no 'git' storage module; CERES needs Wiki.js 2.5")
        if not force and not _drift(git, props):
            return
        body = [_wanted(git, props) if t.key == w.GIT else t.as_input() for t in targets]
        client.update_targets(body, what)
        after = w.find(client.targets(), w.GIT)
        drift = _drift(after, props) if after else {"enabled": None}
        if drift:
            raise ApiError(f"{what}: Wiki.js did not keep {', '.join(sorted(drift))}; see the wiki's log")


def _client(props: dict) -> w.WikiJsClient:
    return w.WikiJsClient(props["api_url"], props["token"], props.get("verify_tls", True),
                          secrets=[props.get("password")])


def _wanted(git: w.Target, props: dict) -> dict:
    # updateTargets replaces the target's whole config: keys CERES does not manage (the ssh ones,
    # gitBinaryPath) go back as read; masked values come back as "********", which keeps them.
    config = {**git.config, **PINNED_CONFIG, "basicPassword": props["password"]}
    config.update({key: props[prop] for prop, key in CONFIG_KEYS.items()})
    return git.as_input(is_enabled=True, mode="sync", sync_interval=props["sync_interval"], config=config)


def _seen(git: w.Target, props: dict) -> dict:
    """The resource's inputs as the wiki holds them. The password is never shown: only an empty
    one (cleared by hand) can be seen, and shows as a change."""
    seen = {prop: git.config.get(key) for prop, key in CONFIG_KEYS.items()}
    seen.update(
        enabled=git.is_enabled,
        mode=git.mode,
        sync_interval=git.sync_interval,
        pinned_config={key: git.config.get(key) for key in PINNED_CONFIG},
    )
    if not git.config.get("basicPassword"):
        seen["password"] = ""
    return seen


def _drift(git: w.Target, props: dict) -> dict:
    seen = _seen(git, props)
    return {key: value for key, value in seen.items() if value != props.get(key)}


def _outs(props: dict) -> dict:
    return {key: props.get(key) for key in INPUTS}


class GitStorage(Resource, module="wikijs", name="GitStorage"):
    """Wiki.js's Git storage in sync mode: pages go to `repo_url` (`branch`) as `username` with
    `password` (secret: the Gitea bot's token), authored `author_name <author_email>` when the page
    has no author, every `sync_interval` (ISO 8601). Other storage targets are kept as they are.
    Deleting the resource disables the target and keeps its settings. Outputs: the inputs (`token`
    and `password` secret), plus `enabled`, `mode` and `pinned_config` as the wiki last showed them.
    """

    enabled: pulumi.Output[bool]
    mode: pulumi.Output[str]

    def __init__(self, name: str, *, api_url: Any, token: Any, repo_url: Any, branch: Any = "main",
                 username: Any, password: Any, author_name: Any, author_email: Any, sync_interval: Any = "PT5M",
                 verify_ssl: Any = True, verify_tls: Any = True, opts: pulumi.ResourceOptions | None = None) -> None:
        props = {"api_url": api_url, "token": token, "repo_url": repo_url, "branch": branch, "username": username,
                 "password": password, "author_name": author_name, "author_email": author_email,
                 "sync_interval": sync_interval, "verify_ssl": verify_ssl, "verify_tls": verify_tls, **FIXED}
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["token", "password"])
        super().__init__(GitStorageProvider(), name, props, pulumi.ResourceOptions.merge(opts, secret_outputs))
