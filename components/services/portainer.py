"""Portainer CE: the web UI over the host's Docker engine."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from stacks.spec import StackSpec

DOCKER_SOCKET = "/var/run/docker.sock"
ADMIN_PASSWORD_FILE = "/run/ceres/admin-password"
ADMIN_USERNAME = "admin"


class Portainer(Service):
    """Portainer behind Caddy, its admin created at first start with a generated password.

    `--admin-password-file` creates the `admin` user at startup when none exists (no setup
    wizard, no setup token, no 5-minute "no admin" shutdown); on later starts it is ignored.
    """

    HTTP_PORT = 9000

    def __init__(self, spec: StackSpec, host: DockerHostComponent, opts: pulumi.ResourceOptions | None = None):
        super().__init__("portainer", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("portainer")
        admin_password = self.generate_secret("portainer-admin-password")
        self.container = ServiceContainer(
            self,
            "portainer",
            spec=spec.services.portainer,
            host=host,
            networks=[host.edge_network],
            command=[
                # Caddy terminates TLS and talks plain HTTP to it.
                "--http-enabled",
                # Registers this host's engine as the local environment (a password file alone creates none).
                "-H", f"unix://{DOCKER_SOCKET}",
                "--admin-password-file", ADMIN_PASSWORD_FILE,
                # Its CSRF check compares Origin with the host it is served at (bare host, no port).
                "--trusted-origins", self.url.removeprefix("https://"),
            ],
            volumes={"portainer-data": "/data"},
            binds={DOCKER_SOCKET: DOCKER_SOCKET},
            # The file holds just the password (Portainer would trim one trailing newline).
            secret_files={ADMIN_PASSWORD_FILE: admin_password},
            # The image is built FROM scratch: no shell, no client. The host's probe busybox
            # asks the public status endpoint (/api/status is the deprecated alias).
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/api/system/status", tool="probe"),
        )
        self.admin_username = ADMIN_USERNAME
        self.admin_password: pulumi.Output[str] = admin_password
        self.register_outputs({"url": self.url})
