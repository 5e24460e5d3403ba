"""Redis config text: the server settings (redis.conf) and its users (the ACL file).

Pure functions of typed inputs; `tests/components/config/test_redis_real.py` runs their output
in a real `redis-server`.

What separates the consumers, and what does not: each consumer has its own ACL user and
password (revocable alone, named in CLIENT LIST and the ACL log) and its own logical database,
so keys never collide and a FLUSHDB or KEYS stays inside it. Redis ACLs cannot restrict SELECT
to a database number, so a consumer's credentials could still SELECT and read or write another
consumer's database; memory and the eviction budget are shared too. The users are kept from
server administration (`-@admin -@dangerous`: no CONFIG, ACL, FLUSHALL, DEBUG, SHUTDOWN, ...).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import quote

PORT = 6379
CONFIG_DIR = "/usr/local/etc/redis"
CONFIG_FILE = f"{CONFIG_DIR}/redis.conf"
ACL_FILE = f"{CONFIG_DIR}/users.acl"
DATA_DIR = "/data"

# Each consumer's database number, fixed by name: numbering by position in the consumer list
# would move one app's queues and sessions into another's database when a service is switched off.
DATABASES: dict[str, int] = {"gitea": 0, "nextcloud": 1, "mattermost": 2}
DATABASE_COUNT = 16

# The container's own healthcheck: PING and nothing else.
HEALTHCHECK_USER = "healthcheck"
# redis_exporter's user: the read-only introspection commands its README lists for a dedicated user,
# minus the key-reading ones (no --check-keys here) and with CLIENT narrowed to SETNAME.
MONITOR_USER = "ceres_monitor"
_MONITOR_COMMANDS = (
    "+ping", "+info", "+config|get", "+client|setname",
    "+latency|latest", "+latency|histogram", "+slowlog|get", "+slowlog|len",
)
# Apps get every data command on every key of the database they select; KEYS comes back because
# Nextcloud clears its cache prefix with it. No pub/sub: channels are shared across databases.
_CONSUMER_RULES = ("~*", "resetchannels", "+@all", "-@admin", "-@dangerous", "+keys")
_NOTHING = ("resetkeys", "resetchannels", "-@all")
_RESERVED_USERS = frozenset({"default", HEALTHCHECK_USER, MONITOR_USER})
_USERNAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def database_number(consumer: str) -> int:
    if consumer not in DATABASES:
        raise ValueError(
            f"{consumer!r} has no Redis database number; known consumers are {sorted(DATABASES)} "
            "(add it to DATABASES in components/config/redis.py with a number no one else uses)"
        )
    return DATABASES[consumer]


@dataclass(frozen=True)
class RedisSettings:
    memory_mb: int
    consumers: tuple[str, ...]
    # Adds the exporter's user.
    monitoring: bool = False

    def __post_init__(self) -> None:
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb={self.memory_mb}: Redis needs at least 64")
        for name in self.consumers:
            if not _USERNAME.match(name) or name in _RESERVED_USERS:
                raise ValueError(f"{name!r} cannot name a Redis consumer: use lowercase letters, digits and '_', not {sorted(_RESERVED_USERS)}")
            database_number(name)
        if len(set(self.consumers)) != len(self.consumers):
            raise ValueError(f"consumers {self.consumers} name one consumer twice")

    @property
    def maxmemory_mb(self) -> int:
        """Half the container's limit: an RDB save or AOF rewrite forks, and the copy-on-write
        pages, client buffers and fragmentation must fit in the other half."""
        return self.memory_mb // 2


def login_users(settings: RedisSettings) -> tuple[str, ...]:
    """Every user that logs in and so needs a password, in the ACL file's order."""
    return (HEALTHCHECK_USER, *settings.consumers, *((MONITOR_USER,) if settings.monitoring else ()))


def _rules(settings: RedisSettings, user: str) -> tuple[str, ...]:
    if user == HEALTHCHECK_USER:
        # INFO: an HA data node is healthy only as a primary or a linked replica (its role).
        return (*_NOTHING, "+ping", "+info")
    if user == MONITOR_USER:
        return (*_NOTHING, *_MONITOR_COMMANDS)
    return _CONSUMER_RULES


def acl_file(settings: RedisSettings, passwords: Mapping[str, str]) -> str:
    """The users, each with the SHA-256 of its password (`#<hex>`), never the password itself.

    The default user is switched off and has no password at all (`resetpass` also clears
    `nopass`, so protected mode, which only looks at a passwordless default user, stays quiet).
    """
    missing = [user for user in login_users(settings) if not passwords.get(user)]
    if missing:
        raise ValueError(f"no password for Redis users {missing}")
    lines = ["user default off resetpass " + " ".join(_NOTHING)]
    for user in login_users(settings):
        digest = hashlib.sha256(passwords[user].encode()).hexdigest()
        lines.append(" ".join(["user", user, "on", f"#{digest}", *_rules(settings, user)]))
    return "\n".join(lines) + "\n"


def redis_conf(settings: RedisSettings) -> str:
    return "\n".join([
        "# Rendered by CERES: the platform's Redis (caches, sessions, locks, queues).",
        # Only reachable on the internal data network: the container has no published port.
        "bind 0.0.0.0",
        "protected-mode yes",
        f"port {PORT}",
        f"dir {DATA_DIR}",
        f"aclfile {ACL_FILE}",
        f"databases {DATABASE_COUNT}",
        # Both persistence modes: the AOF loses at most a second, the RDB snapshots are what
        # the volume backup copies.
        "appendonly yes",
        "appendfsync everysec",
        "save 3600 1 300 100 60 10000",
        f"maxmemory {settings.maxmemory_mb}mb",
        # Caches and sessions expire and may be evicted; queue items and locks without a TTL
        # must not be: when only those are left, writes fail loudly instead of losing jobs.
        "maxmemory-policy volatile-lru",
        "loglevel notice",
        'logfile ""',
        "",
    ])


def redis_url(username: str, password: str, host: str, port: int, db: int) -> str:
    """`redis://user:password@host:port/db`, the URI form go-redis (Gitea) reads, quoted."""
    return f"redis://{quote(username, safe='')}:{quote(password, safe='')}@{host}:{port}/{db}"
