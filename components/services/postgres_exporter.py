"""postgres_exporter: PostgreSQL's metrics for Prometheus, read with the monitoring role."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

METRICS_PORT = 9187


class PostgresExporter(Service):
    """Scrapes PostgreSQL as `ceres_monitor` (pg_monitor, read-only, database `postgres` only)."""

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("postgres_exporter", pulumi.ResourceOptions.merge(host.placed(), opts))
        login = postgres.monitoring_login()
        self.container = ServiceContainer(
            self,
            "postgres_exporter",
            spec=spec.services.postgres_exporter,
            host=host,
            # PostgreSQL on the data network, Prometheus on the monitoring one.
            networks=[host.data_network, host.monitoring_network],
            envs=[
                # The URI without credentials; user and password come apart (v0.17 datasource.go).
                f"DATA_SOURCE_URI={login.host}:{login.port}/{login.name}?sslmode=disable",
                f"DATA_SOURCE_USER={login.user}",
                pulumi.Output.concat("DATA_SOURCE_PASS=", login.password),
            ],
            # Some releases ship the binary on busybox (wget), some on scratch: the host's probe
            # works on both. The landing page answers without querying the database each time.
            healthcheck=http_check(f"http://localhost:{METRICS_PORT}/", tool="probe"),
            depends_on=[login.ready],
        )
        self.metrics_target = f"{self.container.alias}:{METRICS_PORT}"
        self.register_outputs({"metrics_target": self.metrics_target})
