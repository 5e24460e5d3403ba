"""Gitea REST API v1 as the CERES providers use it, and Gitea's own input rules (no Pulumi here).

Rules below were read in go-gitea/gitea (1.24 line) and are cited where they are applied, so a bad
value fails at preview with the server's reason instead of halfway through `pulumi up`.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Iterable
from urllib.parse import quote, urlsplit

from components.providers.rest import Api, ApiError, Hidden, http_url_problem, redact

TOKEN_SETTING = "the Gitea admin API token (bootstrap step gitea-bootstrap)"

SCOPES = ("repo", "org", "system")
# "slack": Mattermost's incoming hooks speak Slack's format (Gitea has no Mattermost type).
# "gitea": Gitea's own JSON payload, signed with config.secret (HMAC-SHA256, X-Gitea-Signature
# header, services/webhook/deliver.go), which CERES's repo-sync worker verifies.
HOOK_TYPES = ("slack", "gitea")
VISIBILITIES = ("public", "limited", "private")
CONTENT_TYPES = ("json", "form")  # models/webhook/hooktask.go IsValidHookContentType

# structs/org.go CreateOrgOption: `binding:"Required;Username;MaxSize(40)"`; full_name MaxSize(100).
ORG_NAME_MAX = 40
FULL_NAME_MAX = 100
# modules/validation/helpers.go IsValidUsername: RE2 `\w` is ASCII, hence re.ASCII.
_USERNAME = re.compile(r"[\da-zA-Z][-.\w]*", re.ASCII)
_USERNAME_BAD = re.compile(r"[-._]{2,}|[-._]$")
# models/user/user.go reservedUsernames / reservedUserPatterns (db.IsUsableName lower-cases first).
RESERVED_USERNAMES = frozenset({
    ".", "..", ".well-known", "admin", "api", "assets", "attachments", "avatar", "avatars", "captcha",
    "commits", "debug", "error", "explore", "favicon.ico", "ghost", "issues", "login", "manifest.json",
    "metrics", "milestones", "new", "notifications", "org", "pulls", "raw", "repo", "repo-avatars",
    "robots.txt", "search", "serviceworker.js", "ssh_info", "swagger.v1.json", "user", "v2", "gitea-actions",
})
RESERVED_USER_PATTERNS = ("*.keys", "*.gpg", "*.rss", "*.atom", "*.png")

# structs/repo.go CreateRepoOption: name `AlphaDashDot;MaxSize(100)`, description MaxSize(2048),
# default_branch `GitRefName;MaxSize(100)`; models/repo/repo.go IsUsableRepoName adds the rest.
REPO_NAME_MAX = 100
DESCRIPTION_MAX = 2048
BRANCH_MAX = 100
_REPO_NAME = re.compile(r"[-.\w]+", re.ASCII)
RESERVED_REPO_NAMES = frozenset({".", "..", "-"})
RESERVED_REPO_PATTERNS = ("*.git", "*.wiki", "*.rss", "*.atom")
_BAD_REF = re.compile(r"[\x00-\x20~^:?*\[\\\x7f]|\.\.|@\{|//|/\.|\.lock(/|$)")

# services/webhook/slack.go IsValidSlackChannel; routers/api/v1/utils/hook.go answers 400 on a bad
# channel and 422 when it is missing (and only checks it on create: we check it always).
_SLACK_CHANNEL = re.compile(r"#?[a-z0-9_-]{1,80}")

# routers/api/v1/utils/hook.go updateHookEvents (1.24): the server silently drops any other name,
# so a typo would quietly create a hook that never fires; "issues"/"pull_request" switch on their
# whole family, "*_only" the base event alone. workflow_run/workflow_job are left out: their
# presence in 1.24 could not be confirmed from the source available here.
ISSUE_EVENTS = ("issues", "issue_assign", "issue_label", "issue_milestone", "issue_comment")
PULL_EVENTS = (
    "pull_request", "pull_request_assign", "pull_request_label", "pull_request_milestone",
    "pull_request_comment", "pull_request_review", "pull_request_review_request", "pull_request_sync",
)
PLAIN_EVENTS = ("create", "delete", "fork", "push", "repository", "wiki", "release", "package", "status")
HOOK_EVENTS = frozenset(PLAIN_EVENTS + ISSUE_EVENTS + PULL_EVENTS + ("issues_only", "pull_request_only"))


def org_name_problem(name: str) -> str | None:
    """Why Gitea would refuse `name` as an organisation (user) name, or None."""
    if not name:
        return "must not be empty"
    if len(name) > ORG_NAME_MAX:
        return f"at most {ORG_NAME_MAX} characters (Gitea's MaxSize(40))"
    if not _USERNAME.fullmatch(name) or _USERNAME_BAD.search(name):
        return ("letters, digits, '-', '_' and '.', starting with a letter or digit, no two of '-_.' in a row "
                "and not ending with one (Gitea's IsValidUsername)")
    if _reserved(name, RESERVED_USERNAMES, RESERVED_USER_PATTERNS):
        return "a name Gitea reserves for its own URLs"
    return None


def repo_name_problem(name: str) -> str | None:
    """Why Gitea would refuse `name` as a repository name, or None."""
    if not name:
        return "must not be empty"
    if len(name) > REPO_NAME_MAX:
        return f"at most {REPO_NAME_MAX} characters (Gitea's MaxSize(100))"
    if not _REPO_NAME.fullmatch(name) or ".." in name:
        return "letters, digits, '-', '_' and '.' only, no '..' (Gitea's AlphaDashDot / IsUsableRepoName)"
    if _reserved(name, RESERVED_REPO_NAMES, RESERVED_REPO_PATTERNS):
        return "reserved by Gitea ('.', '..', '-', or ending in .git, .wiki, .rss, .atom)"
    return None


def branch_problem(branch: str) -> str | None:
    if not branch or len(branch) > BRANCH_MAX:
        return f"1 to {BRANCH_MAX} characters"
    if _BAD_REF.search(branch) or branch.startswith(("-", "/", ".")) or branch.endswith(("/", ".")):
        return "not a valid git branch name (git check-ref-format)"
    return None


def channel_problem(channel: str) -> str | None:
    if not _SLACK_CHANNEL.fullmatch(channel):
        return "must match ^#?[a-z0-9_-]{1,80}$ (Gitea's Slack channel rule): lower case, digits, '-', '_'"
    return None


def api_url_problem(url: str) -> str | None:
    problem = http_url_problem(url)
    if problem:
        return problem
    parts = urlsplit(url)
    if url.endswith("/") or parts.query or parts.fragment:
        return "the server's base URL, without a trailing slash, query or fragment (e.g. https://git.example.com)"
    return None


def enabled_events(events: Iterable[str]) -> frozenset[str]:
    """The events a hook has on the server after it was given `events` (what GET returns)."""
    chosen = set(events) or {"push"}
    enabled = {name for name in PLAIN_EVENTS if name in chosen}
    if "issues" in chosen:
        enabled.update(ISSUE_EVENTS)
    else:
        enabled.update(name for name in ISSUE_EVENTS[1:] if name in chosen)
        if "issues_only" in chosen:
            enabled.add("issues")
    if "pull_request" in chosen:
        enabled.update(PULL_EVENTS)
    else:
        enabled.update(name for name in PULL_EVENTS[1:] if name in chosen)
        if "pull_request_only" in chosen:
            enabled.add("pull_request")
    return frozenset(enabled)


def slack_hook_config(url: str, channel: str, username: str) -> dict[str, str]:
    # Gitea has no Mattermost type; its Slack type speaks Mattermost's incoming-hook format.
    return {"url": url, "content_type": "json", "channel": channel, "username": username}


def gitea_hook_config(url: str, secret: str) -> dict[str, str]:
    # routers/api/v1/utils/hook.go addHook/editHook: only url and content_type are required; the
    # secret is stored (config.secret) and never shown again by GET.
    return {"url": url, "content_type": "json", "secret": secret}


def _reserved(name: str, names: frozenset[str], patterns: tuple[str, ...]) -> bool:
    lowered = name.strip().lower()
    return lowered in names or any(fnmatch.fnmatchcase(lowered, pattern) for pattern in patterns)


class GiteaClient:
    """One Gitea server's API v1. Plain value: built inside each provider method, never kept."""

    def __init__(self, api_url: str, token: str, verify_tls: bool = True, **timeouts: float):
        """`timeouts`: rest.Api's `total_timeout_s` / `request_timeout_s`, to override its defaults."""
        self.api = Api(
            base_url=f"{api_url}/api/v1",
            auth_header=("Authorization", f"token {token}"),
            verify_tls=verify_tls,
            token_setting=TOKEN_SETTING,
            **timeouts,
        )

    # Organisations
    def get_org(self, org: str) -> dict | None:
        return self._json("GET", f"/orgs/{_seg(org)}", f"Gitea organisation {org}", missing_ok=True)

    def create_org(self, org: str, full_name: str, visibility: str) -> dict:
        body = {"username": org, "full_name": full_name, "visibility": visibility}
        return self._json("POST", "/orgs", f"Gitea organisation {org}", json=body)

    def edit_org(self, org: str, full_name: str, visibility: str) -> dict:
        body = {"full_name": full_name, "visibility": visibility}
        return self._json("PATCH", f"/orgs/{_seg(org)}", f"Gitea organisation {org}", json=body)

    # Repositories
    def get_repo(self, owner: str, repo: str) -> dict | None:
        return self._json("GET", f"/repos/{_seg(owner)}/{_seg(repo)}", f"Gitea repository {owner}/{repo}", missing_ok=True)

    def create_org_repo(self, owner: str, repo: str, *, description: str, private: bool, auto_init: bool,
                        default_branch: str) -> dict:
        body = {"name": repo, "description": description, "private": private, "auto_init": auto_init,
                "default_branch": default_branch}
        try:
            return self._json("POST", f"/orgs/{_seg(owner)}/repos", f"Gitea repository {owner}/{repo}", json=body)
        except ApiError as error:
            if error.status != 404:
                raise
            raise ApiError(
                f"Gitea repository {owner}/{repo}: {owner} is neither an organisation nor the account of the "
                f"token given; create the organisation {owner} first, or give {owner}'s own token", 404,
            ) from None

    def token_login(self) -> str:
        """The account the token belongs to."""
        return self._json("GET", "/user", "Gitea token owner")["login"]

    def create_own_repo(self, owner: str, repo: str, *, description: str, private: bool, auto_init: bool,
                        default_branch: str) -> dict:
        """A repository of the token's own account (`owner`)."""
        body = {"name": repo, "description": description, "private": private, "auto_init": auto_init,
                "default_branch": default_branch}
        return self._json("POST", "/user/repos", f"Gitea repository {owner}/{repo}", json=body)

    def edit_repo(self, owner: str, repo: str, changes: dict[str, Any]) -> dict:
        return self._json("PATCH", f"/repos/{_seg(owner)}/{_seg(repo)}", f"Gitea repository {owner}/{repo}", json=changes)

    # Webhooks (repo, org or system scope)
    def create_hook(self, scope: str, owner: str, repo: str, body: dict, *, secrets: Iterable[str] = ()) -> dict:
        if scope == "system":
            # Gitea >= 1.24 (PR #33180): POST /admin/hooks makes a *default* hook (copied into new
            # repos) unless config.is_system_webhook is "true"; `?type=system` only filters the list.
            body = {**body, "config": {**body["config"], "is_system_webhook": "true"}}
        return self._json("POST", _hooks(scope, owner, repo), _hook_name(scope, owner, repo), json=body, secrets=secrets)

    def get_hook(self, scope: str, owner: str, repo: str, hook_id: int) -> dict | None:
        return self._json("GET", f"{_hooks(scope, owner, repo)}/{int(hook_id)}", _hook_name(scope, owner, repo, hook_id),
                          missing_ok=True)

    def edit_hook(self, scope: str, owner: str, repo: str, hook_id: int, body: dict, *,
                  secrets: Iterable[str] = ()) -> dict | None:
        """PATCH a hook; None when it is gone (Gitea answers 500, not 404, for a missing system hook)."""
        if scope == "system" and self.get_hook(scope, owner, repo, hook_id) is None:
            return None
        return self._json("PATCH", f"{_hooks(scope, owner, repo)}/{int(hook_id)}", _hook_name(scope, owner, repo, hook_id),
                          json=body, missing_ok=True, secrets=secrets)

    def delete_hook(self, scope: str, owner: str, repo: str, hook_id: int) -> None:
        self.api.call("DELETE", f"{_hooks(scope, owner, repo)}/{int(hook_id)}",
                      resource=_hook_name(scope, owner, repo, hook_id), missing_ok=True)

    def _json(self, method: str, path: str, resource: str, *, json: Any = None, missing_ok: bool = False,
              secrets: Iterable[str] = ()) -> Any:
        try:
            response = self.api.call(method, path, resource=resource, json=json, missing_ok=missing_ok)
        except ApiError as error:
            # rest.py hides the token; the hook URL (a credential too) is hidden here.
            raise ApiError(redact(str(error), tuple(secrets)), error.status) from None
        return None if response is None else response.json()


def _seg(name: str) -> str:
    return quote(name, safe="")


def _hooks(scope: str, owner: str, repo: str) -> str:
    if scope == "repo":
        return f"/repos/{_seg(owner)}/{_seg(repo)}/hooks"
    if scope == "org":
        return f"/orgs/{_seg(owner)}/hooks"
    return "/admin/hooks"


def _hook_name(scope: str, owner: str, repo: str, hook_id: int | None = None) -> str:
    where = {"repo": f"repository {owner}/{repo}", "org": f"organisation {owner}", "system": "system"}[scope]
    return f"Gitea {where} webhook" + (f" #{hook_id}" if hook_id is not None else "")
