"""Grafana: the platform's dashboards, behind Caddy at its public URL."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pulumi
import pulumiverse_grafana as grafana

from components.base import Service
from components.config import grafana as config
from components.config.prometheus import BasicAuth, ScrapeJob
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.chat import ChatWebhookEdge
from components.integrations.database import DatabaseEdge
from components.integrations.datasource import DatasourceEdge
from components.integrations.oidc import OidcLogin, oidc_login
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

if TYPE_CHECKING:
    from components.services.loki import Loki
    from components.services.mattermost import Mattermost
    from components.services.prometheus import Prometheus
    from components.services.tempo import Tempo

SECRETS_DIR = "/etc/grafana/secrets"
# The user Prometheus scrapes /metrics as (Grafana checks the pair only on /metrics).
METRICS_USER = "prometheus"


class Grafana(Service):
    """State in PostgreSQL when the db-grafana edge is on, in SQLite on its volume otherwise;
    sign-in through the realm when the sso-grafana edge is on (the local admin stays as a
    break-glass login).

    Every secret reaches Grafana as a file through its `GF_<SECTION>_<KEY>__FILE` convention, so
    none shows in `docker inspect`.

    With the chat-grafana edge, Grafana alerts go to the alerts channel: Grafana has no Mattermost
    contact point, so a Slack-type one posts to Mattermost's hook, and the notification policy makes
    it the default. Both are made through Grafana's API at its public URL, once the proxy serves it
    (`reachable_url`), by one provider signed in as the admin, which also makes the datasources
    (a `datasource-<backend>` edge per backend given, with fixed uids and trace <-> log links) and,
    with Prometheus, the "CERES" folder of dashboards.

    /metrics (on by default in Grafana 12) is on the HTTP port the proxy publishes, so it asks for
    basic auth (`scrape_job`). With `otlp_endpoint` (the collector's OTLP gRPC `host:port`)
    Grafana sends its own traces there (`traced`).
    """

    HTTP_PORT = 3000

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None,
        sso: bool = False,
        chat: Mattermost | None = None,
        prometheus: Prometheus | None = None,
        loki: Loki | None = None,
        tempo: Tempo | None = None,
        otlp_endpoint: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("grafana", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.url = spec.public_url("grafana")
        self.admin_username = "admin"
        admin_password = self.generate_secret("grafana-admin-password")
        # Encrypts the data keys that protect datasource and contact-point secrets in the
        # database (Grafana 12 envelope encryption): never rotate it, or those become unreadable.
        secret_key = self.generate_secret("grafana-secret-key", 40)
        self.admin_password = admin_password
        self.metrics_password = self.generate_secret("grafana-metrics-password")
        envs: list[pulumi.Input[str]] = [
            f"GF_SERVER_ROOT_URL={self.url}/",
            f"GF_SERVER_DOMAIN={self.url.removeprefix('https://')}",
            f"GF_SERVER_HTTP_PORT={self.HTTP_PORT}",
            # Caddy terminates TLS: the browser only ever sees https.
            "GF_SECURITY_COOKIE_SECURE=true",
            f"GF_SECURITY_ADMIN_USER={self.admin_username}",
            # Read only when Grafana creates its database; later changes go through the API.
            f"GF_SECURITY_ADMIN_PASSWORD__FILE={SECRETS_DIR}/admin_password",
            f"GF_SECURITY_SECRET_KEY__FILE={SECRETS_DIR}/secret_key",
            "GF_USERS_ALLOW_SIGN_UP=false",
            "GF_ANALYTICS_REPORTING_ENABLED=false",
            "GF_ANALYTICS_CHECK_FOR_UPDATES=false",
            "GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES=false",
            f"GF_METRICS_BASIC_AUTH_USERNAME={METRICS_USER}",
            f"GF_METRICS_BASIC_AUTH_PASSWORD__FILE={SECRETS_DIR}/metrics_password",
        ]
        secret_files: dict[str, pulumi.Input[str]] = {
            f"{SECRETS_DIR}/admin_password": admin_password,
            f"{SECRETS_DIR}/secret_key": secret_key,
            f"{SECRETS_DIR}/metrics_password": self.metrics_password,
        }
        self.traced = otlp_endpoint is not None
        if otlp_endpoint is not None:
            if not re.fullmatch(r"[A-Za-z0-9.-]+:\d{1,5}", otlp_endpoint):
                raise ValueError(f"Grafana: otlp_endpoint={otlp_endpoint!r}: give the collector's OTLP gRPC host:port, e.g. otel-collector:4317")
            envs += self._tracing_envs(otlp_endpoint)
        self.oidc: OidcLogin | None = None
        if sso:
            self.oidc = oidc_login(spec, self, ("/login/generic_oauth",))
            envs += self._sso_envs(self.oidc)
            secret_files[f"{SECRETS_DIR}/oidc_client_secret"] = self.oidc.client_secret
        networks = [host.edge_network, host.monitoring_network]
        depends_on: list[pulumi.Resource] = []
        if postgres is not None:
            self.database = DatabaseEdge(self, postgres)
            envs += ["GF_DATABASE_TYPE=postgres", "GF_DATABASE_SSL_MODE=disable"]
            envs += self.database.env("GF_DATABASE_", {"HOST": "host_port", "NAME": "name", "USER": "user"})
            envs.append(f"GF_DATABASE_PASSWORD__FILE={SECRETS_DIR}/database_password")
            secret_files[f"{SECRETS_DIR}/database_password"] = self.database.database.password
            networks.append(host.data_network)
            depends_on.append(self.database.database.ready)
        else:
            # Grafana's embedded SQLite, on the data volume.
            envs.append("GF_DATABASE_TYPE=sqlite3")
        self.container = ServiceContainer(
            self,
            "grafana",
            spec=spec.services.grafana,
            host=host,
            networks=networks,
            envs=envs,
            volumes={"grafana-data": "/var/lib/grafana"},
            secret_files=secret_files,
            # The Alpine image installs curl; migrations on first start take a while.
            healthcheck=http_check(f"http://localhost:{self.HTTP_PORT}/api/health", tool="curl", start_period="120s"),
            depends_on=depends_on,
        )
        # Grafana serves its own metrics on its HTTP port.
        self.metrics_target = self.upstream
        self._verify_tls = spec.tls.mode != "internal"
        self._admin: grafana.Provider | None = None
        self.chat: ChatWebhookEdge | None = None
        if chat is not None:
            self._alert_to_chat(chat)
        backends = [backend for backend in (prometheus, loki, tempo) if backend is not None]
        self.datasources = [
            DatasourceEdge(self, backend, self.on_grafana(), linked=[b.service for b in backends])
            for backend in backends
        ]
        self.dashboards: dict[str, grafana.oss.Dashboard] = {}
        if prometheus is not None:
            self._add_dashboards(spec)
        self.register_outputs({"url": self.url, "internal_url": self.internal_url})

    def scrape_job(self) -> ScrapeJob:
        """/metrics answers only with the metrics user and password (basic auth)."""
        return ScrapeJob(self.service, (self.metrics_target,), basic_auth=BasicAuth(METRICS_USER, self.metrics_password))

    def on_grafana(self, **extra) -> pulumi.ResourceOptions:
        """Options for a resource made through Grafana's API: the one admin provider, made on first
        use, signed in at the public URL once Grafana runs and the proxy serves it."""
        if self._admin is None:
            self._admin = grafana.Provider(
                "grafana-admin",
                url=self.reachable_url,
                auth=pulumi.Output.secret(pulumi.Output.concat(self.admin_username, ":", self.admin_password)),
                # Caddy's internal CA (dev) is not in the deploying machine's trust store; ACME
                # certificates (prod) are, and are verified.
                insecure_skip_verify=not self._verify_tls,
                # It was the chat edge's child before datasources and dashboards shared it.
                opts=self.child(depends_on=[self.container.container],
                                aliases=[pulumi.Alias(parent=self.chat)] if self.chat is not None else None),
            )
        return pulumi.ResourceOptions(provider=self._admin, **extra)

    def _add_dashboards(self, spec: StackSpec) -> None:
        """The "CERES" folder and its dashboards, for the exporters and services this stack runs."""
        settings = config.DashboardSettings(
            stack=pulumi.get_stack(),
            sources=frozenset(s for s in config.DASHBOARD_SOURCES if spec.enabled(s)),
            datasources=frozenset(edge.target.service for edge in self.datasources),
            replication=spec.ha.enabled,
        )
        folder = grafana.oss.Folder("grafana-folder-ceres", title=config.FOLDER_TITLE, uid=config.FOLDER_UID,
                                    opts=self.on_grafana(parent=self))
        datasources = [edge.datasource for edge in self.datasources]
        for uid, text in config.dashboards(settings).items():
            self.dashboards[uid] = grafana.oss.Dashboard(
                f"grafana-dashboard-{uid}",
                config_json=text,
                folder=folder.uid,
                # The program owns these dashboards: edits made in the UI are replaced.
                overwrite=True,
                opts=self.on_grafana(parent=self, depends_on=datasources),
            )

    @staticmethod
    def _tracing_envs(otlp_endpoint: str) -> list[str]:
        """Grafana's own spans over OTLP gRPC (plaintext inside the monitoring network: Grafana's
        `insecure` defaults to true), W3C trace context, every request sampled."""
        return [
            f"GF_TRACING_OPENTELEMETRY_OTLP_ADDRESS={otlp_endpoint}",
            "GF_TRACING_OPENTELEMETRY_OTLP_PROPAGATION=w3c",
            "GF_TRACING_OPENTELEMETRY_SAMPLER_TYPE=const",
            "GF_TRACING_OPENTELEMETRY_SAMPLER_PARAM=1",
        ]

    def _alert_to_chat(self, chat: Mattermost) -> None:
        """The chat-grafana edge: the contact point and the policy, through the admin provider."""
        self.chat = ChatWebhookEdge(self, chat, "alerts", username="Grafana")
        on_grafana = self.on_grafana(parent=self.chat)
        contact_point = grafana.alerting.ContactPoint(
            "grafana-chat-contact-point",
            name="Mattermost",
            slacks=[grafana.alerting.ContactPointSlackArgs(
                url=self.chat.hook_url,
                recipient=self.chat.channel_name,
                username=self.chat.username,
            )],
            opts=on_grafana,
        )
        # The policy tree is global: this makes the contact point every alert's default.
        grafana.alerting.NotificationPolicy(
            "grafana-notification-policy",
            contact_point=contact_point.name,
            group_bies=["alertname"],
            # Grafana's own defaults: a first message after 30s, news of a group every 5 minutes,
            # a still-firing alert again after 4 hours.
            group_wait="30s",
            group_interval="5m",
            repeat_interval="4h",
            opts=on_grafana,
        )

    @staticmethod
    def _sso_envs(login: OidcLogin) -> list[str]:
        """Generic OAuth against the realm: the browser goes to the public issuer, Grafana's own
        calls stay on the internal network; members of the admin group are Grafana admins."""
        prefix = "GF_AUTH_GENERIC_OAUTH_"
        return [
            f"{prefix}ENABLED=true",
            f"{prefix}NAME=Keycloak",
            f"{prefix}CLIENT_ID={login.client_id}",
            f"{prefix}CLIENT_SECRET__FILE={SECRETS_DIR}/oidc_client_secret",
            f"{prefix}SCOPES=openid email profile",
            f"{prefix}AUTH_URL={login.auth_url}",
            f"{prefix}TOKEN_URL={login.endpoint('token')}",
            f"{prefix}API_URL={login.endpoint('userinfo')}",
            f"{prefix}USE_PKCE=true",
            f"{prefix}LOGIN_ATTRIBUTE_PATH=preferred_username",
            f"{prefix}EMAIL_ATTRIBUTE_PATH=email",
            f"{prefix}GROUPS_ATTRIBUTE_PATH=groups",
            f"{prefix}ROLE_ATTRIBUTE_PATH=contains(groups[*], '{login.admin_group}') && 'GrafanaAdmin' || 'Viewer'",
            f"{prefix}ALLOW_ASSIGN_GRAFANA_ADMIN=true",
            # Without the group a user still gets in, as a viewer.
            f"{prefix}ROLE_ATTRIBUTE_STRICT=false",
            f"{prefix}ALLOW_SIGN_UP=true",
            f"GF_AUTH_SIGNOUT_REDIRECT_URL={login.logout_url}?client_id={login.client_id}&post_logout_redirect_uri={login.app_url}/login",
        ]
