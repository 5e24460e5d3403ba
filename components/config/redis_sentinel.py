"""Redis HA config text: Sentinel's config, the data nodes' replication lines, and their ACL users.

Pure functions of typed inputs; `tests/components/config/test_redis_ha_configs.py` runs the output
in a real `redis-sentinel`, `test_redis_failover_real.py` kills a real primary under load.

Secrets. Sentinel rewrites its own config file (its state: current primary, epochs, peers), and
a data node rewrites its redis.conf when Sentinel reconfigures it (CONFIG REWRITE). Whatever they
hold in memory lands in those files in plain text, so the files live on each node's private
volume. What we render never carries a password: the plain parts are ordinary config files, the
credentials are separate secret files (`sentinel_secret_conf`, `replication_secret_conf`, the
digests in the ACL lines) that reach the container as secret files:
- Sentinel: `sentinel_start_script` keeps Sentinel's own file as the state, and at every start
  replaces the lines we manage (settings and credentials) with the current rendered ones, so a
  changed setting or rotated password applies and the failover state survives.
- Data nodes: redis.conf `include`s the replication secret file (masteruser/masterauth).

Split brain. Every node ships `min-replicas-to-write 1` with a lag bound below Sentinel's
detection time: a primary cut off from its replicas stops acknowledging writes before the others
can elect a new one, so the old side of a partition cannot take writes that the failover would
throw away. The price: with both replicas down, the primary refuses writes (reads still work).
Replication stays asynchronous; a client that must not lose a write follows it with `WAIT 1`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote, urlencode

SENTINEL_PORT = 26379
MASTER_NAME = "ceres"
QUORUM = 2
# Failover budget (issue 9: under 4 s). Sentinel needs this long without a valid PING reply
# to call the primary down; the rest (agreement, election, promotion, HAProxy's checks) takes
# about 1.5 s more. Lower trips on a busy host's stalls; 30 s (the default) measured 31 s.
DOWN_AFTER_MS = 2000
# A stuck failover is retried after twice this; replicas get this long to follow the new primary.
FAILOVER_TIMEOUT_MS = 10_000
PARALLEL_SYNCS = 1
MIN_REPLICAS_TO_WRITE = 1
# Seconds without a replica's once-a-second ACK before the primary refuses writes: an isolated
# primary stops within about DOWN_AFTER_MS, before the others have promoted a new one. 1 would
# refuse writes whenever an ACK is a little late on a busy host.
MIN_REPLICAS_MAX_LAG = 2

SENTINEL_DATA_DIR = "/data"
SENTINEL_LIVE_FILE = f"{SENTINEL_DATA_DIR}/sentinel.conf"
SENTINEL_BASE_FILE = "/etc/ceres/sentinel.conf"
SENTINEL_SECRET_FILE = "/run/secrets/sentinel-credentials.conf"
REPLICATION_SECRET_FILE = "/usr/local/etc/redis/replication.conf"

# Users on the data nodes.
SENTINEL_USER = "ceres_sentinel"
REPLICATION_USER = "ceres_replication"
HAPROXY_USER = "ceres_haproxy"
# Users on the Sentinels: the peer user Sentinels use with each other, and the read-only
# discovery user for clients that speak Sentinel (Gitea).
SENTINEL_PEER_USER = "ceres_sentinel_peer"
SENTINEL_CLIENT_USER = "ceres_sentinel_client"

_NOTHING = ("resetkeys", "resetchannels", "-@all")
# Redis docs, ACL "Sentinel and replicas": what Sentinel runs on the data nodes (no keys).
_SENTINEL_RULES = ("resetkeys", "allchannels", "-@all", "+multi", "+slaveof", "+ping", "+exec", "+subscribe",
                   "+config|rewrite", "+role", "+publish", "+info", "+client|setname", "+client|kill", "+script|kill")
# Same page: a replica needs these on its primary (no keys).
_REPLICATION_RULES = (*_NOTHING, "+psync", "+replconf", "+ping")
# HAProxy's tcp-check: PING, INFO replication, QUIT (always allowed).
_HAPROXY_RULES = (*_NOTHING, "+ping", "+info")
# What one Sentinel sends another (sentinel.c): PING, hello PUBLISH, the down-vote, its name.
_SENTINEL_PEER_RULES = ("resetkeys", "resetchannels", "&__sentinel__:hello", "-@all", "+ping", "+publish",
                        "+client|setname", "+sentinel|is-master-down-by-addr")
# go-redis's FailoverClient (Gitea): address lookups and the failover events it subscribes to.
_SENTINEL_CLIENT_RULES = ("resetkeys", "resetchannels", "&+switch-master", "&+slave-reconf-done",
                          # @connection less admin: PING, HELLO, CLIENT SETNAME/SETINFO (7.2+) on any version.
                          "&+replica-reconf-done", "-@all", "+@connection", "-@admin", "-@dangerous",
                          "+subscribe", "+unsubscribe", "+sentinel|get-master-addr-by-name",
                          "+sentinel|sentinels", "+sentinel|replicas", "+sentinel|slaves")

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class Node:
    """An address as the other members reach it (behind Docker NAT: the host's, not the container's)."""

    host: str
    port: int

    def __post_init__(self) -> None:
        if not _NAME.match(self.host):
            raise ValueError(f"{self.host!r} is not a host name or IPv4 address")
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range")

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


@dataclass(frozen=True)
class SentinelSettings:
    """One Sentinel: where the primary is at first (Sentinel follows it after that) and its own address."""

    primary: Node
    announce: Node
    master_name: str = MASTER_NAME
    quorum: int = QUORUM
    down_after_ms: int = DOWN_AFTER_MS
    failover_timeout_ms: int = FAILOVER_TIMEOUT_MS
    parallel_syncs: int = PARALLEL_SYNCS
    data_dir: str = SENTINEL_DATA_DIR

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z][a-z0-9_-]{0,31}$", self.master_name):
            raise ValueError(f"master name {self.master_name!r}: use lowercase letters, digits, '-' and '_'")
        if self.quorum < 2:
            raise ValueError(f"quorum={self.quorum}: one Sentinel alone must not fail over (use 2 of 3)")
        if self.down_after_ms < 1000:
            raise ValueError(f"down_after_ms={self.down_after_ms}: under 1000 ms a busy host's stall fails over")
        if self.failover_timeout_ms < 2 * self.down_after_ms:
            raise ValueError(f"failover_timeout_ms={self.failover_timeout_ms} must be at least twice down_after_ms")
        if self.parallel_syncs < 1:
            raise ValueError(f"parallel_syncs={self.parallel_syncs} must be at least 1")


@dataclass(frozen=True)
class ReplicationSettings:
    """One data node: the first primary (a node that is it starts as primary) and its own address."""

    primary: Node
    announce: Node
    min_replicas_to_write: int = MIN_REPLICAS_TO_WRITE
    min_replicas_max_lag: int = MIN_REPLICAS_MAX_LAG
    secret_file: str = REPLICATION_SECRET_FILE

    def __post_init__(self) -> None:
        if self.min_replicas_to_write < 0 or self.min_replicas_max_lag < 1:
            raise ValueError("min_replicas_to_write must be >= 0 and min_replicas_max_lag >= 1")


def _digest(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def _user(name: str, password: str, rules: tuple[str, ...]) -> str:
    if not password:
        raise ValueError(f"no password for Redis user {name!r}")
    return " ".join(["user", name, "on", _digest(password), *rules])


# --- Sentinel --------------------------------------------------------------------------------


def _hostname_lines(settings: SentinelSettings) -> list[str]:
    # Docker names instead of addresses: Sentinel must resolve them and hand names to clients.
    # Always rendered, so switching back to addresses replaces the old lines.
    names = "no" if settings.primary.is_ip and settings.announce.is_ip else "yes"
    return [f"sentinel resolve-hostnames {names}", f"sentinel announce-hostnames {names}"]


def _managed_lines(settings: SentinelSettings) -> list[str]:
    """Every line but the monitor line: re-applied at each start over Sentinel's own file."""
    name = settings.master_name
    return [
        # Reachable only on the internal data network (no published port in the container).
        "bind 0.0.0.0",
        "protected-mode no",
        f"port {settings.announce.port}",
        f"dir {settings.data_dir}",
        'logfile ""',
        *_hostname_lines(settings),
        f"sentinel announce-ip {settings.announce.host}",
        f"sentinel announce-port {settings.announce.port}",
        # Sentinel would otherwise run scripts that clients set with SENTINEL SET.
        "sentinel deny-scripts-reconfig yes",
        f"sentinel down-after-milliseconds {name} {settings.down_after_ms}",
        f"sentinel failover-timeout {name} {settings.failover_timeout_ms}",
        f"sentinel parallel-syncs {name} {settings.parallel_syncs}",
    ]


def monitor_line(settings: SentinelSettings) -> str:
    return f"sentinel monitor {settings.master_name} {settings.primary.host} {settings.primary.port} {settings.quorum}"


def sentinel_conf(settings: SentinelSettings) -> str:
    """The plain config (no credentials): the monitor line first, the settings after it."""
    return "\n".join([
        "# Rendered by CERES: a Redis Sentinel (credentials come from a separate secret file).",
        monitor_line(settings),
        *_managed_lines(settings),
        "",
    ])


def sentinel_login_users() -> tuple[str, ...]:
    """Sentinel's passwords: its user on the data nodes, its peer user, the clients' user."""
    return (SENTINEL_USER, SENTINEL_PEER_USER, SENTINEL_CLIENT_USER)


def sentinel_secret_conf(settings: SentinelSettings, passwords: Mapping[str, str]) -> str:
    """The credential lines, as a secret file: Sentinel's login on the data nodes, on its peers,
    and the users allowed on the Sentinel itself (digests only)."""
    missing = [user for user in sentinel_login_users() if not passwords.get(user)]
    if missing:
        raise ValueError(f"no password for Sentinel users {missing}")
    name = settings.master_name
    return "\n".join([
        "user default off resetpass " + " ".join(_NOTHING),
        _user(SENTINEL_PEER_USER, passwords.get(SENTINEL_PEER_USER, ""), _SENTINEL_PEER_RULES),
        _user(SENTINEL_CLIENT_USER, passwords.get(SENTINEL_CLIENT_USER, ""), _SENTINEL_CLIENT_RULES),
        f"sentinel auth-user {name} {SENTINEL_USER}",
        f"sentinel auth-pass {name} {passwords[SENTINEL_USER]}",
        f"sentinel sentinel-user {SENTINEL_PEER_USER}",
        f"sentinel sentinel-pass {passwords[SENTINEL_PEER_USER]}",
        "",
    ])


def _managed_pattern(settings: SentinelSettings) -> str:
    """An ERE matching every line the start script replaces: our settings and all credentials."""
    keys = {" ".join(line.split()[:2]) if line.startswith("sentinel ") else line.split()[0]
            for line in _managed_lines(settings)}
    keys |= {"user", "sentinel auth-user", "sentinel auth-pass", "sentinel sentinel-user", "sentinel sentinel-pass"}
    assert all(re.fullmatch(r"[a-z -]+", key) for key in keys), keys  # nothing to escape in an ERE
    return "^(" + "|".join(sorted(keys)) + ")( |$)"


def sentinel_start_script(
    settings: SentinelSettings,
    *,
    base_file: str = SENTINEL_BASE_FILE,
    secret_file: str = SENTINEL_SECRET_FILE,
    live_file: str = SENTINEL_LIVE_FILE,
    sentinel: str = "redis-sentinel",
) -> str:
    """The container's command (`sh -c`): Sentinel's own file on the volume keeps its state
    (current primary, epochs, known peers); our settings and credentials replace their old lines.
    The file is only readable by its owner, since Sentinel writes the credentials back into it."""
    quoted = {key: shlex.quote(value) for key, value in
              {"base": base_file, "secret": secret_file, "live": live_file, "sentinel": sentinel}.items()}
    pattern = shlex.quote(_managed_pattern(settings))
    return "\n".join([
        "set -eu",
        "umask 077",
        f"live={quoted['live']}",
        # First start: only the monitor line; Sentinel fills in the rest of its state.
        f'[ -s "$live" ] || grep -E \'^sentinel monitor \' {quoted["base"]} > "$live"',
        f'grep -vE {pattern} "$live" | grep -vE \'^#\' > "$live.next" || true',
        f"grep -vE '^(sentinel monitor |#)' {quoted['base']} >> \"$live.next\"",
        f'cat {quoted["secret"]} >> "$live.next"',
        'mv "$live.next" "$live"',
        f'exec {quoted["sentinel"]} "$live"',
        "",
    ])


def gitea_sentinel_url(sentinels: tuple[Node, ...], *, username: str, password: str, db: int,
                       sentinel_password: str, master_name: str = MASTER_NAME) -> str:
    """Gitea's `redis+sentinel://` URI: the data user in the userinfo, the Sentinel login in
    `sentinelusername`/`sentinelpassword` (go-gitea/gitea modules/nosql/manager_redis.go)."""
    query = urlencode({"mastername": master_name, "sentinelusername": SENTINEL_CLIENT_USER,
                       "sentinelpassword": sentinel_password})
    hosts = ",".join(f"{node.host}:{node.port}" for node in sentinels)
    return f"redis+sentinel://{quote(username, safe='')}:{quote(password, safe='')}@{hosts}/{db}?{query}"


# --- data nodes ------------------------------------------------------------------------------


def replica_conf_lines(settings: ReplicationSettings) -> str:
    """Lines for every data node's redis.conf, after the base config: each node may become
    a replica (or the primary) at any failover, so all carry the same replication settings."""
    lines = [
        f"include {settings.secret_file}",
        f"replica-announce-ip {settings.announce.host}",
        f"replica-announce-port {settings.announce.port}",
        f"min-replicas-to-write {settings.min_replicas_to_write}",
        f"min-replicas-max-lag {settings.min_replicas_max_lag}",
        # A replica answers reads from its copy while resyncing; writes to it fail (READONLY).
        "replica-read-only yes",
    ]
    if settings.announce != settings.primary:
        lines.append(f"replicaof {settings.primary.host} {settings.primary.port}")
    return "\n".join(lines) + "\n"


def replication_secret_conf(password: str) -> str:
    """The secret file `replica_conf_lines` includes: how a replica logs in on its primary."""
    if not password:
        raise ValueError(f"no password for Redis user {REPLICATION_USER!r}")
    return f"masteruser {REPLICATION_USER}\nmasterauth {password}\n"


def data_node_login_users() -> tuple[str, ...]:
    return (SENTINEL_USER, REPLICATION_USER, HAPROXY_USER)


def ha_acl_lines(passwords: Mapping[str, str]) -> str:
    """ACL-file lines (digests) for the data nodes, appended to `redis.acl_file`'s users."""
    return "\n".join([
        _user(SENTINEL_USER, passwords.get(SENTINEL_USER, ""), _SENTINEL_RULES),
        _user(REPLICATION_USER, passwords.get(REPLICATION_USER, ""), _REPLICATION_RULES),
        _user(HAPROXY_USER, passwords.get(HAPROXY_USER, ""), _HAPROXY_RULES),
    ]) + "\n"
