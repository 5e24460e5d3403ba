"""Uptime Kuma: probes the platform's public URLs from the outside in."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.bootstrap import ContainerScript
from components.config import uptime_kuma as config
from components.container import Healthcheck, ServiceContainer
from components.docker_host import DockerHostComponent
from stacks.spec import StackSpec


class UptimeKuma(Service):
    """On the edge network (it probes the public URLs through Caddy) and the monitoring network
    (Prometheus scrapes its /metrics); its UI is gated behind SSO by the routing issue.

    Kuma 1.x has no first-run env or CLI: a bootstrap step creates the admin over Kuma's own
    socket.io API with the image's node, then the API key Prometheus scrapes /metrics with.
    """

    HTTP_PORT = 3001

    def __init__(self, spec: StackSpec, host: DockerHostComponent, opts: pulumi.ResourceOptions | None = None):
        super().__init__("uptime_kuma", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("uptime_kuma")
        self.admin_username = "admin"
        admin_password = self.generate_secret("uptime_kuma-admin-password")
        self.admin_password = admin_password
        self.container = ServiceContainer(
            self,
            "uptime_kuma",
            spec=spec.services.uptime_kuma,
            host=host,
            networks=[host.edge_network, host.monitoring_network],
            volumes={"uptime_kuma-data": "/app/data"},
            # The image ships its own probe, extra/healthcheck (a Go binary reading the same
            # port/TLS settings as the server): its Dockerfile HEALTHCHECK, with its start period.
            healthcheck=Healthcheck(["CMD", "/app/extra/healthcheck"], start_period="180s", interval="30s", timeout="30s"),
        )
        bootstrap = ContainerScript(
            self,
            "uptime_kuma-bootstrap",
            container=self.container,
            host=host,
            script=config.bootstrap_script(config.KumaBootstrap(url=f"http://127.0.0.1:{self.HTTP_PORT}")),
            env={config.USERNAME_ENV: self.admin_username, config.PASSWORD_ENV: admin_password},
            secret_output=True,
        )
        # The password Prometheus sends to /metrics (basic auth; Kuma ignores the user name).
        self.api_key: pulumi.Output[str] = bootstrap.output
        self.register_outputs({"internal_url": self.internal_url})



    @property
    def metrics_target(self) -> str:
        return self.upstream
