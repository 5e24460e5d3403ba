"""PostgreSQL: the platform's relational database, one database and role per consumer."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from functools import partial
from typing import Callable

import pulumi
import pulumi_command as command

from components.base import Service
from components.config import postgres as config
from components.docker_host import DockerHostComponent
from components.container import KEEP_RUNNING_ON_RESTORE, Healthcheck, ServiceContainer
from stacks.spec import ServiceSpec

PORT = 5432
CONFIG_DIR = "/etc/postgresql"


@dataclass(frozen=True)
class Database:
    """What a consumer needs to connect: reachable on the data network under `host`."""

    host: str
    port: int
    name: str
    user: str
    password: pulumi.Output[str]
    ready: pulumi.Resource


# (role, database, step name, provisioning SQL) -> the login, once the step has made the role.
Provision = Callable[[str, str, str, str], Database]


class DatabaseLogins:
    """The logins a PostgreSQL hands out: each consumer's role and database, and the exporter's
    and the backup's roles when asked for. Shared by the single server and the HA cluster so both
    make the same roles under the same step names and the composition can use either."""

    def _provision_logins(self, provision: Provision, consumers: tuple[str, ...], *, monitoring: bool, backup: bool) -> None:
        self._databases = {
            consumer: provision(consumer, consumer, f"postgres-{consumer}-database", config.provision_sql(consumer))
            for consumer in consumers
        }
        self._monitoring = (
            provision(config.MONITOR_ROLE, config.MONITOR_DATABASE, "postgres-monitoring-role", config.monitoring_sql())
            if monitoring else None
        )
        self._backup = (
            provision(config.BACKUP_ROLE, "postgres", "postgres-backup-role", config.backup_role_sql())
            if backup else None
        )

    @property
    def consumer_databases(self) -> list[str]:
        return [database.name for database in self._databases.values()]

    def database(self, consumer: str) -> Database:
        if consumer not in self._databases:
            raise KeyError(f"postgres has no database for {consumer!r}; its consumers are {sorted(self._databases)}")
        return self._databases[consumer]

    def backup_login(self) -> Database:
        """The backup's login: role `ceres_backup` (superuser, with a password), at `host_name`."""
        if self._backup is None:
            raise KeyError("postgres was built without backup=True, so it has no backup role")
        return self._backup

    def monitoring_login(self) -> Database:
        """The exporter's login: role `ceres_monitor` (pg_monitor, read-only) on database `postgres`, at `host_name`."""
        if self._monitoring is None:
            raise KeyError("postgres was built without monitoring=True, so it has no monitoring role")
        return self._monitoring


class PostgreSQL(DatabaseLogins, Service):
    """The server, plus each consumer's role and database, created here from the list of consumers.

    Consumers get their credentials through `database(consumer)`; no app gets the superuser.
    With `monitoring=True` it also makes the exporter's role, reached through `monitoring_login()`.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        host: DockerHostComponent,
        consumers: tuple[str, ...],
        opts: pulumi.ResourceOptions | None = None,
        *,
        monitoring: bool = False,
        backup: bool = False,
    ):
        super().__init__("postgres", pulumi.ResourceOptions.merge(host.placed(), opts))
        settings = config.PostgresSettings(memory_mb=spec.memory_mb, consumers=consumers, monitoring=monitoring, backup=backup)
        superuser_password = self.generate_secret("postgres-superuser")
        self.container = ServiceContainer(
            self,
            "postgres",
            spec=spec,
            host=host,
            labels=KEEP_RUNNING_ON_RESTORE,
            networks=[host.data_network],
            envs=[superuser_password.apply(lambda p: f"POSTGRES_PASSWORD={p}")],
            command=["postgres", "-c", f"config_file={CONFIG_DIR}/postgresql.conf"],
            volumes={"postgres-data": "/var/lib/postgresql/data"},
            files={
                f"{CONFIG_DIR}/postgresql.conf": config.postgresql_conf(settings),
                f"{CONFIG_DIR}/pg_hba.conf": config.pg_hba_conf(settings),
            },
            healthcheck=Healthcheck(["CMD", "pg_isready", "-U", "postgres", "-d", "postgres"]),
            stop_grace_seconds=config.STOP_GRACE_SECONDS,
        )
        self.host_name = "postgres"
        self._provision_logins(partial(self._provision, host), consumers, monitoring=monitoring, backup=backup)
        self.register_outputs({"consumers": list(consumers), "monitoring": monitoring, "backup": backup})

    def _provision(self, host: DockerHostComponent, role: str, database: str, step: str, sql: str) -> Database:
        password = self.generate_secret(f"postgres-{role}-password")
        provisioning = command.local.Command(
            step,
            create=config.psql_over_docker_exec(self.container.name, env=("CERES_ROLE_PASSWORD",)),
            stdin=sql,
            # Retiring keeps the data: the script goes in through printf, as delete gets no stdin.
            delete=f"printf %s {shlex.quote(config.retire_sql(role))} | {config.psql_over_docker_exec(self.container.name)}",
            environment={"DOCKER_HOST": host.host.url, "CERES_ROLE_PASSWORD": password},
            opts=self.child(depends_on=[self.container.container]),
        )
        return Database(self.host_name, PORT, database, role, password, provisioning)
