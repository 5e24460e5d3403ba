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
    """The admin account and the platform's API token, made once with Gitea's own CLI."""

    admin_username: str
    admin_email: str
    token_name: str
    # Gitea's API from inside its container, for the one call the CLI lacks (deleting a token).
    api_url: str

    def __post_init__(self) -> None:
        for value in (self.admin_username, self.token_name):
            if not _NAME.match(value):
                raise ValueError(f"{value!r}: use lowercase letters, digits and '-'")
        if not re.match(r"^[^@\s'\"]+@[a-z0-9.-]+$", self.admin_email):
            raise ValueError(f"{self.admin_email!r} is not a plain e-mail address")
        if not re.match(r"^http://localhost:\d+/api/v1$", self.api_url):
            raise ValueError(f"{self.api_url!r}: the bootstrap talks to Gitea at http://localhost:<port>/api/v1")


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
    return f"""\
set -eu
: "${{{ADMIN_PASSWORD_VARIABLE}:?is not set}}"
# Quoted into curl's config below: the generated passwords are letters and digits only.
case {password} in *[!A-Za-z0-9]*) echo "{ADMIN_PASSWORD_VARIABLE} must be letters and digits" >&2; exit 1 ;; esac

admins=$(gitea admin user list --admin </dev/null)
if printf '%s\\n' "$admins" | awk -v name={admin} 'NR > 1 && $2 == name {{ found = 1 }} END {{ exit !found }}'; then
    echo "gitea: admin {bootstrap.admin_username} exists" >&2
else
    gitea admin user create --admin --username {admin} --email {email} \\
        --password {password} --must-change-password=false </dev/null >&2
fi

status=$(printf 'user = "%s:%s"\\n' {admin} {password} |
    curl -sS -K - -o /dev/null -w '%{{http_code}}' -X DELETE {api}/users/{admin}/tokens/{token})
case "$status" in
    204) echo "gitea: replaced the old {bootstrap.token_name} token" >&2 ;;
    404) ;;
    *) echo "gitea: deleting the old {bootstrap.token_name} token answered HTTP $status" >&2; exit 1 ;;
esac
gitea admin user generate-access-token --username {admin} --token-name {token} --scopes all --raw </dev/null
"""


def webhook_allowed_hosts(domain: str) -> str:
    """Webhooks may reach the internet (Gitea's default) and the platform's own hosts.

    Not `private`: Gitea sits on the data network, and a user's webhook must not reach Redis or
    PostgreSQL. Gitea matches the patterns against the host name before resolving it.
    """
    return f"external,*.{domain}"
