"""Patroni and etcd config for the production PostgreSQL cluster.

Pure functions of typed inputs. `tests/components/config/test_ha_configs.py` runs the output through
`patroni --validate-config` and a real etcd; `test_patroni_failover_real.py` runs a 3-member cluster
from it and crashes the leader.

Passwords never appear here: Patroni reads PATRONI_SUPERUSER_PASSWORD, PATRONI_REPLICATION_PASSWORD,
PATRONI_REWIND_PASSWORD and PATRONI_RESTAPI_USERNAME/PASSWORD from its environment (see
`SECRET_ENVIRONMENT`) and merges them over this file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import yaml

from components.config.pgbackrest import PgBackRestSettings, archive_parameters, restore_command
from components.config.postgres import POSTGRES_PORT, PostgresSettings, pg_hba_conf, postgresql_conf

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
# pg_rewind's own role (Patroni grants it the four pg_* functions it needs): the superuser stays local.
REWIND_USER = "rewinder"
# What the container must get as secret env entries; Patroni takes nothing else from outside.
SECRET_ENVIRONMENT = (
    "PATRONI_SUPERUSER_PASSWORD",
    "PATRONI_REPLICATION_PASSWORD",
    "PATRONI_REWIND_PASSWORD",
    "PATRONI_RESTAPI_USERNAME",
    "PATRONI_RESTAPI_PASSWORD",
)
RESTAPI_PORT = 8008
# A replica further behind than this is never promoted (in synchronous mode only the synchronous
# standby is a candidate anyway), nor counted ready.
MAXIMUM_LAG_ON_FAILOVER = 1048576
# A member is ready when Patroni's REST API answers 200 on one of these: it leads, or it runs as a
# replica within MAXIMUM_LAG_ON_FAILOVER of the leader. (/readiness checks the lag only from
# Patroni 4.1 on; before, a replica that merely runs is ready.)
READY_PATHS = ("/primary", f"/replica?lag={MAXIMUM_LAG_ON_FAILOVER}")
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


def _checked_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{kind} {name!r}: use lowercase letters, digits and '-', starting with a letter")
    return name


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __post_init__(self) -> None:
        if not self.host or not 0 < self.port < 65536:
            raise ValueError(f"address {self.host!r}:{self.port} needs a host and a port in 1..65535")

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class PatroniMember:
    """One member as the others (and HAProxy) reach it: PostgreSQL and Patroni's REST API."""

    name: str
    postgres: Address
    restapi: Address

    def __post_init__(self) -> None:
        _checked_name("patroni member", self.name)


@dataclass(frozen=True)
class Timings:
    """Leader lease and loop, in seconds.

    ttl 20 is the smallest value Patroni 4.x accepts (it raises anything lower to 20) and 3.0.2
    takes it as is, so both behave the same. A hard crash fails over when the lease expires: between
    ttl - loop_wait and ttl after the crash (the leader renews every loop_wait), plus promotion and
    HAProxy's check. loop_wait 2 keeps that spread and the window after a failover in which the new
    leader has no synchronous standby yet short; retry_timeout 8 honours Patroni's rule
    loop_wait + 2 * retry_timeout <= ttl with a 2 s margin, so a leader cut off from etcd demotes
    itself before its lease can pass to another member.
    """

    ttl: int = 20
    loop_wait: int = 2
    retry_timeout: int = 8

    def __post_init__(self) -> None:
        if self.ttl < 20:
            raise ValueError(f"ttl={self.ttl}: Patroni 4.x raises any ttl below 20 to 20; ship 20 or more")
        if self.loop_wait < 1 or self.retry_timeout < 3:
            raise ValueError(f"loop_wait={self.loop_wait}, retry_timeout={self.retry_timeout}: minimums are 1 and 3")
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                f"loop_wait + 2 * retry_timeout = {self.loop_wait + 2 * self.retry_timeout} > ttl={self.ttl}:"
                " Patroni would shrink them; a leader could keep writing after its lease passed on"
            )


@dataclass(frozen=True)
class PatroniSettings:
    scope: str
    member: PatroniMember
    etcd: tuple[Address, ...]
    memory_mb: int
    consumers: tuple[str, ...]
    monitoring: bool = False
    # The backup's superuser login over the network (pg_dump through HAProxy).
    backup: bool = False
    # Only a member with a synchronous standby's confirmation acknowledges a commit: a failover then
    # loses no acknowledged write. Not strict: when no standby is left at all the leader keeps
    # taking writes alone rather than blocking every app (availability over the last few commits
    # of a double failure).
    synchronous_mode: bool = True
    timings: Timings = field(default_factory=Timings)
    # Where the member listens. None: PostgreSQL on the member's own address and loopback, the REST
    # API on the member's own address (the hosts run on their network: never every interface).
    listen_host: str | None = None
    # The postgres:17 image's layout (the Patroni image is built on it).
    data_dir: str = "/var/lib/postgresql/data/pgdata"
    bin_dir: str = "/usr/lib/postgresql/17/bin"
    socket_dir: str = "/var/run/postgresql"
    # Patroni writes replication/rewind credentials here for pg_basebackup and pg_rewind.
    pgpass: str = "/var/lib/postgresql/pgpass"
    # WAL archiving for point-in-time recovery; None: no archive (streaming replication only).
    pgbackrest: PgBackRestSettings | None = None

    def __post_init__(self) -> None:
        _checked_name("scope", self.scope)
        if not self.etcd:
            raise ValueError("patroni needs at least one etcd endpoint")
        archive = self.pgbackrest
        if archive is not None and (archive.data_dir, archive.socket_dir, archive.port) != (
                self.data_dir, self.socket_dir, self.member.postgres.port):
            raise ValueError(
                f"pgbackrest (data_dir {archive.data_dir}, socket_dir {archive.socket_dir}, port {archive.port}) must name"
                f" this member's server (data_dir {self.data_dir}, socket_dir {self.socket_dir}, port {self.member.postgres.port})")
        # Validates consumers and memory the same way the single PostgreSQL does.
        self.postgres_settings()

    def postgres_settings(self) -> PostgresSettings:
        return PostgresSettings(memory_mb=self.memory_mb, consumers=self.consumers, monitoring=self.monitoring,
                                backup=self.backup)


# Patroni owns these: it sets the listen address from `postgresql.listen` and writes pg_hba itself.
_PATRONI_OWNED = {"listen_addresses", "hba_file"}


def _server_parameters(settings: PatroniSettings) -> dict[str, str]:
    """The single server's settings (one source for sizing and logging), minus what Patroni owns."""
    parameters = {}
    for line in postgresql_conf(settings.postgres_settings()).splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        key, value = (part.strip() for part in line.split("=", 1))
        if key not in _PATRONI_OWNED:
            parameters[key] = value[1:-1] if value.startswith("'") else value
    return parameters


def pg_hba(settings: PatroniSettings) -> list[str]:
    """The single server's rules (each consumer only its own database), plus the cluster's own:
    streaming replication and pg_rewind over the network, each with its own role."""
    single = [line for line in pg_hba_conf(settings.postgres_settings()).splitlines() if line and not line.startswith("#")]
    cluster = [
        f"host replication {REPLICATION_USER} all scram-sha-256",
        f"host postgres {REWIND_USER} all scram-sha-256",
    ]
    # The superuser's `local ... peer` line comes first, the final `reject` last.
    return [single[0], *cluster, *single[1:]]


def _archiving(settings: PatroniSettings) -> dict:
    """Local settings, not `bootstrap.dcs`: they take effect on a cluster bootstrapped before
    archiving was switched on, and local parameters override the DCS ones."""
    if settings.pgbackrest is None:
        return {"parameters": {}, "recovery": {}}
    return {"parameters": archive_parameters(settings.pgbackrest),
            "recovery": {"recovery_conf": {"restore_command": restore_command(settings.pgbackrest)}}}


def patroni_config(settings: PatroniSettings) -> dict:
    member, timings = settings.member, settings.timings
    archiving = _archiving(settings)
    return {
        "scope": settings.scope,
        "name": member.name,
        "restapi": {
            "listen": f"{settings.listen_host or member.restapi.host}:{member.restapi.port}",
            "connect_address": str(member.restapi),
        },
        "etcd3": {"hosts": [str(address) for address in settings.etcd]},
        "bootstrap": {
            "dcs": {
                "ttl": timings.ttl,
                "loop_wait": timings.loop_wait,
                "retry_timeout": timings.retry_timeout,
                "maximum_lag_on_failover": MAXIMUM_LAG_ON_FAILOVER,
                "synchronous_mode": settings.synchronous_mode,
                "synchronous_mode_strict": False,
                "synchronous_node_count": 1,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        **_server_parameters(settings),
                        "wal_level": "replica",
                        "hot_standby": "on",
                        # pg_rewind needs hint bits in WAL (data checksums at initdb give the same).
                        "wal_log_hints": "on",
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "wal_keep_size": "256MB",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
            # Patroni 3.0's validator asks for it; `postgresql.pg_hba` below is what takes effect.
            "pg_hba": pg_hba(settings),
        },
        "postgresql": {
            "listen": f"{settings.listen_host or _with_loopback(member.postgres.host)}:{member.postgres.port}",
            "connect_address": str(member.postgres),
            "data_dir": settings.data_dir,
            "bin_dir": settings.bin_dir,
            "pgpass": settings.pgpass,
            # Patroni talks to its own server over the socket, as `postgres` by peer: the superuser
            # has no network rule at all.
            "use_unix_socket": True,
            "parameters": {"unix_socket_directories": settings.socket_dir, **archiving["parameters"]},
            # A replica too far behind for the leader's kept WAL fetches the rest from the archive.
            **archiving["recovery"],
            "pg_hba": pg_hba(settings),
            "authentication": {
                "superuser": {"username": SUPERUSER},
                "replication": {"username": REPLICATION_USER},
                "rewind": {"username": REWIND_USER},
            },
        },
        "tags": {"nofailover": False, "noloadbalance": False, "clonefrom": False, "nosync": False},
    }


def patroni_yml(settings: PatroniSettings) -> str:
    header = f"# Rendered by CERES: Patroni member {settings.member.name} of cluster {settings.scope}.\n"
    return header + yaml.safe_dump(patroni_config(settings), sort_keys=False, default_flow_style=False)


# --- etcd ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EtcdMember:
    name: str
    host: str
    client_port: int = ETCD_CLIENT_PORT
    peer_port: int = ETCD_PEER_PORT

    def __post_init__(self) -> None:
        _checked_name("etcd member", self.name)

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def client_address(self) -> Address:
        return Address(self.host, self.client_port)


@dataclass(frozen=True)
class EtcdSettings:
    cluster: tuple[EtcdMember, ...]
    member: str
    # Ties the members together: a member from another cluster with the same names is refused.
    cluster_token: str
    data_dir: str = "/var/lib/etcd"
    # None: clients on the member's own address and loopback, peers on its own address only.
    listen_host: str | None = None

    def __post_init__(self) -> None:
        names = [m.name for m in self.cluster]
        if len(set(names)) != len(names):
            raise ValueError(f"etcd member names repeat: {names}")
        if self.member not in names:
            raise ValueError(f"etcd member {self.member!r} is not in the cluster {names}")
        if len(self.cluster) % 2 == 0:
            raise ValueError(f"{len(self.cluster)} etcd members: use an odd number (a quorum of an even count tolerates no more failures)")

    @property
    def this(self) -> EtcdMember:
        return next(m for m in self.cluster if m.name == self.member)


def _with_loopback(host: str) -> str:
    """The member's own address and loopback (for the container's own checks), once each."""
    return host if host == "127.0.0.1" else f"{host},127.0.0.1"


def etcd_args(settings: EtcdSettings) -> list[str]:
    """Command-line flags for one member (same flags in etcd 3.4 and 3.5/3.6). Plain HTTP, without
    auth: it listens only on the member's own (private) address and loopback, and the hosts'
    firewall keeps that address to the cluster."""
    me = settings.this
    clients = settings.listen_host or _with_loopback(me.host)
    return [
        f"--name={me.name}",
        f"--data-dir={settings.data_dir}",
        "--listen-client-urls=" + ",".join(f"http://{host}:{me.client_port}" for host in clients.split(",")),
        f"--advertise-client-urls={me.client_url}",
        f"--listen-peer-urls=http://{settings.listen_host or me.host}:{me.peer_port}",
        f"--initial-advertise-peer-urls={me.peer_url}",
        "--initial-cluster=" + ",".join(f"{m.name}={m.peer_url}" for m in settings.cluster),
        f"--initial-cluster-token={settings.cluster_token}",
        # A restarted member rejoins from its data dir; `new` is only read on the first start.
        "--initial-cluster-state=new",
        # Patroni rewrites its keys every loop_wait: compact history hourly so the db stays small.
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1h",
    ]
