"""Portainer CE: the web UI over the host's Docker engine."""

from __future__ import annotations

import pulumi
import pulumi_command as command

from components.base import Service
from components.config import portainer as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.oidc import OidcClientEdge, OidcLogin, oidc_login
from stacks.spec import StackSpec

DOCKER_SOCKET = "/var/run/docker.sock"
ADMIN_PASSWORD_FILE = "/run/ceres/admin-password"
ADMIN_USERNAME = "admin"


class Portainer(Service):
    """Portainer behind Caddy, its admin created at first start with a generated password.

    `--admin-password-file` creates the `admin` user at startup when none exists (no setup
    wizard, no setup token, no 5-minute "no admin" shutdown); on later starts it is ignored.

    With the sso-portainer edge, people sign in through the realm (OAuth). Portainer CE cannot map
    a Keycloak group to its administrator role (that is Business Edition's `AdminAutoPopulate`):
    people who sign in become standard users, and the initial `admin`, the only account CE still
    lets in with a password once OAuth is on, is the administrator who promotes them.
    """

    HTTP_PORT = 9000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        sso: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("portainer", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("portainer")
        # Portainer's OAuth redirect is its own base URL: the web app reads the code there.
        self.oidc: OidcLogin | None = oidc_login(spec, self, ("/",)) if sso else None
        # The step calls the public URL from the deploying machine, which does not trust Caddy's
        # internal CA (dev); ACME certificates (prod) are verified. Keycloak.open_realm does the same.
        self._verify_tls = spec.tls.mode != "internal"
        admin_password = self.generate_secret("portainer-admin-password")
        self.container = ServiceContainer(
            self,
            "portainer",
            spec=spec.services.portainer,
            host=host,
            # The edge network also reaches Keycloak's internal token and userinfo endpoints.
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

    def apply_sso(self, edge: OidcClientEdge) -> None:
        """Turn on OAuth against the realm once the client exists.

        The image has no shell, so the step runs on the deploying machine against the public URL.
        Its environment holds the client secret: a rotated secret changes the Command's inputs, and
        pulumi-command then runs `create` again (no `update` is given), with the previous stdout
        (the applied secret's fingerprint) in PULUMI_COMMAND_STDOUT.
        """
        login = self.oidc
        step = config.SsoStep(
            url=self.url,
            admin_username=self.admin_username,
            verify_tls=self._verify_tls,
            oauth=config.OAuthSettings(
                client_id=login.client_id,
                authorization_uri=login.auth_url,
                access_token_uri=login.endpoint("token"),
                resource_uri=login.endpoint("userinfo"),
                redirect_uri=login.redirect_uris[0],
                logout_uri=config.logout_uri(login.logout_url, login.client_id, login.redirect_uris[0]),
            ),
        )
        command.local.Command(
            "portainer-sso",
            create="python3 -",
            stdin=config.sso_script(step),
            environment={
                config.ADMIN_PASSWORD_VARIABLE: self.admin_password,
                config.CLIENT_SECRET_VARIABLE: login.client_secret,
            },
            # After the client exists, which itself waits for Keycloak to answer behind Caddy.
            opts=self.child(depends_on=[self.container.container, edge.client], additional_secret_outputs=["stdout"]),
        )
