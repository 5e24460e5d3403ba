"""Nextcloud config text: its Redis config file and the bootstrap that installs it.

Pure functions of typed inputs; `tests/components/config/test_nextcloud_real.py` lints and
evaluates the PHP with the real `php` and runs the script with `sh` against a stub `php`.

Why not the image's own Redis variables: `REDIS_HOST*` (config/redis.config.php) cannot pick a
database, and the entrypoint also points PHP sessions at Redis with the password alone
(`?auth=PASSWORD`, no ACL user), which the disabled default user refuses. So Nextcloud gets its
Redis settings from a config file of ours, written by the bootstrap into `config/` (uploading it
there before the first start would leave that directory non-empty, and the entrypoint would
then skip copying the image's own config files). The file holds no secret: the password is
read from the container's environment on every request, as the image's own files do.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

ROOT = "/var/www/html"
REDIS_PASSWORD_VARIABLE = "CERES_REDIS_PASSWORD"
REDIS_CONFIG_NAME = "ceres-redis.config.php"
ADMIN_USERNAME = "ceres-admin"

_PLAIN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


@dataclass(frozen=True)
class RedisConnection:
    """Where Nextcloud's distributed cache and file locks live; the password comes from the env."""

    host: str
    port: int
    user: str
    db: int

    def __post_init__(self) -> None:
        for value in (self.host, self.user):
            if not _PLAIN.match(value):
                raise ValueError(f"{value!r}: a Redis host or user here is lowercase letters, digits, '.', '_' and '-'")
        if not 0 < self.port < 65536 or not 0 <= self.db < 16:
            raise ValueError(f"port {self.port} / database {self.db} out of range")


def redis_config_php(redis: RedisConnection) -> str:
    """A config/*.config.php file: Nextcloud merges it over config.php on every request."""
    return f"""\
<?php
// Rendered by CERES: distributed cache and file locking in this app's own Redis database.
$CONFIG = array(
  'memcache.distributed' => '\\\\OC\\\\Memcache\\\\Redis',
  'memcache.locking' => '\\\\OC\\\\Memcache\\\\Redis',
  'redis' => array(
    'host' => '{redis.host}',
    'port' => {redis.port},
    'user' => '{redis.user}',
    'password' => (string) getenv('{REDIS_PASSWORD_VARIABLE}'),
    'dbindex' => {redis.db},
    'timeout' => 1.5,
  ),
);
"""


@dataclass(frozen=True)
class Bootstrap:
    redis: RedisConnection | None
    root: str = ROOT


def bootstrap_script(bootstrap: Bootstrap) -> str:
    """`sh` script run as www-data once Nextcloud is installed; every step converges, so reruns
    change nothing: background jobs in cron mode (the cron container runs them), and our Redis
    config file written (or removed when Nextcloud has no Redis)."""
    root = shlex.quote(bootstrap.root)
    target = shlex.quote(f"{bootstrap.root}/config/{REDIS_CONFIG_NAME}")
    lines = [
        "set -eu",
        # The script arrives on stdin (`sh -s`): occ gets /dev/null, lest it swallow the rest.
        f"occ() {{ php {root}/occ \"$@\" </dev/null; }}",
        "occ background:cron",
    ]
    if bootstrap.redis is None:
        lines.append(f"rm -f {target}")
    else:
        lines += [
            f': "${{{REDIS_PASSWORD_VARIABLE}:?is not set in the container}}"',
            # Written aside and moved: a request never reads half a file.
            f"cat > {target}.new <<'PHP'",
            redis_config_php(bootstrap.redis).rstrip("\n"),
            "PHP",
            f"mv -f {target}.new {target}",
            # Nextcloud reads the merged config back: the file parsed and is in effect.
            "test \"$(occ config:system:get memcache.locking)\" = '\\OC\\Memcache\\Redis'",
        ]
    return "\n".join(lines) + "\n"


# Single sign-on through the `user_oidc` app (nextcloud/user_oidc). Its callback is one route for
# every provider; with pretty URLs off (no front controller) Nextcloud links it under /index.php.
SSO_PROVIDER = "keycloak"
SSO_CALLBACK_PATHS = ("/apps/user_oidc/code", "/index.php/apps/user_oidc/code")
CLIENT_SECRET_VARIABLE = "CERES_OIDC_CLIENT_SECRET"
# Nextcloud's administrators are the members of its group `admin`, a name that cannot change.
# The Keycloak client of Nextcloud has a client role of that name, granted to the platform's admin
# group, and sends the client's roles in this claim: user_oidc provisions groups from it.
ADMIN_GROUP = "admin"
GROUPS_CLAIM = "nextcloud_groups"


@dataclass(frozen=True)
class SsoProvider:
    """The user_oidc provider, as `occ user_oidc:provider` creates or updates it."""

    client_id: str
    # Fetched by Nextcloud itself, so the internal one; Keycloak answers it with the public issuer.
    discovery_url: str
    identifier: str = SSO_PROVIDER
    root: str = ROOT

    def __post_init__(self) -> None:
        for value in (self.client_id, self.identifier):
            if not _PLAIN.match(value):
                raise ValueError(f"{value!r}: use lowercase letters, digits, '.', '_' and '-'")
        if not re.match(r"^https?://[a-z0-9.:-]+/realms/[a-z0-9-]+/\.well-known/openid-configuration$", self.discovery_url):
            raise ValueError(f"{self.discovery_url!r} is not a realm's discovery URL")


def sso_script(provider: SsoProvider) -> str:
    """`sh` script run as www-data: the user_oidc app, and its provider created or updated in place
    (`user_oidc:provider` is an upsert by identifier), so every run converges to the same state.

    - user_oidc is not in the image: the first run installs it from the Nextcloud app store, so
      the Docker host needs to reach apps.nextcloud.com then; later runs only enable it.
    - Keycloak sits at a private address, which Nextcloud's HTTP client refuses unless
      `allow_local_remote_servers` is true (a system-wide switch: see the report).
    - User ids are Keycloak usernames (not hashed); only the group `admin` is provisioned from the
      claim (whitelist), so it is granted and revoked on each sign-in while groups made in
      Nextcloud are left alone.
    - The secret is read by occ from $CERES_OIDC_CLIENT_SECRET (`--clientsecret-env`, in user_oidc
      releases after 8.2.1: PR #1324; 8.7.0 declares Nextcloud 29 to 34). A user_oidc
      older than that, already on the volume, has only `--clientsecret`: the script then passes it
      that way, which puts it in the container's process list while occ runs, and says so.
    """
    root = shlex.quote(provider.root)
    identifier = shlex.quote(provider.identifier)
    options = " \\\n    ".join([
        f"--clientid={shlex.quote(provider.client_id)}",
        '"$secret_option"',
        f"--discoveryuri={shlex.quote(provider.discovery_url)}",
        "--scope='openid email profile'",
        "--unique-uid=0",
        "--mapping-uid=preferred_username",
        f"--mapping-groups={GROUPS_CLAIM}",
        "--group-provisioning=1",
        f"--group-whitelist-regex='^{ADMIN_GROUP}$'",
    ])
    return f"""\
set -eu
: "${{{CLIENT_SECRET_VARIABLE}:?is not set}}"
# The script arrives on stdin (`sh -s`): occ gets /dev/null, lest it swallow the rest.
occ() {{ php {root}/occ "$@" </dev/null; }}
if occ app:getpath user_oidc >/dev/null 2>&1; then
    occ app:enable user_oidc >&2
else
    occ app:install user_oidc >&2
fi
occ config:system:set allow_local_remote_servers --value=true --type=boolean >&2
if occ user_oidc:provider --help | grep -q -- --clientsecret-env; then
    secret_option=--clientsecret-env={CLIENT_SECRET_VARIABLE}
else
    echo "nextcloud: this user_oidc takes the client secret only as --clientsecret" \
        "(visible in the container's process list while occ runs)" >&2
    secret_option="--clientsecret=${CLIENT_SECRET_VARIABLE}"
fi
occ user_oidc:provider {identifier} {options} >&2
echo "nextcloud: provider {provider.identifier} configured" >&2
echo configured
"""
