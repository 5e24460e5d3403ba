"""Gitea config text: the bootstrap script and the settings that come from the stack.

Pure functions of typed inputs; `tests/components/config/test_gitea_bootstrap.py` runs the script
with `sh` against stub `gitea` and `curl` executables.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

ADMIN_PASSWORD_VARIABLE = "GITEA_ADMIN_PASSWORD"
# Gitea reserves `admin` as a user name.
ADMIN_USERNAME = "ceres-admin"
TOKEN_NAME = "ceres-platform"

_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}$")


@dataclass(frozen=True)
class Bootstrap:
    """An account and its API token, made once with Gitea's own CLI: the admin with the
    platform's all-scopes token, or (`admin=False`) a bot with a narrower one."""

    admin_username: str
    admin_email: str
    token_name: str
    # Gitea's API from inside its container, for the one call the CLI lacks (deleting a token).
    api_url: str
    admin: bool = True
    token_scopes: str = "all"

    def __post_init__(self) -> None:
        for value in (self.admin_username, self.token_name):
            if not _NAME.match(value):
                raise ValueError(f"{value!r}: use lowercase letters, digits and '-'")
        if not re.match(r"^[^@\s'\"]+@[a-z0-9.-]+$", self.admin_email):
            raise ValueError(f"{self.admin_email!r} is not a plain e-mail address")
        if not re.match(r"^http://localhost:\d+/api/v1$", self.api_url):
            raise ValueError(f"{self.api_url!r}: the bootstrap talks to Gitea at http://localhost:<port>/api/v1")
        if not re.match(r"^[a-z:,-]+$", self.token_scopes):
            raise ValueError(f"{self.token_scopes!r}: token scopes are Gitea scope names, comma-separated")


def bootstrap_script(bootstrap: Bootstrap) -> str:
    """`sh` script run as `git` in the Gitea container; its last stdout line is the API token.

    The admin is created only if missing. A token's value is shown once, at creation: a re-run
    (Pulumi runs the step again only when its inputs change) cannot recover the old value, so it
    deletes the platform's token by name through the API and makes a new one, which then flows
    to every consumer in the same `pulumi up`; an unchanged second `up` does not run it at all.

    The password comes from $GITEA_ADMIN_PASSWORD. `gitea admin user create` only takes it as
    `--password` (visible to processes inside this container while it runs); curl gets it on
    stdin (`-K -`, written by the printf builtin), never in its argv. The script itself arrives
    on stdin (`sh -s`), so the CLI calls get /dev/null instead, lest one swallow the rest.
    """
    admin, email = shlex.quote(bootstrap.admin_username), shlex.quote(bootstrap.admin_email)
    token, api = shlex.quote(bootstrap.token_name), shlex.quote(bootstrap.api_url)
    password = f'"${ADMIN_PASSWORD_VARIABLE}"'
    kind, admin_flag = ("admin", " --admin") if bootstrap.admin else ("user", "")
    return f"""\
set -eu
: "${{{ADMIN_PASSWORD_VARIABLE}:?is not set}}"
# Quoted into curl's config below: the generated passwords are letters and digits only.
case {password} in *[!A-Za-z0-9]*) echo "{ADMIN_PASSWORD_VARIABLE} must be letters and digits" >&2; exit 1 ;; esac

users=$(gitea admin user list{admin_flag} </dev/null)
if printf '%s\\n' "$users" | awk -v name={admin} 'NR > 1 && $2 == name {{ found = 1 }} END {{ exit !found }}'; then
    echo "gitea: {kind} {bootstrap.admin_username} exists" >&2
else
    gitea admin user create{admin_flag} --username {admin} --email {email} \\
        --password {password} --must-change-password=false </dev/null >&2
fi

status=$(printf 'user = "%s:%s"\\n' {admin} {password} |
    curl -sS -K - -o /dev/null -w '%{{http_code}}' -X DELETE {api}/users/{admin}/tokens/{token})
case "$status" in
    204) echo "gitea: replaced the old {bootstrap.token_name} token" >&2 ;;
    404) ;;
    *) echo "gitea: deleting the old {bootstrap.token_name} token answered HTTP $status" >&2; exit 1 ;;
esac
gitea admin user generate-access-token --username {admin} --token-name {token} --scopes {bootstrap.token_scopes} --raw </dev/null
"""


def webhook_allowed_hosts(domain: str, internal_hosts: tuple[str, ...] = ()) -> str:
    """Webhooks may reach the internet (Gitea's default), the platform's own hosts, and the
    named containers (the chat hub's internal address).

    Not `private`: Gitea sits on the data network, and a user's webhook must not reach Redis or
    PostgreSQL. Gitea matches the patterns against the host name before resolving it.
    """
    for name in internal_hosts:
        if not re.fullmatch(r"[a-z][a-z0-9-]{0,62}", name):
            raise ValueError(f"{name!r} is not a container name Gitea may send webhooks to")
    return ",".join(("external", f"*.{domain}", *internal_hosts))


# Single sign-on: the realm as an OpenID Connect login source. Gitea derives the callback from
# the source's name (services/auth/source/oauth2/providers.go: AppURL + "user/oauth2/<name>/callback").
SSO_SOURCE_NAME = "keycloak"
SSO_CALLBACK_PATH = f"/user/oauth2/{SSO_SOURCE_NAME}/callback"
CLIENT_SECRET_VARIABLE = "CERES_OIDC_CLIENT_SECRET"
# Requested per source. Not `groups`: Keycloak refuses a scope the client does not have
# (invalid_scope); the client's own group mapper puts the claim in every token anyway.
SSO_SCOPES = ("openid", "email", "profile")
SSO_GROUPS_CLAIM = "groups"
# Printed last by the SSO step; the reload step restarts Gitea only after an update.
SSO_UPDATED = "updated"


@dataclass(frozen=True)
class SsoSource:
    """The OpenID Connect login source Gitea keeps in its database (`gitea admin auth`)."""

    client_id: str
    # Fetched by Gitea itself, so the internal one; Keycloak answers it with the public issuer.
    discovery_url: str
    admin_group: str
    name: str = SSO_SOURCE_NAME

    def __post_init__(self) -> None:
        for value in (self.client_id, self.admin_group, self.name):
            if not _NAME.match(value):
                raise ValueError(f"{value!r}: use lowercase letters, digits and '-'")
        if not re.match(r"^https?://[a-z0-9.:-]+/realms/[a-z0-9-]+/\.well-known/openid-configuration$", self.discovery_url):
            raise ValueError(f"{self.discovery_url!r} is not a realm's discovery URL")


def sso_envs() -> list[str]:
    """`[oauth2_client]`: whoever the realm lets in gets an account, named after their Keycloak
    username, and an existing account with that name or e-mail is linked rather than refused.

    Not OPENID_CONNECT_SCOPES: when set, it replaces the scopes of every OpenID Connect source
    (providers_openid.go); the source carries its own. Registration stays disabled for the sign-up
    form: auto-registration through a login source works regardless (Gitea PR #17219).
    """
    return [
        "GITEA__oauth2_client__ENABLE_AUTO_REGISTRATION=true",
        "GITEA__oauth2_client__USERNAME=preferred_username",
        "GITEA__oauth2_client__ACCOUNT_LINKING=auto",
    ]


def sso_script(source: SsoSource) -> str:
    """`sh` script run as `git`: adds the login source, or updates it by id when it exists.

    Admin rights follow the groups claim on every sign-in (`--admin-group`); Keycloak does the
    second factor, so Gitea's own is skipped for these users. The last stdout line is `created`
    or `updated`.

    The secret comes from $CERES_OIDC_CLIENT_SECRET. Gitea's CLI takes it only as `--secret`
    (cmd/admin_auth_oauth.go has no file or environment variant), so it is visible in this
    container's process list for the second the command runs; it is never in this text.
    `update-oauth` ignores `--skip-local-2fa` (it only applies that flag on `add-oauth`).
    """
    scopes = " ".join(f"--scopes {scope}" for scope in SSO_SCOPES)
    name = shlex.quote(source.name)
    return f"""\
set -eu
: "${{{CLIENT_SECRET_VARIABLE}:?is not set}}"
# The script arrives on stdin (`sh -s`): the CLI gets /dev/null, lest it swallow the rest.
sources=$(gitea admin auth list </dev/null)
id=$(printf '%s\\n' "$sources" | awk -v name={name} 'NR > 1 && $2 == name {{ print $1 }}')
set -- --name {name} --provider openidConnect --key {shlex.quote(source.client_id)} \\
    --secret "${CLIENT_SECRET_VARIABLE}" \\
    --auto-discover-url {shlex.quote(source.discovery_url)} {scopes} \\
    --group-claim-name {SSO_GROUPS_CLAIM} --admin-group {shlex.quote(source.admin_group)}
if [ -z "$id" ]; then
    gitea admin auth add-oauth "$@" --skip-local-2fa </dev/null >&2
    echo "gitea: added login source {source.name}" >&2
    echo created
else
    gitea admin auth update-oauth --id "$id" "$@" </dev/null >&2
    echo "gitea: updated login source {source.name} (id $id)" >&2
    echo {SSO_UPDATED}
fi
"""


RESULT_VARIABLE = "CERES_SSO_RESULT"


def reload_command(container_name: str, attempts: int = 60, interval_seconds: int = 5) -> str:
    """Run on the deploying machine after the SSO step: restarts Gitea when that step updated
    an existing source, then waits until Docker reports it healthy.

    Why: the web process builds each login source's OAuth2 client once and keeps it
    (goth.UseProviders); a CLI process that updates the source cannot reach it. A new source is
    picked up without this (the sign-in route reloads the sources when it finds none by that
    name), so a first deployment does not restart anything.
    """
    if not re.match(r"^[a-z0-9][a-z0-9_.-]*$", container_name):
        raise ValueError(f"{container_name!r} is not a container name")
    return (
        f'[ "${RESULT_VARIABLE}" = {SSO_UPDATED} ] || exit 0\n'
        f"docker restart {container_name} >/dev/null\n"
        "tries=0\n"
        f"until [ \"$(docker inspect --format '{{{{.State.Health.Status}}}}' {container_name})\" = healthy ]; do\n"
        "    tries=$((tries + 1))\n"
        f'    [ "$tries" -lt {attempts} ] || {{ echo "{container_name} is not healthy after its restart" >&2; exit 1; }}\n'
        f"    sleep {interval_seconds}\n"
        "done\n"
    )
