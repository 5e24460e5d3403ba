"""Redmine: the platform's project and issue tracker."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import redmine as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.database import DatabaseEdge
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec


class Redmine(Service):
    """Redmine behind Caddy at its public URL; PostgreSQL when the db-redmine edge is on, SQLite otherwise.

    The bootstrap replaces the default admin/admin password, turns on the REST API and the
    repository web service (for Gitea commit links), and hands out the admin's API key.
    """

    HTTP_PORT = 3000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("redmine", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("redmine")
        secret_key_base = self.generate_secret("redmine-secret-key-base", 64)
        admin_password = self.generate_secret("redmine-admin-password")
        sys_api_key = self.generate_secret("redmine-sys-api-key")
        envs: list[pulumi.Input[str]] = [pulumi.Output.concat("REDMINE_SECRET_KEY_BASE=", secret_key_base)]
        volumes = {"redmine-files": config.FILES_DIR}
        networks = [host.edge_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += self.database.env("REDMINE_DB_", {
                "POSTGRES": "host", "PORT": "port", "DATABASE": "name", "USERNAME": "user", "PASSWORD": "password",
            })
            networks.append(host.data_network)
            depends_on.append(self.database.database.ready)
        else:
            # With no database named, the image's entrypoint falls back to SQLite in sqlite/.
            volumes["redmine-sqlite"] = config.SQLITE_DIR
        self.container = ServiceContainer(
            self,
            "redmine",
            spec=spec.services.redmine,
            host=host,
            networks=networks,
            envs=envs,
            volumes=volumes,
            # The image ships wget (no curl). /login renders through Rails and reads the database,
            # so it answers only once both work; the first start runs every migration first.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/login", tool="wget", start_period="180s"),
            depends_on=depends_on,
        )
        bootstrap = ContainerScript(
            self,
            "redmine-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.RedmineBootstrap.for_url(self.url)),
            env={
                config.ADMIN_PASSWORD_VARIABLE: admin_password,
                config.SYS_API_KEY_VARIABLE: sys_api_key,
            },
            user=config.CONTAINER_USER,
            secret_output=True,
        )
        self.admin_password = admin_password
        self.api_key = pulumi.Output.secret(bootstrap.output)
        self.sys_api_key = sys_api_key
        self.register_outputs({"url": self.url})
