"""Portainer CE config: the script that makes Portainer sign in through the realm (OAuth settings).

Pure functions of typed inputs. The Portainer image has no shell, so the step runs on the
deploying machine: a Python script (standard library only: the machine runs the Pulumi program,
so it has Python) talking to Portainer's API at its public URL. Secrets come only from the
environment; the settings it applies are embedded as JSON text.

Portainer never returns the client secret (GET /api/settings hides it; a PUT with an empty
ClientSecret keeps the stored one), so the script cannot read whether the stored secret is
current. It prints a SHA-256 fingerprint of the secret it applied; pulumi-command hands the
previous run's stdout to the next run as PULUMI_COMMAND_STDOUT, so a run with the same secret and
the same visible settings changes nothing, and a rotated secret is sent again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

ADMIN_PASSWORD_VARIABLE = "CERES_PORTAINER_ADMIN_PASSWORD"
CLIENT_SECRET_VARIABLE = "CERES_OIDC_CLIENT_SECRET"
# settings.AuthenticationMethod: 1 internal, 2 LDAP, 3 OAuth.
OAUTH = 3


@dataclass(frozen=True)
class OAuthSettings:
    """Portainer CE's `OAuthSettings` (api/portainer.go), but the secret.

    CE has no claim-to-team or claim-to-admin mapping (`TeamMemberships`, `AdminAutoPopulate` are
    Business Edition only): people who sign in are created as standard users in no team, and only
    an administrator makes one an administrator.
    """

    client_id: str
    authorization_uri: str
    access_token_uri: str
    resource_uri: str
    redirect_uri: str
    logout_uri: str
    user_identifier: str = "preferred_username"
    scopes: str = "openid profile email"

    def as_portainer(self) -> dict[str, object]:
        """The JSON Portainer takes and shows (GET /api/settings returns these same fields)."""
        return {
            "ClientID": self.client_id,
            "AuthorizationURI": self.authorization_uri,
            "AccessTokenURI": self.access_token_uri,
            "ResourceURI": self.resource_uri,
            "RedirectURI": self.redirect_uri,
            "LogoutURI": self.logout_uri,
            "UserIdentifier": self.user_identifier,
            "Scopes": self.scopes,
            "OAuthAutoCreateUsers": True,
            "DefaultTeamID": 0,
            # The realm's session signs people in without asking again (no prompt=login).
            "SSO": True,
            # Let the OAuth client detect how Keycloak takes the client credentials.
            "AuthStyle": 0,
        }


def logout_uri(logout_url: str, client_id: str, back_to: str) -> str:
    """Keycloak's end-session endpoint with where to go afterwards (it needs the client id for that)."""
    return f"{logout_url}?{urlencode({'client_id': client_id, 'post_logout_redirect_uri': back_to})}"


@dataclass(frozen=True)
class SsoStep:
    """Where Portainer is, who signs in to change its settings, and what to set.

    `verify_tls` is off only for Caddy's internal CA (dev), which the deploying machine does not
    trust; ACME certificates (prod) are verified. `attempts`/`retry_delay` ride out Caddy and
    Portainer still starting (connection refused, 502/503).
    """

    url: str
    admin_username: str
    oauth: OAuthSettings
    verify_tls: bool = True
    attempts: int = 20
    retry_delay: float = 3.0

    def __post_init__(self) -> None:
        if not self.url.startswith(("https://", "http://")):
            raise ValueError(f"Portainer URL {self.url!r} must be http(s)")


_SCRIPT = '''\
"""CERES: Portainer signs in through the realm. Applies the OAuth settings only when they differ."""
import hashlib
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

CONFIG = json.loads(%(config)r)


def log(message):
    print("ceres: " + message, file=sys.stderr)


def required(variable):
    value = os.environ.get(variable, "")
    if not value:
        sys.exit("ceres: " + variable + " is not set")
    return value


SECRET = required(%(secret_variable)r)
PASSWORD = required(%(password_variable)r)

TLS = ssl.create_default_context()
if not CONFIG["verify_tls"]:
    # Caddy's internal CA (dev stacks) is not in this machine's trust store.
    TLS.check_hostname = False
    TLS.verify_mode = ssl.CERT_NONE


def call(method, path, body=None, token=None):
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = "Bearer " + token
    data = None if body is None else json.dumps(body).encode()
    for attempt in range(1, CONFIG["attempts"] + 1):
        request = urllib.request.Request(CONFIG["url"] + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, context=TLS, timeout=30) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            # Error bodies carry Portainer's message, never a secret (success bodies might).
            if error.code not in (502, 503, 504) or attempt == CONFIG["attempts"]:
                detail = error.read()[:300].decode(errors="replace")
                sys.exit("ceres: %%s %%s answered %%s: %%s" %% (method, path, error.code, detail))
        except urllib.error.URLError as error:
            if attempt == CONFIG["attempts"]:
                sys.exit("ceres: %%s %%s failed: %%s" %% (method, path, error.reason))
        log("%%s %%s: not reachable yet (attempt %%d)" %% (method, path, attempt))
        time.sleep(CONFIG["retry_delay"])


def fingerprint(secret):
    return "client-secret sha256:" + hashlib.sha256(secret.encode()).hexdigest()


previous = os.environ.get("PULUMI_COMMAND_STDOUT", "").strip().splitlines()
secret_applied = bool(previous) and previous[-1] == fingerprint(SECRET)

token = call("POST", "/api/auth", {"username": CONFIG["admin_username"], "password": PASSWORD})["jwt"]
current = call("GET", "/api/settings", token=token)
shown = current.get("OAuthSettings") or {}
changed = [key for key, value in sorted(CONFIG["oauth"].items()) if shown.get(key) != value]
if current.get("AuthenticationMethod") != %(oauth)d:
    changed.insert(0, "AuthenticationMethod")
if not secret_applied:
    changed.append("ClientSecret")

if changed:
    oauth = dict(CONFIG["oauth"], ClientSecret=SECRET)
    call("PUT", "/api/settings", {"AuthenticationMethod": %(oauth)d, "OAuthSettings": oauth}, token)
    log("set " + ", ".join(changed))
else:
    log("OAuth settings unchanged")
print(fingerprint(SECRET))
'''


def sso_script(step: SsoStep) -> str:
    """The Python the step pipes into `python3 -`; its last stdout line is the secret's fingerprint."""
    config = {
        "url": step.url.rstrip("/"),
        "admin_username": step.admin_username,
        "oauth": step.oauth.as_portainer(),
        "verify_tls": step.verify_tls,
        "attempts": step.attempts,
        "retry_delay": step.retry_delay,
    }
    return _SCRIPT % {
        "config": json.dumps(config, sort_keys=True),
        "secret_variable": CLIENT_SECRET_VARIABLE,
        "password_variable": ADMIN_PASSWORD_VARIABLE,
        "oauth": OAUTH,
    }

