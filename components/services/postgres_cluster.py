"""PostgreSQL in the HA tier: Patroni members on an etcd cluster across the HA hosts.

Apps never reach a member: they connect to HAProxy's primary port on the virtual IP, which follows
the Patroni leader. The same interface as `PostgreSQL` (the logins of `DatabaseLogins`:
`database`, `monitoring_login`, `backup_login`, `consumer_databases`; and `host_name`), so the
composition can use either.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pulumi
import pulumi_command as command

from components.base import Service
from components.config.prometheus import ScrapeJob
from components.config import patroni
from components.config import pgbackrest
from components.config import postgres as config
from components.config.pitr_restore import MemberEntrySettings, member_entry_script
from components.config.haproxy import PRIMARY_PORT
from components.container import KEEP_RUNNING_ON_RESTORE, Healthcheck, ServiceContainer, any_http_check
from components.docker_host import DockerHostComponent
from components.images import build_on_host, postgres_major
from components.integrations.backup import BackupEdge
from components.integrations.ha import HaEdge
from components.object_store import ObjectStoreKeys
from components.services.postgres import Database, DatabaseLogins
from stacks.spec import ObjectStoreSpec, PointInTimeSpec, ServiceSpec, StackSpec

# etcd holds only Patroni's few keys (compacted hourly): a small, fixed budget.
ETCD_MEMORY_MB = 256
PATRONI_VENV = "/opt/patroni"
PATRONI_CONFIG = "/etc/patroni/patroni.yml"
# Not a secret: the REST password alone guards Patroni's unsafe endpoints (switchover, restart...).
RESTAPI_USERNAME = "patroni"
# With point-in-time recovery the member starts through this script: it acts on restore requests
# (`ceres restore-pitr`), starts the pgBackRest agent, then execs Patroni.
MEMBER_ENTRY = "/usr/local/bin/ceres-member-entry"
AGENT_SOURCE = Path(__file__).resolve().parents[1] / "config" / "pitr_agent.py"
# pgBackRest 2.52 is the first release that backs up PostgreSQL 17.
PGBACKREST_MINOR_FOR_PG17 = 52


def patroni_dockerfile(postgres_image: str, patroni_version: str) -> str:
    """The pinned PostgreSQL image plus Patroni in its own venv (there is no official Patroni image).
    psycopg 3 is Patroni's driver; etcd3 is its DCS client. pgBackRest comes from the image's own
    PostgreSQL (PGDG) repository, whose build matches the server's major version."""
    return "\n".join([
        f"FROM {postgres_image}",
        "RUN apt-get update \\",
        " && apt-get install -y --no-install-recommends python3 python3-venv pgbackrest \\",
        " && rm -rf /var/lib/apt/lists/*",
        # Debian's own pgBackRest (2.45 in bookworm) predates PostgreSQL 17: refuse to build with it.
        f"RUN awk -v installed=\"$(pgbackrest version)\" 'BEGIN {{split(installed, w, \" \"); split(w[2], v, \".\");"
        f" if (v[1] < 2 || (v[1] == 2 && v[2] < {PGBACKREST_MINOR_FOR_PG17}))"
        f" {{print \"pgBackRest \" w[2] \" predates PostgreSQL 17 (2.{PGBACKREST_MINOR_FOR_PG17}+ needed)\"; exit 1}}}}'",
        f"RUN python3 -m venv {PATRONI_VENV} \\",
        f" && {PATRONI_VENV}/bin/pip install --no-cache-dir 'patroni[etcd3,psycopg3]=={patroni_version}'",
        # SIGTERM is Patroni's own shutdown: it stops PostgreSQL cleanly and hands its leader key
        # over. The postgres image's SIGINT reaches Patroni as a KeyboardInterrupt at whatever
        # point it is at, and once left its shutdown hanging here (tests/components/config/
        # test_patroni_failover_real.py).
        "STOPSIGNAL SIGTERM",
        "",
    ])


@dataclass(frozen=True)
class Archive:
    """Point-in-time recovery (edge backup-pitr): the bucket the members archive WAL and put their
    backups in, the schedule, and the bucket's keys."""

    store: ObjectStoreSpec
    schedule: PointInTimeSpec
    keys: ObjectStoreKeys


@dataclass(frozen=True)
class MemberContainer:
    """Where a Patroni member's container runs: its Docker engine and its container name."""

    docker_host: str
    container: str


def psql_on_leader(members: Sequence[MemberContainer], env: tuple[str, ...] = ()) -> str:
    """Shell text that runs the psql script on its stdin as the superuser on the current leader:
    it asks each member in turn whether it is in recovery and uses the first that answers `f`.
    Exits non-zero, naming what it tried, if none does (cluster down or mid-failover)."""
    ask = "docker exec -u postgres \"$2\" psql -XtAqc 'select pg_is_in_recovery()' 2>/dev/null"
    lines = ["set -eu", f'is_leader() {{ [ "$(DOCKER_HOST="$1" {ask})" = f ]; }}']
    for member in members:
        host = shlex.quote(member.docker_host)
        run = config.psql_over_docker_exec(member.container, env)
        lines.append(f"if is_leader {host} {shlex.quote(member.container)}; then export DOCKER_HOST={host}; exec {run}; fi")
    tried = ", ".join(f"{m.container} on {m.docker_host}" for m in members)
    failure = f"no PostgreSQL member answered as the Patroni leader (tried {tried}): is the cluster up?"
    return "\n".join([*lines, f"echo {shlex.quote(failure)} >&2", "exit 1"])




class PostgresCluster(DatabaseLogins, Service):
    """etcd on the first `ha.etcd_members` HA hosts, a Patroni member on the first `ha.postgres_members`,
    each under a per-host child component that deploys with that host's provider; plus each
    consumer's role and database, made on whichever member leads.

    Every member uses host networking: members, etcd peers and HAProxy talk host to host at the
    hosts' private addresses (5432, 8008, 2379, 2380), which the hosts' firewall keeps private;
    nothing is published.
    """

    def __init__(
        self,
        spec: StackSpec,
        hosts: Sequence[DockerHostComponent],
        consumers: tuple[str, ...],
        *,
        monitoring: bool = False,
        backup: bool = False,
        proxy: pulumi.Resource | None = None,
        archive: Archive | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`proxy`: the HAProxy pair apps reach the cluster through; a login is ready only once it runs.
        `archive`: point-in-time recovery into that bucket (WAL archive, scheduled backups, agents)."""
        ha = spec.ha
        needed = max(ha.etcd_members, ha.postgres_members)
        if len(hosts) < needed or any(h.host.address is None for h in hosts[:needed]) or ha.virtual_ip is None:
            raise ValueError(f"postgres cluster: needs {needed} HA hosts with an address, and ha.virtual_ip;"
                             f" got hosts {[h.host.name for h in hosts]}, virtual_ip {ha.virtual_ip}")
        super().__init__("postgres", pulumi.ResourceOptions.merge(hosts[0].placed(), opts))
        self._spec, self._consumers, self._monitoring_on, self._backup_on = spec, consumers, monitoring, backup
        self._proxy = [proxy] if proxy is not None else []
        # One name for the whole cluster: Patroni's scope (its key prefix in etcd) and etcd's token.
        self._scope = hosts[0].prefix
        self.host_name = ha.virtual_ip
        self.restapi_username = RESTAPI_USERNAME
        self.restapi_password = self.generate_secret("postgres-restapi")
        self._secrets = [
            pulumi.Output.concat("PATRONI_SUPERUSER_PASSWORD=", self.generate_secret("postgres-superuser")),
            pulumi.Output.concat("PATRONI_REPLICATION_PASSWORD=", self.generate_secret("postgres-replication")),
            pulumi.Output.concat("PATRONI_REWIND_PASSWORD=", self.generate_secret("postgres-rewind")),
            f"PATRONI_RESTAPI_USERNAME={RESTAPI_USERNAME}",
            pulumi.Output.concat("PATRONI_RESTAPI_PASSWORD=", self.restapi_password),
        ]
        self._archive = archive
        # One stanza and repository for every member: whichever leads archives into it.
        self._backrest = self._backrest_settings(archive)
        # The only key to the point-in-time backups: a secret stack output, like the restic password.
        self.archive_password = self.generate_secret("postgres-archive-passphrase") if archive else None
        if archive is not None:
            self._secrets += [pulumi.Output.concat(f"{pgbackrest.CIPHER_PASS_ENV}=", self.archive_password),
                              *archive.keys.env(pgbackrest.S3_KEY_ENV, pgbackrest.S3_KEY_SECRET_ENV)]
        self._member_components: dict[str, pulumi.ComponentResource] = {}
        etcd_hosts = list(hosts[: ha.etcd_members])
        self._etcd_cluster = tuple(patroni.EtcdMember(h.host.name, h.host.address) for h in etcd_hosts)
        etcd = [self._etcd(h) for h in etcd_hosts]
        patroni_hosts = list(hosts[: ha.postgres_members])
        self.members: list[tuple[str, str]] = [(h.host.name, h.host.address) for h in patroni_hosts]
        self.metrics_targets = [f"{address}:{patroni.RESTAPI_PORT}" for _, address in self.members]
        self.agent_targets = [f"{address}:{pgbackrest.AGENT_PORT}" for _, address in self.members] if archive else []
        # One member after the other, each once it is ready: a change every member shares (patroni.yml,
        # the image) then replaces them one at a time, never the whole cluster at once.
        self.member_containers: list[ServiceContainer] = []
        for host in patroni_hosts:
            previous = [self.member_containers[-1].container] if self.member_containers else []
            self.member_containers.append(self._patroni(host, [*(e.container for e in etcd), *previous]))
        self._candidates = [MemberContainer(h.host.url, c.name) for h, c in zip(patroni_hosts, self.member_containers)]
        HaEdge("ha-postgres", self, "patroni", members=[f"{address}:{patroni.POSTGRES_PORT}" for _, address in self.members])
        if archive is not None:
            BackupEdge("backup-pitr", self, "object_store", items=[f"{archive.store.bucket}{archive.schedule.path}/{self._scope}"])
        self._provision_logins(self._provision, consumers, monitoring=monitoring, backup=backup)
        self.register_outputs({"consumers": list(consumers), "members": [name for name, _ in self.members],
                               "monitoring": monitoring, "backup": backup})

    def _member(self, host: DockerHostComponent) -> pulumi.ComponentResource:
        """The per-host parent: everything under it deploys with that host's Docker provider."""
        key = f"postgres-{host.host.name}"
        if key not in self._member_components:
            self._member_components[key] = pulumi.ComponentResource(
                "ceres:services:PostgresMember", key, None, pulumi.ResourceOptions(parent=self, provider=host.provider))
        return self._member_components[key]

    def _etcd(self, host: DockerHostComponent) -> ServiceContainer:
        name = host.host.name
        settings = patroni.EtcdSettings(cluster=self._etcd_cluster, member=name, cluster_token=f"{self._scope}-etcd")
        return ServiceContainer(
            self._member(host),
            f"etcd-{name}",
            spec=ServiceSpec(enabled=True, image=self._spec.ha.images.etcd, memory_mb=ETCD_MEMORY_MB),
            host=host,
            labels=KEEP_RUNNING_ON_RESTORE,
            networks=[],
            host_network=True,
            command=["/usr/local/bin/etcd", *patroni.etcd_args(settings)],
            volumes={f"etcd-{name}-data": settings.data_dir},
            # The image is distroless (no shell, no wget) but ships etcdctl; healthy once the member
            # serves a quorum read, so Patroni starts against a working cluster.
            healthcheck=Healthcheck(["CMD", "/usr/local/bin/etcdctl", "endpoint", "health"], start_period="60s"),
        )

    def _patroni(self, host: DockerHostComponent, after: Sequence[pulumi.Resource]) -> ServiceContainer:
        name, address = host.host.name, host.host.address
        postgres_spec = self._spec.services.postgres
        settings = patroni.PatroniSettings(
            scope=self._scope,
            member=patroni.PatroniMember(
                name, postgres=patroni.Address(address, patroni.POSTGRES_PORT), restapi=patroni.Address(address, patroni.RESTAPI_PORT)),
            etcd=tuple(m.client_address for m in self._etcd_cluster),
            memory_mb=postgres_spec.memory_mb,
            consumers=self._consumers,
            monitoring=self._monitoring_on,
            backup=self._backup_on,
            synchronous_mode=self._spec.ha.synchronous_mode,
            bin_dir=f"/usr/lib/postgresql/{postgres_major(postgres_spec.image)}/bin",
            pgbackrest=self._backrest,
        )
        member = self._member(host)
        dockerfile = patroni_dockerfile(postgres_spec.image, self._spec.ha.images.patroni)
        image = build_on_host(member, f"patroni-{name}-image", service="patroni", host=host,
                              tag=hashlib.sha256(dockerfile.encode()).hexdigest()[:12], files={"Dockerfile": dockerfile})
        return ServiceContainer(
            member,
            f"patroni-{name}",
            spec=postgres_spec,
            host=host,
            labels=KEEP_RUNNING_ON_RESTORE,
            image=image,
            networks=[],
            host_network=True,
            # initdb and PostgreSQL refuse root; the image's postgres user owns the data and socket dirs.
            user="postgres",
            **self._start(settings),
            # Patroni reads its credentials only from its environment (no file form) and removes
            # them from it before starting PostgreSQL; pgBackRest (archive_command, the agent) reads
            # the repository's passphrase and the bucket's keys from the same environment.
            envs=self._secrets,
            volumes={f"patroni-{name}-data": "/var/lib/postgresql/data"},
            # Ready when it leads or replicates within the failover lag (patroni.READY_PATHS): only
            # then is the next member created or replaced. The image has no HTTP client: the host's
            # probe busybox asks the REST API, which listens only on the member's own address
            # (host network: never every interface). A replica copies the leader's data first,
            # hence the long start period.
            healthcheck=any_http_check([f"http://{address}:{patroni.RESTAPI_PORT}{path}" for path in patroni.READY_PATHS],
                                       tool="probe", start_period="180s"),
            depends_on=after,
            wait_timeout=900,
            stop_grace_seconds=config.STOP_GRACE_SECONDS,
        )

    def _backrest_settings(self, archive: Archive | None) -> pgbackrest.PgBackRestSettings | None:
        if archive is None:
            return None
        store, schedule = archive.store, archive.schedule
        return pgbackrest.PgBackRestSettings(
            stanza=self._scope,
            # One prefix per stack: several stacks may share the bucket.
            repository=pgbackrest.S3Repository(endpoint=store.endpoint, bucket=store.bucket, region=store.region,
                                               path=f"{schedule.path}/{self._scope}", uri_style=store.uri_style,
                                               port=store.port),
            retention_full=schedule.retention_full,
        )

    def _start(self, settings: patroni.PatroniSettings) -> dict:
        """Patroni straight away; with an archive, the entry script first (restore requests, the agent)."""
        patroni_argv = (f"{PATRONI_VENV}/bin/patroni", PATRONI_CONFIG)
        files = {PATRONI_CONFIG: patroni.patroni_yml(settings)}
        archive = self._backrest
        if archive is None:
            return {"entrypoint": [patroni_argv[0]], "command": [patroni_argv[1]], "files": files}
        schedule = self._archive.schedule
        agent = pgbackrest.agent_command(archive, listen_host=settings.member.restapi.host,
                                         full_every_hours=24 * schedule.full_every_days,
                                         diff_every_hours=schedule.diff_every_hours)
        entry = MemberEntrySettings(pgbackrest=archive, patroni=patroni_argv, agent=agent, bin_dir=settings.bin_dir,
                                    data_dir=settings.data_dir)
        files |= {archive.config_path: pgbackrest.pgbackrest_conf(archive), pgbackrest.AGENT_PATH: AGENT_SOURCE.read_text(),
                  MEMBER_ENTRY: member_entry_script(entry)}
        return {"entrypoint": ["sh"], "command": [MEMBER_ENTRY], "files": files}

    def _provision(self, role: str, database: str, step: str, sql: str) -> Database:
        password = self.generate_secret(f"postgres-{role}-password")
        members = self._candidates
        provisioning = command.local.Command(
            step,
            create=psql_on_leader(members, env=("CERES_ROLE_PASSWORD",)),
            stdin=sql,
            # Retiring keeps the data: the script goes in through printf, as delete gets no stdin.
            delete=f"printf %s {shlex.quote(config.retire_sql(role))} | {{\n{psql_on_leader(members)}\n}}",
            environment={"CERES_ROLE_PASSWORD": password},
            opts=self.child(depends_on=[*(c.container for c in self.member_containers), *self._proxy]),
        )
        return Database(self.host_name, PRIMARY_PORT, database, role, password, provisioning)

    def members_scrape_job(self, members: str) -> ScrapeJob:
        """Patroni's /metrics, or the pgBackRest agent's, on every member at the HA hosts' addresses
        (neither needs credentials to read)."""
        if members == "patroni":
            return ScrapeJob("patroni", tuple(self.metrics_targets))
        if members == "pgbackrest" and self.agent_targets:
            return ScrapeJob("pgbackrest", tuple(self.agent_targets))
        raise ValueError(f"the PostgreSQL cluster runs no {members!r} members" + (" (no archive)" if members == "pgbackrest" else ""))
