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

import json
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


# Chat: file events through the `webhook_listeners` app (shipped with Nextcloud 30+, disabled until
# enabled) to the relay (components/config/chat_relay.py), which posts them to Mattermost.
ADMIN_PASSWORD_VARIABLE = "CERES_NEXTCLOUD_ADMIN_PASSWORD"
RELAY_SECRET_VARIABLE = "CERES_NEXTCLOUD_RELAY_SECRET"
# Nextcloud 31's webhook-compatible file events (OCP\Files\Events\Node\AbstractNodeEvent). Share
# events are not among them: OCP\Share\Events\ShareCreatedEvent does not implement
# IWebhookCompatibleEvent, and the app refuses to register it (see the report).
FILE_EVENTS = ("OCP\\Files\\Events\\Node\\NodeCreatedEvent", "OCP\\Files\\Events\\Node\\NodeWrittenEvent")
# The background job that sends each webhook; a dedicated `occ background-job:worker` runs it.
WEBHOOK_JOB = "OCA\\WebhookListeners\\BackgroundJobs\\WebhookCall"
_OCS_WEBHOOKS = "/ocs/v2.php/apps/webhook_listeners/api/v1/webhooks"


@dataclass(frozen=True)
class ChatHooks:
    """The webhooks that send file events under `project_folder` (in any user's files) to the relay."""

    relay_url: str
    secret_header: str
    public_host: str
    project_folder: str = "Projects"
    admin_user: str = ADMIN_USERNAME
    local_url: str = "http://localhost:80"
    root: str = ROOT

    def __post_init__(self) -> None:
        if not re.match(r"^http://[a-z0-9.-]+(:\d+)?/[A-Za-z0-9/_-]*$", self.relay_url):
            raise ValueError(f"relay_url {self.relay_url!r}: http://host[:port]/path expected")
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9 _-]{0,63}$", self.project_folder):
            raise ValueError(f"project folder {self.project_folder!r}: letters, digits, ' ', '_' and '-' only")
        for value in (self.secret_header, self.public_host, self.admin_user, self.local_url):
            if not re.match(r"^[A-Za-z0-9:/._-]+$", value):
                raise ValueError(f"{value!r} has characters this script does not quote")

    def event_filter(self) -> dict:
        """webhook_listeners matches the payload against a Mongo-style filter (PHPMongoQuery: a
        string `/re/` compares as a regular expression, the app re-wraps it in `/`, so slashes are
        escaped). Node paths are `/<uid>/files/<path>`: this matches the folder's tree."""
        return {"event.node.path": f"/^\\/[^\\/]+\\/files\\/{self.project_folder}\\//"}

    def registration(self, event: str) -> dict:
        """The OCS body, without `authData`: the script adds the secret from its environment."""
        return {"httpMethod": "POST", "uri": self.relay_url, "event": event,
                "eventFilter": self.event_filter(), "authMethod": "header"}


def chat_script(hooks: ChatHooks) -> str:
    """`sh` script run as www-data: enable webhook_listeners, let Nextcloud reach the relay's private
    address, then one webhook per file event, found by (uri, event) and updated in place when it
    exists (so a re-run converges and never duplicates; extra copies are deleted).

    The OCS API takes the admin's password (HTTP basic auth): curl reads it from a config on its
    stdin (`-K -`), written by the shell's builtin printf, so it never shows in a process list;
    the request body, which holds the relay secret, reaches curl on file descriptor 3.
    """
    root = shlex.quote(hooks.root)
    api = shlex.quote(f"{hooks.local_url}{_OCS_WEBHOOKS}")
    lines = [
        "set -eu",
        f': "${{{ADMIN_PASSWORD_VARIABLE}:?is not set}}"',
        f': "${{{RELAY_SECRET_VARIABLE}:?is not set}}"',
        f"case ${RELAY_SECRET_VARIABLE} in *[!A-Za-z0-9]*) echo 'nextcloud: the relay secret must be letters and digits' >&2; exit 1;; esac",
        f"case ${ADMIN_PASSWORD_VARIABLE} in *[\\\\\\\"]*) echo 'nextcloud: the admin password cannot hold \\\\ or \"' >&2; exit 1;; esac",
        # The script arrives on stdin (`sh -s`): occ gets /dev/null, lest it swallow the rest.
        f"occ() {{ php {root}/occ \"$@\" </dev/null; }}",
        "occ app:enable webhook_listeners >&2",
        # The relay sits at a private address, which Nextcloud's HTTP client refuses unless this is on.
        "occ config:system:set allow_local_remote_servers --value=true --type=boolean >&2",
        "ocs() {",
        f"    printf 'user = \"%s:%s\"\\n' {shlex.quote(hooks.admin_user)} \"${ADMIN_PASSWORD_VARIABLE}\" |",
        "        curl -fsS --max-time 60 -K - -H 'OCS-APIRequest: true' -H 'Accept: application/json' \\",
        f"            -H {shlex.quote('Host: ' + hooks.public_host)} \"$@\"",
        "}",
        # `ids URI EVENT`: the ids of the registered webhooks with that target and event, from the list on stdin.
        "ids() {",
        "    php -r '$d = json_decode(stream_get_contents(STDIN), true);"
        " if (!is_array($d[\"ocs\"][\"data\"] ?? null)) { fwrite(STDERR, \"nextcloud: no webhook list in the answer\\n\"); exit(1); }"
        " foreach ($d[\"ocs\"][\"data\"] as $h) { if ($h[\"uri\"] === $argv[1] && ltrim($h[\"event\"], \"\\\\\") === $argv[2]) echo $h[\"id\"], \"\\n\"; }'"
        " \"$1\" \"$2\"",
        "}",
        # `body JSON`: the registration with the secret header added from the environment.
        "body() {",
        "    php -r '$b = json_decode($argv[1], true);"
        f" $b[\"authData\"] = [$argv[2] => getenv(\"{RELAY_SECRET_VARIABLE}\")];"
        " echo json_encode($b, JSON_UNESCAPED_SLASHES);'"
        " \"$1\" \"$2\"",
        "}",
        "register() {",
        f'    registration=$(body "$1" {shlex.quote(hooks.secret_header)})',
        # Listed apart from the filtering: a failed listing must stop the script, not read as "none yet".
        f"    listing=$(ocs {api}'?format=json')",
        '    found=$(printf "%s" "$listing" | ids "$2" "$3")',
        '    first=$(printf "%s\\n" "$found" | sed -n 1p)',
        '    if [ -z "$first" ]; then',
        f"        ocs -X POST -H 'Content-Type: application/json' --data-binary @/dev/fd/3 {api} >/dev/null 3<<JSON",
        "$registration",
        "JSON",
        '        echo "nextcloud: webhook for $3 created" >&2',
        "    else",
        f"        ocs -X POST -H 'Content-Type: application/json' --data-binary @/dev/fd/3 {api}/\"$first\" >/dev/null 3<<JSON",
        "$registration",
        "JSON",
        '        echo "nextcloud: webhook $first for $3 updated in place" >&2',
        '        for extra in $(printf "%s\\n" "$found" | sed 1d); do',
        f'            ocs -X DELETE {api}/"$extra" >/dev/null',
        '            echo "nextcloud: duplicate webhook $extra deleted" >&2',
        "        done",
        "    fi",
        "}",
    ]
    for event in FILE_EVENTS:
        registration = json.dumps(hooks.registration(event), separators=(",", ":"))
        lines.append(f"register {shlex.quote(registration)} {shlex.quote(hooks.relay_url)} {shlex.quote(event)}")
    lines.append("echo registered")
    return "\n".join(lines) + "\n"


# Files from elsewhere (files-gitea, files-wikijs, files-redmine): admin mounts of the
# files_external app's Local backend over folders of other services' volumes, which the container
# mounts read-only. Every user sees them (an admin mount with no applicable users or groups), and
# Nextcloud refuses writes (the mount option `readonly`). Commands and their JSON are Nextcloud
# 31's (apps/files_external/lib/Command: `files_external:create --output=json` prints the new id;
# `files_external:list --output=json` lists mount_id, mount_point, storage, configuration,
# options, applicable_users, applicable_groups; `config`/`option <id> <key> <value>` set one key;
# `applicable <id> --remove-all` makes a mount global again).
LOCAL_STORAGE_CLASS = "OC\\Files\\Storage\\Local"
_MOUNT_POINT = re.compile(r"/[A-Za-z0-9][A-Za-z0-9 _-]{0,63}")
_DATADIR = re.compile(r"/[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


@dataclass(frozen=True)
class ExternalFolder:
    """A folder every user sees at `mount_point`, showing `datadir` of the container, read-only."""

    mount_point: str
    datadir: str

    def __post_init__(self) -> None:
        if not _MOUNT_POINT.fullmatch(self.mount_point):
            raise ValueError(f"mount point {self.mount_point!r}: '/' then letters, digits, ' ', '_' and '-'")
        if not _DATADIR.fullmatch(self.datadir) or "/.." in self.datadir:
            raise ValueError(f"datadir {self.datadir!r} is not a plain absolute path")


# `found MOUNT_POINT DATADIR` on the listing in $listing: "ID PLACE ACCESS AUDIENCE" for the admin
# mount at MOUNT_POINT (PLACE same|moved, ACCESS readonly|writable, AUDIENCE everyone|restricted),
# nothing when there is none; fails when the listing is not JSON or the mount is not Local storage.
_FOUND = (
    "found() {\n"
    "    printf '%s' \"$listing\" | php -r '$mounts = json_decode(stream_get_contents(STDIN), true);"
    " if (!is_array($mounts)) { fwrite(STDERR, \"nextcloud: files_external:list gave no JSON list\\n\"); exit(1); }"
    " foreach ($mounts as $m) { if ($m[\"mount_point\"] !== $argv[1]) continue;"
    f" if (ltrim($m[\"storage\"], \"\\\\\") !== {json.dumps(LOCAL_STORAGE_CLASS)})"
    " { fwrite(STDERR, \"nextcloud: $argv[1] is mounted from another backend; remove it or rename it\\n\"); exit(1); }"
    " $options = (array) $m[\"options\"];"
    " echo $m[\"mount_id\"],"
    " rtrim($m[\"configuration\"][\"datadir\"] ?? \"\", \"/\") === $argv[2] ? \" same\" : \" moved\","
    " ($options[\"readonly\"] ?? false) === true ? \" readonly\" : \" writable\","
    " empty($m[\"applicable_users\"]) && empty($m[\"applicable_groups\"]) ? \" everyone\" : \" restricted\", \"\\n\";"
    " exit(0); }' \"$1\" \"$2\"\n"
    "}"
)

# `show MOUNT_POINT DATADIR`: the mount made once, then put right where it differs.
_SHOW = """\
show() {
    state=$(found "$1" "$2")
    if [ -z "$state" ]; then
        id=$(occ files_external:create --output=json "$1" local null::null -c "datadir=$2")
        echo "nextcloud: mount $id shows $2 at $1" >&2
        state="$id same writable everyone"
    fi
    read -r id place access audience <<STATE
$state
STATE
    if [ "$place" != same ]; then
        occ files_external:config "$id" datadir "$2" >&2
        echo "nextcloud: mount $id at $1 now shows $2" >&2
    fi
    if [ "$access" != readonly ]; then
        occ files_external:option "$id" readonly true >&2
        echo "nextcloud: mount $id at $1 is read-only" >&2
    fi
    if [ "$audience" != everyone ]; then
        occ files_external:applicable "$id" --remove-all >/dev/null
        echo "nextcloud: mount $id at $1 is shown to everyone" >&2
    fi
}"""


def folders_script(folders: tuple[ExternalFolder, ...], root: str = ROOT) -> str:
    """`sh` script run as www-data: files_external enabled, then each folder's mount found by its
    mount point (listed before anything is created) and made or corrected, so a re-run changes
    nothing and a moved datadir is fixed in place. Mounts it did not make are left alone."""
    if not folders or len({folder.mount_point for folder in folders}) != len(folders):
        raise ValueError(f"give one or more folders with distinct mount points, not {folders}")
    lines = [
        "set -eu",
        # The script arrives on stdin (`sh -s`): occ gets /dev/null, lest it swallow the rest.
        f"occ() {{ php {shlex.quote(root)}/occ \"$@\" </dev/null; }}",
        "occ app:enable files_external >&2",
        _FOUND,
        _SHOW,
    ]
    for folder in folders:
        # Listed again for each folder: the previous one may have added a mount.
        lines.append("listing=$(occ files_external:list --output=json)")
        lines.append(f"show {shlex.quote(folder.mount_point)} {shlex.quote(folder.datadir)}")
    lines.append("echo mounted")
    return "\n".join(lines) + "\n"
