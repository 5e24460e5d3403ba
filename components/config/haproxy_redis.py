"""HAProxy's Redis primary endpoint, for apps that cannot speak Sentinel (Nextcloud).

Pure function of typed inputs, rendered as one `listen` section for `HaproxySettings.extra_sections`
(components/config/haproxy.py). `tests/components/config/test_redis_ha_configs.py` runs `haproxy -c`
on it and `test_redis_failover_real.py` writes through it while the primary is killed.

HAProxy asks every data node itself whether it is the primary (`INFO replication` answers
`role:master`, with at least one replica connected) and sends connections only there. The check logs in as a user that may only PING
and INFO; its password is read from an environment variable when HAProxy loads the file, so the
rendered text holds only the variable's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.config.redis_sentinel import HAPROXY_USER, Node

# HAProxy's Redis primary endpoint on the HA hosts (also on the virtual IP): not 6379, which the
# data node on the same host already listens on (every HA container uses the host's network).
REDIS_PRIMARY_PORT = 6380
PASSWORD_ENV = "CERES_REDIS_CHECK_PASSWORD"


@dataclass(frozen=True)
class RedisPrimarySettings:
    """The data nodes and the check's pacing (milliseconds).

    A crashed primary (connection refused) is out within fall x fastinter; a newly promoted one
    is in service within rise x downinter of its promotion, which is what the failover budget
    (issue 9: under 4 s) leaves room for. The check gives up after `timeout_check`.
    """

    nodes: tuple[Node, ...]
    bind_host: str = "0.0.0.0"
    port: int = REDIS_PRIMARY_PORT
    check_user: str = HAPROXY_USER
    password_env: str = PASSWORD_ENV
    inter: int = 1000
    fastinter: int = 250
    downinter: int = 250
    fall: int = 2
    # One passing check is enough: it proves role:master with a replica attached, which a node
    # only shows after Sentinel promoted it; a second check would add downinter to every failover.
    rise: int = 1
    timeout_check: int = 1000
    # A `resolvers` section (defined in the main config, e.g. Docker's 127.0.0.11) to re-resolve
    # node names at run time; None resolves them once at start.
    resolvers: str | None = None

    def __post_init__(self) -> None:
        if len(self.nodes) < 2:
            raise ValueError(f"a primary endpoint over {len(self.nodes)} node(s) has nothing to fail over to")
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError(f"data nodes repeat: {self.nodes}")
        if not re.match(r"^[A-Z][A-Z0-9_]*$", self.password_env):
            raise ValueError(f"{self.password_env!r} is not an environment variable name (A-Z, 0-9, _)")


def server_name(node: Node) -> str:
    return "redis_" + re.sub(r"[^A-Za-z0-9]", "_", f"{node.host}_{node.port}")


def redis_primary_section(settings: RedisPrimarySettings) -> str:
    s = settings
    # Redis inline commands. HAProxy expands "${VAR}" when it loads the file, and only inside
    # double quotes, where \r\n are escapes too.
    lines = [
        "listen redis_primary",
        f"    bind {s.bind_host}:{s.port}",
        "    mode tcp",
        # Nextcloud opens a connection per request; idle pooled ones from others are not cut.
        "    timeout client 30m",
        "    timeout server 30m",
        f"    timeout check {s.timeout_check}ms",
        "    option tcp-check",
        f'    tcp-check send "AUTH {s.check_user} ${{{s.password_env}}}\\r\\n"',
        "    tcp-check expect string +OK",
        '    tcp-check send "PING\\r\\n"',
        "    tcp-check expect string +PONG",
        # QUIT goes with INFO, so Redis closes the connection after its answer: a node that is
        # not the primary fails the check at once instead of after timeout_check.
        '    tcp-check send "INFO replication\\r\\nQUIT\\r\\n"',
        # role:master with at least one replica connected. A primary with none is cut off, or an
        # old one back from a crash with stale data until Sentinel demotes it: it refuses writes
        # (min-replicas-to-write) and must not serve reads either.
        '    tcp-check expect rstring "role:master\\r\\nconnected_slaves:[1-9]"',
        # A node that stops being the primary has its connections cut at once, so clients
        # reconnect to the new one instead of writing into a replica (READONLY) or a dead server.
        f"    default-server inter {s.inter}ms fastinter {s.fastinter}ms downinter {s.downinter}ms"
        f" fall {s.fall} rise {s.rise} on-marked-down shutdown-sessions"
        # A node whose name does not resolve yet (its host is down) must not stop HAProxy starting.
        " init-addr last,libc,none" + (f" resolvers {s.resolvers}" if s.resolvers else ""),
        *(f"    server {server_name(node)} {node.host}:{node.port} check" for node in s.nodes),
    ]
    return "\n".join(lines) + "\n"
