"""Mattermost config: the `MM_<SECTION>_<KEY>` environment it runs with, and its bootstrap scripts.

Pure functions of typed inputs. The scripts run with `sh` inside the container and talk to the
server through local mode (a Unix socket only the server's own user can open), so they need no
admin password on any command line. Tests run them against stub `mmctl`/`curl` programs.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

# The image runs as this user (uid 2000); local mode's socket belongs to it.
CONTAINER_USER = "mattermost"
LOCAL_SOCKET = "/var/tmp/mattermost_local.socket"
ADMIN_USERNAME = "ceres-admin"
BOT_USERNAME = "ceres-bot"
# The description CERES gives the bot token it issues: how a later run knows one exists.
TOKEN_MARKER = "ceres-bootstrap"
ADMIN_PASSWORD_VARIABLE = "MM_ADMIN_PASSWORD"

# Every directory the image declares as a VOLUME, so none ends up in an anonymous volume.
VOLUMES = {
    "mattermost-config": "/mattermost/config",
    "mattermost-data": "/mattermost/data",
    "mattermost-logs": "/mattermost/logs",
    "mattermost-plugins": "/mattermost/plugins",
    "mattermost-client-plugins": "/mattermost/client/plugins",
}

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_EMAIL = re.compile(r"^[a-z0-9._-]+@[a-z0-9.-]+\.[a-z0-9-]+$")


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.match(value):
        raise ValueError(f"{what} {value!r} is not allowed in a Mattermost bootstrap script")
    return value


@dataclass(frozen=True)
class MattermostSettings:
    site_url: str
    port: int


def environment(settings: MattermostSettings) -> list[str]:
    """Settings as environment entries; the database's data source is added apart (it holds a secret)."""
    service = "MM_SERVICESETTINGS_"
    return [
        "MM_SQLSETTINGS_DRIVERNAME=postgres",
        f"{service}SITEURL={settings.site_url}",
        f"{service}LISTENADDRESS=:{settings.port}",
        # Caddy terminates TLS and forwards the client's address in these headers.
        f"{service}TRUSTEDPROXYIPHEADER=X-Forwarded-For X-Real-Ip",
        # Off by default, and the chat integrations need each of them.
        f"{service}ENABLEINCOMINGWEBHOOKS=true",
        f"{service}ENABLEPOSTUSERNAMEOVERRIDE=true",
        f"{service}ENABLEPOSTICONOVERRIDE=true",
        f"{service}ENABLEBOTACCOUNTCREATION=true",
        f"{service}ENABLEUSERACCESSTOKENS=true",
        # mmctl --local: administration over a Unix socket inside the container, no credentials.
        f"{service}ENABLELOCALMODE=true",
        f"{service}LOCALMODESOCKETLOCATION={LOCAL_SOCKET}",
    ]


# Mattermost sends the browser back to {SiteURL}/signup/<service>/complete; /login/<service>/complete
# is the route an older login link may still use.
GITLAB_CALLBACKS = ("/signup/gitlab/complete", "/login/gitlab/complete")
OPENID_CALLBACKS = ("/signup/openid/complete",)
# The settings section each edition signs in through: Team Edition has only the GitLab provider
# (free up to the 10.11 ESR line); native OpenID Connect needs a Professional/Enterprise licence.
SSO_SECTIONS = {"team": "MM_GITLABSETTINGS_", "enterprise": "MM_OPENIDSETTINGS_"}


@dataclass(frozen=True)
class SsoSettings:
    """Sign-in through the realm. The browser goes to the public authorization endpoint; Mattermost
    itself calls the token, userinfo and discovery endpoints on the internal network."""

    edition: Literal["team", "enterprise"]
    client_id: str
    auth_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    discovery_endpoint: str


def sso_secret_variable(edition: str) -> str:
    """Where the client secret goes. Mattermost reads no `_FILE` variant of its settings (config/
    environment.go maps MM_<SECTION>_<KEY> only), so the secret is a secret env entry."""
    return f"{SSO_SECTIONS[edition]}SECRET"


def sso_environment(sso: SsoSettings) -> list[str]:
    """The sign-in settings apart from the secret.

    Team Edition: the GitLab provider pointed at Keycloak. Mattermost asks for no scope unless
    told, and Keycloak's userinfo wants `openid`. Licensed editions: native OpenID by discovery.
    Neither maps a group to a Mattermost role: system admins are made by hand (or are the
    bootstrap admin), see `Mattermost`.
    """
    section = SSO_SECTIONS[sso.edition]
    if sso.edition == "team":
        settings = {
            "SCOPE": "openid profile email",
            "AUTHENDPOINT": sso.auth_endpoint,
            "TOKENENDPOINT": sso.token_endpoint,
            "USERAPIENDPOINT": sso.userinfo_endpoint,
        }
    else:
        settings = {"DISCOVERYENDPOINT": sso.discovery_endpoint, "BUTTONTEXT": "Keycloak"}
    return [f"{section}ENABLE=true", f"{section}ID={sso.client_id}", *(f"{section}{k}={v}" for k, v in settings.items())]


def datasource(user: str, password: str, host: str, port: int, database: str) -> str:
    """The PostgreSQL URL Mattermost wants, with user and password percent-encoded."""
    return (
        f"postgres://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{database}"
        "?sslmode=disable&connect_timeout=10"
    )


@dataclass(frozen=True)
class Bootstrap:
    """What the first run makes: a system admin and the bot the chat integrations act as.

    The team and its channels are the Mattermost provider's (`components/providers/mattermost.py`):
    the bot creates the team through the API, which makes it the team's admin, allowed to manage
    the team's incoming webhooks without being a system admin.
    """

    admin_email: str
    bot_email: str
    admin_username: str = ADMIN_USERNAME
    bot_username: str = BOT_USERNAME

    def __post_init__(self) -> None:
        for name in (self.admin_username, self.bot_username):
            _checked(_NAME, name, "name")
        for email in (self.admin_email, self.bot_email):
            _checked(_EMAIL, email, "e-mail")


_PRELUDE = f"""\
set -eu
export MMCTL_LOCAL_SOCKET_PATH={LOCAL_SOCKET}

log() {{ printf 'ceres: %s\\n' "$*" >&2; }}
fail() {{ log "$*"; exit 1; }}
mm() {{ mmctl --local "$@"; }}

"""


def setup_script(bootstrap: Bootstrap) -> str:
    """Idempotent: each user is looked up before it is made.

    The admin's password comes from $MM_ADMIN_PASSWORD and reaches the server in a request body
    on stdin (`mmctl user create` only takes it as an argument, visible in the process list).
    """
    q = shlex.quote
    return _PRELUDE + f"""\
: "${{{ADMIN_PASSWORD_VARIABLE}:?{ADMIN_PASSWORD_VARIABLE} is not set}}"

ADMIN={q(bootstrap.admin_username)}
ADMIN_EMAIL={q(bootstrap.admin_email)}
BOT={q(bootstrap.bot_username)}
BOT_EMAIL={q(bootstrap.bot_email)}

# JSON string content: sed gets the value on stdin, never as an argument.
json_text() {{ printf '%s' "$1" | sed -e 's/\\\\/\\\\\\\\/g' -e 's/"/\\\\"/g'; }}

# A user through the local-mode API, the password in the request body on stdin.
create_user() {{
  printf '{{"username":"%s","email":"%s","password":"%s"}}' "$1" "$2" "$(json_text "$3")" |
    curl -fsS --unix-socket "$MMCTL_LOCAL_SOCKET_PATH" -H 'Content-Type: application/json' \\
      --data-binary @- http://localhost/api/v4/users >/dev/null
}}

user_exists() {{ mm user search "$1" >/dev/null 2>&1; }}
is_bot() {{ mm bot list --all | grep -q ": $1(Owned by"; }}

if user_exists "$ADMIN"; then
  log "admin $ADMIN exists"
else
  create_user "$ADMIN" "$ADMIN_EMAIL" "${ADMIN_PASSWORD_VARIABLE}"
  log "created admin $ADMIN"
fi
mm roles system-admin "$ADMIN" >/dev/null

if is_bot "$BOT"; then
  log "bot $BOT exists"
else
  # Local mode cannot create bots (a bot needs an owning user): make a user, then convert it.
  user_exists "$BOT" && fail "a user named $BOT exists and is not a bot; rename it so CERES can create its bot"
  create_user "$BOT" "$BOT_EMAIL" "$(od -An -N24 -tx1 /dev/urandom | tr -d ' \\n')"
  mm user convert "$BOT" --bot >/dev/null
  is_bot "$BOT" || fail "could not convert user $BOT into a bot"
  log "created bot $BOT"
fi

log "bootstrap done"
"""


def bot_token_script(bot_username: str = BOT_USERNAME) -> str:
    """Issues the bot's access token and prints it last, only if the bot has none from CERES yet.

    Mattermost shows a token once, so a later run cannot print the one it made. This step has no
    inputs that change in normal use, so it runs again only if its script changes or its state is
    lost; it then stops with instructions instead of issuing a second token behind the first.
    """
    bot = shlex.quote(_checked(_NAME, bot_username, "name"))
    return _PRELUDE + f"""\
BOT={bot}
MARKER={TOKEN_MARKER}

# mmctl fails when a user has no token at all: that case is simply an empty list.
if tokens=$(mm token list "$BOT" 2>&1); then :; else
  case $tokens in
    *"there are no tokens"*) tokens= ;;
    *) fail "cannot list the tokens of $BOT: $tokens" ;;
  esac
fi
if printf '%s\\n' "$tokens" | grep -q ": $MARKER\\$"; then
  fail "bot $BOT already has the token CERES issued ($MARKER), and Mattermost never shows a token again." \\
    "To issue a new one: mmctl --local token list $BOT, mmctl --local token revoke <id>, then pulumi up."
fi
issued=$(mm token generate "$BOT" "$MARKER")
token=${{issued%%:*}}
[ -n "$token" ] || fail "mmctl printed no token for $BOT"
log "issued an access token for $BOT"
printf '%s\\n' "$token"
"""
