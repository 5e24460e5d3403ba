"""Gitea: the platform's git server."""

from __future__ import annotations

import pulumi
import pulumi_random as random

from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.database import DatabaseEdge
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

HTTP_PORT = 3000


class Gitea(Service):
    """Gitea behind Caddy at its public URL; PostgreSQL when the db-gitea edge is on, SQLite otherwise."""

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        postgres: PostgreSQL | None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("gitea", pulumi.ResourceOptions.merge(host.placed(), opts))
        service = spec.services.gitea
        root_url = spec.public_url("gitea")
        secret_key = random.RandomPassword("gitea-secret-key", length=64, special=False, opts=self.child())
        internal_token = random.RandomPassword("gitea-internal-token", length=64, special=False, opts=self.child())
        envs: list[pulumi.Input[str]] = [
            "USER_UID=1000",
            "USER_GID=1000",
            f"GITEA__server__ROOT_URL={root_url}/",
            f"GITEA__server__DOMAIN={root_url.removeprefix('https://')}",
            f"GITEA__server__HTTP_PORT={HTTP_PORT}",
            # Caddy serves only HTTPS; git goes over HTTPS with tokens, not SSH.
            "GITEA__server__DISABLE_SSH=true",
            "GITEA__server__START_SSH_SERVER=false",
            "GITEA__security__INSTALL_LOCK=true",
            "GITEA__service__DISABLE_REGISTRATION=true",
            pulumi.Output.concat("GITEA__security__SECRET_KEY=", secret_key.result),
            pulumi.Output.concat("GITEA__security__INTERNAL_TOKEN=", internal_token.result),
        ]
        networks = [host.edge_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += ["GITEA__database__DB_TYPE=postgres", "GITEA__database__SSL_MODE=disable"]
            envs += self.database.env("GITEA__database__", {"HOST": "host_port", "NAME": "name", "USER": "user", "PASSWD": "password"})
            networks.append(host.data_network)
            depends_on.append(self.database.database.ready)
        else:
            envs += ["GITEA__database__DB_TYPE=sqlite3", "GITEA__database__PATH=/data/gitea/gitea.db"]
        self.container = ServiceContainer(
            self,
            "gitea",
            spec=service,
            host=host,
            networks=networks,
            envs=envs,
            volumes={"gitea-data": "/data"},
            healthcheck=http_check(f"http://localhost:{HTTP_PORT}/api/healthz", tool="curl"),
            depends_on=depends_on,
        )
        self.url = root_url
        self.register_outputs({"url": root_url})
