"""HAProxy in front of the Patroni cluster: one port for writes (the leader), one for reads (replicas).

Pure function of typed inputs; `tests/components/config/test_ha_configs.py` runs `haproxy -c` on it
and `test_patroni_failover_real.py` sends a write load through it while the leader crashes.

Apps connect here, not to a member: HAProxy asks each member's Patroni REST API who is the leader
(`GET /primary` answers 200 only there) and sends connections only to that member.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.config.patroni import PatroniMember

PRIMARY_PORT = 5000
REPLICA_PORT = 5001
STATS_PORT = 8404
# Keepalived's check (/healthz answers 200 while HAProxy runs) and Prometheus (/metrics) use this port.
HEALTH_PATH = "/healthz"
METRICS_PATH = "/metrics"


@dataclass(frozen=True)
class CheckTimings:
    """Health-check pacing, in milliseconds.

    A member that is up is checked every `inter`; one that is down (as every non-leader is on the
    primary port) every `downinter`, one changing state every `fastinter`. One 200 puts a member in
    service (rise 1): Patroni answers 200 on /primary only while it holds the leader lock, so a
    single answer is authoritative, and every 200 ms it waits is a write outage (a planned
    switchover must stay under 2 s). Two failures take one out (fall 2), so one slow check does not
    cut every session of a healthy leader. `timeout_check` keeps a hung member from holding a check.
    """

    inter: int = 1000
    fastinter: int = 250
    downinter: int = 200
    fall: int = 2
    rise: int = 1
    timeout_check: int = 1000


@dataclass(frozen=True)
class HaproxySettings:
    members: tuple[PatroniMember, ...]
    bind_host: str = "0.0.0.0"
    primary_port: int = PRIMARY_PORT
    replica_port: int = REPLICA_PORT
    stats_port: int = STATS_PORT
    maxconn: int = 1000
    checks: CheckTimings = field(default_factory=CheckTimings)
    # Whole sections rendered elsewhere (the Redis primary listener), appended verbatim.
    extra_sections: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("haproxy needs at least one Patroni member to route to")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise ValueError(f"patroni member names repeat: {names}")
        ports = [self.primary_port, self.replica_port, self.stats_port]
        if len(set(ports)) != len(ports):
            raise ValueError(f"primary, replica and stats ports must differ: {ports}")


def _global_and_defaults(settings: HaproxySettings) -> list[str]:
    return [
        "global",
        f"    maxconn {settings.maxconn}",
        "    log stdout format raw local0 info",
        "",
        "defaults",
        "    mode tcp",
        "    log global",
        "    option tcplog",
        # No retry inside HAProxy: each waits a 1 s turn-around, and the only server in the primary
        # pool is the one refusing (a leader mid-demotion). The app's reconnect reaches the new
        # leader sooner.
        "    retries 0",
        "    timeout connect 2s",
        # Apps keep pooled connections idle for long stretches: do not cut them.
        "    timeout client 30m",
        "    timeout server 30m",
        f"    timeout check {settings.checks.timeout_check}ms",
        # With no leader in service (mid-failover) a new connection waits this long for one.
        "    timeout queue 5s",
        "",
    ]


def _stats(settings: HaproxySettings) -> list[str]:
    return [
        "frontend stats",
        "    mode http",
        f"    bind {settings.bind_host}:{settings.stats_port}",
        f"    monitor-uri {HEALTH_PATH}",
        # Built-in Prometheus exporter (compiled in Debian's and the official images).
        f"    http-request use-service prometheus-exporter if {{ path {METRICS_PATH} }}",
        "    stats enable",
        "    stats uri /stats",
        "    stats refresh 10s",
        "",
    ]


def _patroni_listen(settings: HaproxySettings, name: str, port: int, check_path: str) -> list[str]:
    c = settings.checks
    lines = [
        f"listen {name}",
        f"    bind {settings.bind_host}:{port}",
        "    option httpchk",
        f"    http-check send meth GET uri {check_path}",
        "    http-check expect status 200",
        # Connections to a member that stopped being the right one are cut at once, so apps
        # reconnect to the new leader instead of writing into a demoted or dead server.
        f"    default-server inter {c.inter}ms fastinter {c.fastinter}ms downinter {c.downinter}ms"
        f" fall {c.fall} rise {c.rise} on-marked-down shutdown-sessions",
    ]
    lines += [
        f"    server {m.name} {m.postgres} check port {m.restapi.port} addr {m.restapi.host}"
        for m in settings.members
    ]
    return [*lines, ""]


def haproxy_cfg(settings: HaproxySettings) -> str:
    lines = [
        "# Rendered by CERES: writes to the Patroni leader, reads to the replicas.",
        *_global_and_defaults(settings),
        *_stats(settings),
        *_patroni_listen(settings, "postgres_primary", settings.primary_port, "/primary"),
        *_patroni_listen(settings, "postgres_replicas", settings.replica_port, "/replica"),
    ]
    text = "\n".join(lines)
    for section in settings.extra_sections:
        text += "\n" + section.strip("\n") + "\n"
    return text
