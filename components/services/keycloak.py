"""Keycloak: the platform's identity provider (OpenID Connect for every app)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_keycloak as keycloak

from components.base import Service
from components.config import keycloak as config
from components.container import Healthcheck, ServiceContainer
from components.docker_host import DockerHostComponent
from components.integrations.database import DatabaseEdge
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

ADMIN_USERNAME = "admin"


@dataclass(frozen=True)
class Realm:
    """The platform's realm and the admin provider that manages it."""

    provider: keycloak.Provider
    realm: keycloak.Realm
    admins: keycloak.Group
    users: keycloak.Group


class Keycloak(Service):
    """Keycloak in production mode (`start`) behind Caddy at its public URL.

    PostgreSQL through the db-keycloak edge; without it, the embedded H2 file database
    (`dev-file`), which is for throwaway stacks only: it is neither supported nor safe for real use.
    """

    HTTP_PORT = 8080
    # Health and metrics are served only on the management interface.
    MANAGEMENT_PORT = 9000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None,
        scraped: bool = False,
        otlp_endpoint: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`scraped`: Prometheus reads /metrics (on the monitoring network); `otlp_endpoint`: the
        collector's OTLP gRPC `host:port` that Keycloak sends its traces to."""
        super().__init__("keycloak", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("keycloak")
        admin_password = self.generate_secret("keycloak-admin-password")
        envs: list[pulumi.Input[str]] = [
            # Hostname v2 takes the full public URL: tokens always carry this issuer, whichever
            # way a request came in.
            f"KC_HOSTNAME={self.url}",
            # Back-channel calls from other containers (token, JWKS, userinfo over internal_url)
            # get back-channel URLs that stay on the Docker network.
            "KC_HOSTNAME_BACKCHANNEL_DYNAMIC=true",
            # Caddy terminates TLS and sets X-Forwarded-*; Keycloak speaks plain HTTP behind it.
            "KC_PROXY_HEADERS=xforwarded",
            # ... and only from Caddy's fixed address (brute-force detection keys on the client IP).
            f"KC_PROXY_TRUSTED_ADDRESSES={host.proxy_address}",
            "KC_HTTP_ENABLED=true",
            f"KC_HTTP_PORT={self.HTTP_PORT}",
            "KC_HEALTH_ENABLED=true",
            "KC_METRICS_ENABLED=true",
            # Honoured only when the master realm is first created; later changes are ignored.
            f"KC_BOOTSTRAP_ADMIN_USERNAME={ADMIN_USERNAME}",
            pulumi.Output.concat("KC_BOOTSTRAP_ADMIN_PASSWORD=", admin_password),
        ]
        if otlp_endpoint is not None:
            # A build option: plain `start` re-augments for it on the next boot.
            envs += ["KC_TRACING_ENABLED=true", f"KC_TRACING_ENDPOINT=http://{otlp_endpoint}"]
        self.traced = otlp_endpoint is not None
        networks = [host.edge_network]
        if scraped:
            networks.append(host.monitoring_network)
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            db = self.database.database
            envs += ["KC_DB=postgres", f"KC_DB_URL=jdbc:postgresql://{db.host}:{db.port}/{db.name}"]
            envs += self.database.env("KC_DB_", {"USERNAME": "user", "PASSWORD": "password"})
            networks.append(host.data_network)
            depends_on.append(db.ready)
        else:
            envs.append("KC_DB=dev-file")
        self.container = ServiceContainer(
            self,
            "keycloak",
            spec=spec.services.keycloak,
            host=host,
            networks=networks,
            envs=envs,
            # Not start-dev. Plain `start` re-augments on first boot for these build options
            # (db, health, metrics), which takes a while on a small host.
            command=["start"],
            volumes={"keycloak-data": "/opt/keycloak/data"},
            healthcheck=Healthcheck(
                ["CMD", "bash", "-c", config.health_probe(self.MANAGEMENT_PORT)],
                start_period="180s",
                interval="15s",
                retries=10,
            ),
            depends_on=depends_on,
            wait_timeout=600,
        )
        self.realm_name = spec.sso.realm
        self.realm: Realm | None = None
        self.admin_username = ADMIN_USERNAME
        self.admin_password: pulumi.Output[str] = admin_password
        self.metrics_target = f"{self.container.alias}:{self.MANAGEMENT_PORT}"
        # For back-channel calls from other containers on the edge network.
        self.register_outputs({"url": self.url, "internalUrl": self.internal_url})


    @property
    def issuer_url(self) -> str:
        """The realm's OpenID Connect issuer, as browsers and tokens know it."""
        return f"{self.url}/realms/{self.realm_name}"

    @property
    def internal_realm_url(self) -> str:
        """The same realm, reached from other containers without leaving Docker."""
        return f"{self.internal_url}/realms/{self.realm_name}"

    def open_realm(self, spec: StackSpec, reachable_after: Sequence[pulumi.Resource]) -> Realm:
        """Create the platform's realm and its groups, through Keycloak's public URL.

        `reachable_after` is what must run before that URL answers (Keycloak itself and the
        proxy in front of it): the admin provider signs in only then.
        """
        admin = keycloak.Provider(
            "keycloak-admin",
            url=self.url,
            realm="master",
            client_id="admin-cli",
            username=self.admin_username,
            password=self.admin_password,
            initial_login=False,
            # Caddy's internal CA (dev) is not in the deploying machine's trust store; ACME
            # certificates (prod) are, and are verified.
            tls_insecure_skip_verify=spec.tls.mode == "internal",
            opts=self.child(depends_on=[self.container.container, *reachable_after]),
        )
        on_admin = self.child(provider=admin)
        realm = keycloak.Realm(
            "keycloak-realm",
            realm=spec.sso.realm,
            display_name="CERES",
            enabled=True,
            login_with_email_allowed=True,
            duplicate_emails_allowed=False,
            ssl_required="external",
            password_policy="length(12) and notUsername and notEmail",
            security_defenses=keycloak.RealmSecurityDefensesArgs(
                brute_force_detection=keycloak.RealmSecurityDefensesBruteForceDetectionArgs(
                    permanent_lockout=False, max_login_failures=10, wait_increment_seconds=60,
                ),
            ),
            opts=on_admin,
        )
        in_realm = self.child(provider=admin, depends_on=[realm])
        self.realm = Realm(
            provider=admin,
            realm=realm,
            admins=keycloak.Group("keycloak-admins-group", realm_id=realm.id, name=spec.sso.admin_group, opts=in_realm),
            users=keycloak.Group("keycloak-users-group", realm_id=realm.id, name=spec.sso.user_group, opts=in_realm),
        )
        return self.realm
