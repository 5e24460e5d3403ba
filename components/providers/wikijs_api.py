"""Wiki.js 2.5 GraphQL storage API as the CERES providers use it, and its input rules (no Pulumi here).

Read in requarks/wiki (2.x line): server/graph/schemas/storage.graphql, common.graphql,
server/graph/resolvers/storage.js and server/modules/storage/git/definition.yml. What matters:

- `storage.targets` lists every storage module (enabled or not). Each config entry's `value` is JSON
  text `{...the prop's definition, "value": X}`, and a sensitive prop that is set (git's
  basicPassword) reads back as "********": the wiki never shows it again.
- `storage.updateTargets(targets)` writes each target it is given and REPLACES that target's whole
  config with the entries sent (`{"v": X}` JSON text each); an entry whose value is "********" keeps
  the stored one. CERES sends every target back, as read, whatever the server does with the ones
  left out, so another target (a backup someone enabled) survives either way.
- Failures arrive as HTTP 200: GraphQL `errors` (the `@auth` directive throws "Forbidden" for a
  guest, which is what a wrong key makes of a caller) or `responseResult.succeeded == false`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterable
from urllib.parse import urlsplit

from components.providers.rest import REQUEST_TIMEOUT_S, TOTAL_TIMEOUT_S, Api, ApiError, http_url_problem, redact

TOKEN_SETTING = "the Wiki.js API key (bootstrap step wikijs-bootstrap)"
GRAPHQL_PATH = "/graphql"
GIT = "git"
# What the wiki shows instead of a sensitive value it holds; sent back, it keeps the stored one.
MASK = "********"
AUTH_ERRORS = ("Forbidden", "Unauthorized")

TARGETS_QUERY = """query CeresStorageTargets {
  storage { targets { key title isEnabled mode syncInterval config { key value } } }
}"""
UPDATE_TARGETS = """mutation CeresUpdateStorageTargets($targets: [StorageTargetInput]!) {
  storage { updateTargets(targets: $targets) { responseResult { succeeded errorCode slug message } } }
}"""
GRAPHQL_DOCUMENTS = (TARGETS_QUERY, UPDATE_TARGETS)

# git check-ref-format --branch: no control characters, space, ~ ^ : ? * [ \, no "..", "@{", "//",
# no component starting with "." or ending with ".lock", no leading "-", no trailing "/" or ".".
_BAD_REF = re.compile(r"[\x00-\x20~^:?*\[\\\x7f]|\.\.|@\{|//|(^|/)\.|\.lock(/|$)")
BRANCH_MAX = 255
# The git module writes "name <email>" as commit author (storage/git/storage.js): keep both plain.
_EMAIL = re.compile(r"[^@\s<>\"',;]+@[^@\s<>\"',;]+\.[^@\s<>\"',;.]+")
_AUTHOR_BAD = re.compile(r"[<>\x00-\x1f\x7f]")
TEXT_MAX = 255
# ISO 8601 duration as the wiki's scheduler reads it (e.g. PT5M, PT1H30M, P1D).
_DURATION = re.compile(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?")


@dataclass(frozen=True)
class Target:
    """One storage target as `storage.targets` shows it; `config` holds the plain values."""

    key: str
    title: str
    is_enabled: bool
    mode: str | None
    sync_interval: str | None
    config: dict[str, Any]

    def as_input(self, **changes: Any) -> dict[str, Any]:
        """This target as `StorageTargetInput`, unchanged unless `changes` say otherwise
        (`is_enabled`, `mode`, `sync_interval`, `config`)."""
        config = changes.get("config", self.config)
        return {
            "isEnabled": changes.get("is_enabled", self.is_enabled),
            "key": self.key,
            # Every module gets a mode when the wiki registers it; "push" is its own fallback.
            "mode": changes.get("mode", self.mode) or "push",
            "syncInterval": changes.get("sync_interval", self.sync_interval),
            "config": [{"key": key, "value": json.dumps({"v": value})} for key, value in config.items()],
        }


class WikiJsClient:
    """The storage part of one wiki's GraphQL API. Holds no connection (the provider is pickled).

    `secrets` are extra values (the Git password) scrubbed from every error, on top of the key.
    """

    request_timeout_s = REQUEST_TIMEOUT_S
    total_timeout_s = TOTAL_TIMEOUT_S

    def __init__(self, api_url: str, token: str, verify_tls: bool = True, secrets: Iterable[str] = ()):
        self._api = Api(api_url, ("Authorization", f"Bearer {token}"), verify_tls, TOKEN_SETTING,
                        self.total_timeout_s, self.request_timeout_s)
        self._secrets = (*self._api.secrets, *(s for s in secrets if isinstance(s, str) and s))

    def targets(self, *, missing_ok: bool = False) -> list[Target]:
        """Every storage target. With `missing_ok`, a wiki answering 404 on /graphql (its setup
        wizard: nothing is configured there) has none."""
        data = self._graphql(TARGETS_QUERY, {}, "Wiki.js storage targets", missing_ok=missing_ok)
        if data is None:
            return []
        return [_target(raw) for raw in (data.get("storage") or {}).get("targets") or []]

    def update_targets(self, targets: list[dict[str, Any]], what: str) -> None:
        data = self._graphql(UPDATE_TARGETS, {"targets": targets}, what) or {}
        result = (((data.get("storage") or {}).get("updateTargets")) or {}).get("responseResult")
        if not result or not result.get("succeeded"):
            detail = "no responseResult" if not result else (
                f"{result.get('slug')} (error {result.get('errorCode')}): {result.get('message')}")
            raise ApiError(self._clean(
                f"{what}: Wiki.js did not save the storage targets: {detail}. See the wiki's log "
                "(Administration > Storage shows the target's state), fix the cause and run `pulumi up` again"))

    def _graphql(self, query: str, variables: dict[str, Any], what: str,
                 missing_ok: bool = False) -> dict[str, Any] | None:
        try:
            response = self._api.call("POST", GRAPHQL_PATH, resource=what, missing_ok=missing_ok,
                                      json={"query": query, "variables": variables})
        except ApiError as error:
            # rest.py scrubs the key; a GraphQL server may also quote the variables (the password).
            raise ApiError(self._clean(str(error)), error.status) from None
        if response is None:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(f"{what}: {self._api.base_url}{GRAPHQL_PATH} did not answer GraphQL (status "
                           f"{response.status_code}): is api_url the wiki's base URL?", response.status_code)
        errors = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in body.get("errors") or []]
        if any(message in AUTH_ERRORS for message in errors):
            raise ApiError(self._clean(
                f"{what}: Wiki.js refused the API key ({'; '.join(errors)}): it needs full access "
                f"(manage:system) and the API must be on. Check {TOKEN_SETTING}: it may be revoked or expired"), 403)
        if errors:
            raise ApiError(self._clean(f"{what}: Wiki.js answered GraphQL errors: {'; '.join(errors)}"))
        return body.get("data") or {}

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets)


def _target(raw: dict[str, Any]) -> Target:
    config = {}
    for entry in raw.get("config") or []:
        try:
            shown = json.loads(entry["value"])
        except (TypeError, ValueError):
            continue
        config[entry["key"]] = shown.get("value") if isinstance(shown, dict) else shown
    return Target(raw["key"], raw.get("title") or raw["key"], bool(raw.get("isEnabled")), raw.get("mode"),
                  raw.get("syncInterval"), config)


def find(targets: list[Target], key: str) -> Target | None:
    return next((target for target in targets if target.key == key), None)


# Input rules --------------------------------------------------------------------------------------

def api_url_problem(url: str) -> str | None:
    problem = http_url_problem(url)
    if problem:
        return problem
    parts = urlsplit(url)
    if url.endswith("/") or parts.path or parts.query or parts.fragment:
        return "the wiki's base URL, without a path, trailing slash, query or fragment (e.g. https://wiki.example.com)"
    return None


def repo_url_problem(url: str) -> str | None:
    problem = http_url_problem(url)
    if problem:
        return problem + " (CERES uses basic auth: ssh and git:// URLs are not supported)"
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "must not carry credentials: give them as username and password (secret)"
    if parts.query or parts.fragment or not parts.path.strip("/"):
        return "the repository's clone URL, e.g. https://git.example.com/org/wiki.git"
    return None


def branch_problem(branch: str) -> str | None:
    if not branch or len(branch) > BRANCH_MAX:
        return f"1 to {BRANCH_MAX} characters"
    if _BAD_REF.search(branch) or branch == "@" or branch.startswith("-") or branch.endswith(("/", ".")):
        return "not a valid git branch name (git check-ref-format --branch)"
    return None


def email_problem(email: str) -> str | None:
    if len(email) > TEXT_MAX or not _EMAIL.fullmatch(email):
        return "an e-mail address such as wiki@example.com (no spaces, quotes or angle brackets)"
    return None


def author_name_problem(name: str) -> str | None:
    if not name.strip() or len(name) > TEXT_MAX or _AUTHOR_BAD.search(name):
        return f"1 to {TEXT_MAX} characters, no angle brackets or control characters (it becomes 'name <email>')"
    return None


def username_problem(name: str) -> str | None:
    if not name or len(name) > TEXT_MAX or any(c.isspace() or ord(c) < 32 for c in name):
        return f"1 to {TEXT_MAX} characters without spaces"
    return None


def duration_problem(value: str) -> str | None:
    match = _DURATION.fullmatch(value)
    if not match or value in ("P", "PT") or value.endswith("T"):
        return "an ISO 8601 duration such as PT5M, PT1H or P1D"
    if not any(int(part) for part in match.groups() if part):
        return "must be longer than zero (P0D would never sync)"
    return None
