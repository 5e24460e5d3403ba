"""The edge catalog: every integration edge CERES wants, with a stable id and one layer.

Built from the seed (`docs/seed/INTEGRATION_MATRIX.md`): every matrix cell marked ✅, ⚠️ or ❌
and every item of its category lists is carried by an edge here (see `seed` on each edge,
checked against the seed text by `tests/components/test_catalog.py`). Where the seed names
one connection twice (a matrix cell, its mirror cell and a category item), it is one edge.

Direction: an edge goes from the consumer (the service that uses, sends to or reads from)
to the service it uses; its component lives under the consumer.

Layers (each edge counted once, in the layer a user feels it in):
identity (logins), storage (files), development (the git workflow), project_management
(Redmine's links to the rest), notifications (chat and e-mail), observability (metrics,
logs, traces, alerts), infrastructure (data backends, routing, TLS, backups, HA).

Pure data and functions: no Pulumi import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from stacks.spec import SERVICE_NAMES, StackSpec

LAYERS: tuple[str, ...] = (
    "identity",
    "storage",
    "development",
    "project_management",
    "notifications",
    "observability",
    "infrastructure",
)

# Endpoints that are not services of the stack: they cannot be switched off, only configured.
EXTERNAL_ENDPOINTS: dict[str, str] = {
    "smtp": "the outside mail relay (ceres:smtp)",
    "acme_ca": "the public ACME certificate authority",
    "slack": "Slack, an outside SaaS",
    "sms_gateway": "an outside SMS or Telegram gateway",
    "object_store": "an S3-compatible bucket off the stack's hosts (ceres:backup.object_store)",
}

# Endpoints that stand for a group of the stack's services.
GROUP_ENDPOINTS: dict[str, str] = {
    "docker": "every container on every Docker host",
    # Gitea 1.24 has no OpenTelemetry exporter; the others are added as they gain one.
    "apps": "the apps that speak OTLP: Keycloak, Grafana",
}

# The high-availability tier: present when ceres:ha.enabled is true (prod overlay).
HA_ENDPOINTS: dict[str, str] = {
    "patroni": "PostgreSQL members managed by Patroni on etcd",
    "redis_sentinel": "Redis replicas watched by Sentinel",
    "haproxy": "HAProxy pair in front of the data tier",
    "pgbackrest": "the pgBackRest agent in every Patroni member",
    "keepalived": "Keepalived holding the virtual IP",
}

# Human-facing apps Caddy routes; their own login page carries SSO.
PUBLIC_APPS: tuple[str, ...] = ("keycloak", "nextcloud", "gitea", "mattermost", "redmine", "wikijs", "grafana", "portainer")
# UIs with no login of their own: routed only behind Caddy forward_auth to oauth2-proxy.
GATED_UIS: tuple[str, ...] = ("prometheus", "alertmanager", "uptime_kuma")

# How people name the routed apps (monitor names, dashboards).
TITLES: dict[str, str] = {
    "keycloak": "Keycloak", "nextcloud": "Nextcloud", "gitea": "Gitea", "mattermost": "Mattermost",
    "redmine": "Redmine", "wikijs": "Wiki.js", "grafana": "Grafana", "portainer": "Portainer",
    "prometheus": "Prometheus", "alertmanager": "Alertmanager", "uptime_kuma": "Uptime Kuma",
}


def display_name(app: str) -> str:
    return TITLES[app]


# The seed counts routing as one item; each routed app is its own edge here, so that
# switching an app off takes exactly its route out of the score.
ROUTING_SEED_ITEMS: tuple[str, ...] = ("§8 Caddy: HTTPS/TLS", "§8 Caddy: All services routing")

Applicability = Callable[[StackSpec], "str | None"]


def _always(_: StackSpec) -> str | None:
    return None


@dataclass(frozen=True)
class Edge:
    """One wanted integration edge. `seed` names the seed places it carries."""

    id: str
    layer: str
    kind: str
    source: str
    target: str
    mechanism: str
    seed: tuple[str, ...]
    # Services the edge needs besides its two endpoints (a relay, a gate, a shipper).
    via: tuple[str, ...] = ()
    # Other edges it cannot work without (an admin UI's route needs the SSO gate).
    needs: tuple[str, ...] = ()
    # Returns why the edge cannot apply to this stack, or None when it applies.
    not_applicable: Applicability = field(default=_always, compare=False)

    @property
    def services(self) -> tuple[str, ...]:
        """Every stack service the edge touches (external endpoints left out)."""
        ends = (self.source, self.target, *self.via)
        return tuple(dict.fromkeys(name for name in ends if name in SERVICE_NAMES))


def _mattermost_team_edition(spec: StackSpec) -> str | None:
    if spec.services.mattermost.edition == "team":
        return "Mattermost Team Edition has no Redis cache (Enterprise-only since 10.4); set services.mattermost.edition=enterprise with a licence to use it"
    return None


def _single_host(spec: StackSpec) -> str | None:
    if len(spec.hosts) < 3:
        return f"high availability needs at least 3 Docker hosts; this stack has {len(spec.hosts)}"
    return None


def _internal_ca(spec: StackSpec) -> str | None:
    if spec.tls.mode == "internal":
        return "this stack uses Caddy's internal CA (tls.mode=internal): its names are not publicly resolvable"
    return None


def _nothing_to_gate(spec: StackSpec) -> str | None:
    routed = [ui for ui in GATED_UIS if spec.enabled(ui) and spec.integrations.get(route_id(ui)) is not False]
    if not routed:
        return f"no admin UI without a login of its own is routed ({', '.join(GATED_UIS)})"
    return None


def _outside_saas(reason: str) -> Applicability:
    return lambda _spec: reason


def _sso(app: str, mechanism: str, seed: tuple[str, ...]) -> Edge:
    # Browsers sign in at Keycloak's public URL, which only Caddy serves.
    return Edge(f"sso-{app.replace('_', '-')}", "identity", "oidc_client", app, "keycloak", mechanism, seed, via=("caddy",))


def _database(app: str, seed: tuple[str, ...]) -> Edge:
    return Edge(
        f"db-{app}", "infrastructure", "database", app, "postgres",
        "own PostgreSQL database and role, created on the PostgreSQL side", seed,
    )


def route_id(app: str) -> str:
    return f"route-{app.replace('_', '-')}"


def _route(app: str, seed: tuple[str, ...]) -> Edge:
    gated = app in GATED_UIS
    return Edge(
        route_id(app), "infrastructure", "route", "caddy", app,
        "HTTPS site behind Caddy forward_auth (oauth2-proxy)" if gated else "HTTPS site on Caddy",
        seed, via=("oauth2_proxy", "keycloak") if gated else (), needs=("sso-proxy",) if gated else (),
    )


def _chat(source: str, mechanism: str, seed: tuple[str, ...], layer: str = "notifications",
          via: tuple[str, ...] = (), needs: tuple[str, ...] = ()) -> Edge:
    # The hook is created through Mattermost's API at its public URL, hence Caddy and its route.
    return Edge(f"chat-{source.replace('_', '-')}", layer, "chat_webhook", source, "mattermost", mechanism, seed,
                via=tuple(dict.fromkeys((*via, "caddy"))), needs=("route-mattermost", *needs))


def scrape_id(target: str) -> str:
    return f"scrape-{target.replace('_', '-')}"


def _scrape(target: str, mechanism: str, seed: tuple[str, ...] = (),
            not_applicable: Applicability = _always, needs: tuple[str, ...] = ()) -> Edge:
    # Issue 7 asks for every service that exposes metrics; the seed names only some of them.
    seed = seed or (f"issue 7: Prometheus scrapes {target}, like every service that exposes metrics",)
    return Edge(scrape_id(target), "observability", "scrape", "prometheus", target, mechanism, seed,
                needs=needs, not_applicable=not_applicable)


EDGES: tuple[Edge, ...] = (
    # identity
    _sso("grafana", "generic OAuth against the realm, admin role from the admin group",
         ("matrix: Keycloak × Grafana", "§1 KEYCLOAK: Grafana", "§7 Grafana: Keycloak")),
    _sso("nextcloud", "user_oidc provider set through occ; admins through a Keycloak client role mapped to Nextcloud's admin group",
         ("matrix: Keycloak × Nextcloud", "§1 KEYCLOAK: Nextcloud", "§2 NEXTCLOUD: Keycloak")),
    _sso("gitea", "OpenID Connect login source (gitea admin auth add-oauth)",
         ("matrix: Keycloak × Gitea", "§1 KEYCLOAK: Gitea", "§3 Gitea: Keycloak")),
    _sso("wikijs", "OpenID Connect strategy through GraphQL, realm groups mapped to Wiki.js groups by name, local login kept",
         ("matrix: Keycloak × Wiki.js", "§1 KEYCLOAK: Wiki.js", "§6 WIKI.JS: Keycloak")),
    _sso("redmine", "OIDC plugin in a derived image",
         ("matrix: Keycloak × Redmine", "§1 KEYCLOAK: Redmine", "§4 REDMINE: Keycloak")),
    _sso("mattermost", "GitLab-compatible OAuth against Keycloak (Team Edition) or native OpenID (licensed)",
         ("matrix: Keycloak × Mattermost", "§1 KEYCLOAK: Mattermost", "§5 MATTERMOST: Keycloak")),
    _sso("portainer", "Portainer OAuth settings against the realm",
         ("§8 Portainer: Not integrated with other services",)),
    Edge("sso-proxy", "identity", "forward_auth", "caddy", "oauth2_proxy",
         "Caddy forward_auth to oauth2-proxy (keycloak-oidc) for UIs without SSO",
         ("§1 KEYCLOAK: Caddy", "§8 Caddy: SSO protection"), via=("keycloak",), not_applicable=_nothing_to_gate),
    # storage
    # The repo sync worker is told of pushes by a Gitea webhook made through Gitea's public URL.
    Edge("files-gitea", "storage", "file_mirror", "gitea", "nextcloud",
         "default branch of each project repository checked out by the repo sync into a read-only Nextcloud folder",
         ("matrix: Nextcloud × Gitea", "§2 NEXTCLOUD: Gitea", "§3 Gitea: Nextcloud"),
         via=("repo_sync", "caddy"), needs=("route-gitea",)),
    Edge("files-redmine", "storage", "file_mirror", "redmine", "nextcloud",
         "Redmine's attachments volume mounted read-only in Nextcloud (files_external)",
         ("matrix: Nextcloud × Redmine", "§2 NEXTCLOUD: Redmine", "§4 REDMINE: Nextcloud")),
    Edge("files-wikijs", "storage", "file_mirror", "wikijs", "nextcloud",
         "the wiki's Markdown (its Git storage) checked out by the repo sync into a read-only Nextcloud folder",
         ("matrix: Nextcloud × Wiki.js", "§2 NEXTCLOUD: Wiki.js", "§6 WIKI.JS: Nextcloud"),
         via=("gitea", "repo_sync", "caddy"), needs=("wiki-git-storage",)),
    Edge("webdav-nextcloud", "storage", "route", "caddy", "nextcloud",
         "WebDAV for desktop and mobile sync through Caddy, with the .well-known DAV redirects",
         ("§2 NEXTCLOUD: WebDAV API",)),
    # development
    # Configured through both apps' APIs at their public URLs, hence Caddy and both routes.
    Edge("wiki-git-storage", "development", "git_storage", "wikijs", "gitea",
         "Wiki.js Git storage in sync mode into the `ceres-wiki/wiki` repository, as a bot that can only write repositories",
         ("matrix: Gitea × Wiki.js", "§3 Gitea: Wiki.js", "§6 WIKI.JS: Gitea"), via=("caddy",),
         needs=("route-wikijs", "route-gitea")),
    Edge("tracker-gitea", "development", "issue_tracker", "gitea", "redmine",
         "the repo sync points each project repository's external tracker at Redmine issues",
         ("matrix: Gitea × Redmine", "§3 Gitea: Redmine"), via=("repo_sync", "caddy"), needs=("route-gitea",)),
    _chat("gitea", "Gitea slack-type webhook (push, pull requests, issues, releases) to the dev channel",
          ("matrix: Gitea × Mattermost", "§3 Gitea: Mattermost", "§5 MATTERMOST: Gitea"), layer="development",
          needs=("route-gitea",)),
    # project management
    Edge("commits-redmine", "project_management", "repository_mirror", "redmine", "gitea",
         "the repo sync's bare mirror, fetched on push; refs/fixes #N link commits and move task status",
         ("matrix: Redmine × Gitea", "§4 REDMINE: Gitea"), via=("repo_sync", "caddy"), needs=("route-gitea",)),
    Edge("wiki-redmine", "project_management", "project_link", "redmine", "wikijs",
         "a Wiki link on every Redmine project to its Wiki.js space; Redmine's own wiki module off for new projects",
         ("matrix: Redmine × Wiki.js",)),
    _chat("redmine", "redmine_messenger posts task changes to the projects channel",
          ("matrix: Redmine × Mattermost", "§4 REDMINE: Mattermost", "§5 MATTERMOST: Redmine"), layer="project_management"),
    # notifications
    _chat("alertmanager", "Alertmanager receiver for critical and warning alerts, resolved too",
          ("matrix: Alertmanager × Mattermost", "§5 MATTERMOST: Alertmanager", "§7 Alertmanager: Mattermost")),
    _chat("uptime_kuma", "Uptime Kuma mattermost notification on every monitor",
          ("matrix: Uptime Kuma × Mattermost", "§5 MATTERMOST: Uptime Kuma", "§7 Uptime Kuma: Mattermost")),
    _chat("nextcloud", "webhook_listeners events through a translating bridge to the files channel",
          ("matrix: Nextcloud × Mattermost", "§5 MATTERMOST: Nextcloud")),
    _chat("wikijs", "page edits land as commits in Gitea, whose push hook posts to the dev channel",
          ("matrix: Mattermost × Wiki.js", "§6 WIKI.JS: Mattermost"), via=("gitea",), needs=("wiki-git-storage",)),
    _chat("grafana", "Grafana Slack-type contact point and notification policy",
          ("§7 Grafana: Mattermost",), needs=("route-grafana",)),
    Edge("email-alertmanager", "notifications", "email", "alertmanager", "smtp",
         "e-mail fallback receiver, so alerts reach people when chat is down",
         ("§7 Alertmanager: Email",)),
    Edge("email-uptime-kuma", "notifications", "email", "uptime_kuma", "smtp",
         "Uptime Kuma SMTP notification", ("§7 Uptime Kuma: Email notifications",)),
    Edge("slack-grafana", "notifications", "chat_webhook", "grafana", "slack",
         "Slack contact point", ("§7 Grafana: Slack",),
         not_applicable=_outside_saas("optional in the seed: Slack is an outside SaaS and Mattermost is the platform's chat hub")),
    Edge("sms-alertmanager", "notifications", "sms", "alertmanager", "sms_gateway",
         "SMS or Telegram receiver", ("§7 Alertmanager: SMS/Telegram",),
         not_applicable=_outside_saas("optional in the seed: needs an outside SMS or Telegram gateway; chat and e-mail cover delivery")),
    # observability
    _scrape("postgres_exporter", "postgres_exporter :9187", ("§7 Prometheus: PostgreSQL exporter",)),
    _scrape("redis_exporter", "redis_exporter :9121", ("§7 Prometheus: Redis exporter",)),
    _scrape("cadvisor", "cAdvisor container and disk metrics, on every host", ("§7 Prometheus: cAdvisor",)),
    _scrape("loki", "Loki /metrics", ("matrix: Prometheus × Loki", "§7 Prometheus: Loki")),
    _scrape("keycloak", "Keycloak /metrics on its management port :9000"),
    _scrape("gitea", "Gitea /metrics with its metrics token (Bearer, from a secret file)"),
    _scrape("grafana", "Grafana /metrics"),
    _scrape("alertmanager", "Alertmanager /metrics"),
    _scrape("caddy", "Caddy's metrics on a listener only the monitoring network reaches"),
    _scrape("uptime_kuma", "Uptime Kuma /metrics (monitor status, response time, certificate days left), basic auth"),
    _scrape("oauth2_proxy", "oauth2-proxy /metrics on its metrics address"),
    _scrape("tempo", "Tempo /metrics"),
    _scrape("otel_collector", "the collector's own telemetry /metrics"),
    _scrape("alloy", "Alloy /metrics"),
    _scrape("backup", "the time of the last backup that succeeded, for the backup-too-old alert",
            ("issue 8: a backup-age metric for Prometheus",)),
    _scrape("patroni", "Patroni /metrics on every member's REST API (:8008)", not_applicable=_single_host,
            needs=("ha-postgres",)),
    _scrape("haproxy", "HAProxy's Prometheus exporter on both instances (:8404)", not_applicable=_single_host,
            needs=("ha-proxy-vip",)),
    _scrape("pgbackrest", "the pgBackRest agent on every Patroni member (:9188): backup times, WAL archiving",
            ("issue 8: the point-in-time backups' age and the WAL archive's health, for alerts",),
            not_applicable=_single_host, needs=("backup-pitr",)),
    Edge("alerts-prometheus", "observability", "alert_route", "prometheus", "alertmanager",
         "Prometheus alerting to Alertmanager",
         ("matrix: Prometheus × Alertmanager", "§7 Prometheus: Alertmanager", "§7 Alertmanager: Prometheus")),
    # Made through Grafana's API at its public URL (like its contact point), hence Caddy and the route.
    Edge("datasource-prometheus", "observability", "datasource", "grafana", "prometheus",
         "Grafana datasource with a fixed uid",
         ("matrix: Grafana × Prometheus", "§7 Prometheus: Grafana", "§7 Grafana: Prometheus"),
         via=("caddy",), needs=("route-grafana",)),
    Edge("datasource-loki", "observability", "datasource", "grafana", "loki",
         "Grafana datasource with a fixed uid and trace links",
         ("matrix: Grafana × Loki", "§7 Grafana: Loki", "§7 Loki: Grafana"),
         via=("caddy",), needs=("route-grafana",)),
    Edge("datasource-tempo", "observability", "datasource", "grafana", "tempo",
         "Grafana datasource with a fixed uid and trace-to-log links",
         ("§7 Grafana: Tempo", "§7 Tempo: Grafana"),
         via=("caddy",), needs=("route-grafana",)),
    Edge("logs-shipper", "observability", "log_shipping", "alloy", "loki",
         "Grafana Alloy (Promtail's successor) writes to Loki", ("§7 Loki: Promtail",)),
    Edge("logs-containers", "observability", "log_shipping", "docker", "loki",
         "every container's logs discovered on every host, labelled by service and stack",
         ("§7 Loki: All services logging",), via=("alloy",), needs=("logs-shipper",)),
    Edge("alerts-loki", "observability", "alert_route", "loki", "alertmanager",
         "Loki ruler rules on logs, routed to Alertmanager", ("§7 Loki: Alerting on logs",)),
    Edge("traces-collector", "observability", "trace_pipeline", "otel_collector", "tempo",
         "OTLP receiver exporting to Tempo", ("§7 Tempo: OTEL Collector",)),
    Edge("traces-apps", "observability", "trace_pipeline", "apps", "otel_collector",
         "apps that speak OTLP (Keycloak, Grafana) send traces to the collector",
         ("§7 Tempo: Application instrumentation",), needs=("traces-collector",)),
    Edge("alerts-uptime-kuma", "observability", "alert_route", "uptime_kuma", "alertmanager",
         "Prometheus scrapes Uptime Kuma's monitor_status; monitor down alerts through Alertmanager",
         ("matrix: Uptime Kuma × Alertmanager", "§7 Uptime Kuma: Alertmanager"), via=("prometheus",),
         needs=("scrape-uptime-kuma", "alerts-prometheus")),
    # infrastructure: data backends
    _database("keycloak", ("matrix: Keycloak × PostgreSQL", "§8 PostgreSQL: Keycloak")),
    _database("nextcloud", ("matrix: Nextcloud × PostgreSQL", "§2 NEXTCLOUD: PostgreSQL", "§8 PostgreSQL: Nextcloud")),
    _database("gitea", ("matrix: Gitea × PostgreSQL", "§3 Gitea: PostgreSQL", "§8 PostgreSQL: Gitea")),
    _database("mattermost", ("§5 MATTERMOST: PostgreSQL", "§8 PostgreSQL: Mattermost")),
    _database("redmine", ("matrix: Redmine × PostgreSQL", "§4 REDMINE: PostgreSQL", "§8 PostgreSQL: Redmine")),
    _database("wikijs", ("matrix: Wiki.js × PostgreSQL", "§6 WIKI.JS: PostgreSQL", "§8 PostgreSQL: Wiki.js")),
    _database("grafana", ("issue 3: Grafana state in PostgreSQL, so it survives and fails over",)),
    Edge("cache-nextcloud", "infrastructure", "cache", "nextcloud", "redis",
         "distributed cache and file locking in its own Redis database",
         ("matrix: Nextcloud × Redis", "§2 NEXTCLOUD: Redis", "§8 Redis: Nextcloud")),
    Edge("cache-gitea", "infrastructure", "cache", "gitea", "redis",
         "cache, sessions and queues in its own Redis database",
         ("matrix: Gitea × Redis", "§3 Gitea: Redis", "§8 Redis: Used only by some services")),
    Edge("cache-mattermost", "infrastructure", "cache", "mattermost", "redis",
         "Redis cache (Enterprise)", ("matrix: Mattermost × Redis", "§5 MATTERMOST: Redis", "§8 Redis: Mattermost"),
         not_applicable=_mattermost_team_edition),
    # infrastructure: routing and TLS
    *(_route(app, ROUTING_SEED_ITEMS) for app in PUBLIC_APPS + GATED_UIS),
    Edge("acme-caddy", "infrastructure", "certificates", "caddy", "acme_ca",
         "automatic certificates from the ACME CA", ("§8 Caddy: Let's Encrypt",), not_applicable=_internal_ca),
    Edge("ratelimit-caddy", "infrastructure", "rate_limit", "caddy", "caddy",
         "per-client rate limits (needs a Caddy build with the caddy-ratelimit plugin)", ("§8 Caddy: Rate limiting",)),
    # infrastructure: backups and HA
    Edge("backup-postgres", "infrastructure", "backup", "backup", "postgres",
         "scheduled dumps of every database into restic, with a one-command restore",
         ("§8 PostgreSQL: Backup strategy",)),
    Edge("backup-volumes", "infrastructure", "backup", "backup", "docker",
         "every stateful volume into the same restic repository",
         ("success criterion 6: one command restores",)),
    Edge("backup-pitr", "infrastructure", "backup", "postgres", "object_store",
         "every WAL segment archived and pgBackRest full/differential backups in the object store,"
         " taken by whichever member leads: the cluster restores to any moment (ceres restore-pitr)",
         ("issue 8: point-in-time recovery in prod (pgBackRest with WAL archiving)",),
         needs=("ha-postgres",), not_applicable=_single_host),
    Edge("ha-postgres", "infrastructure", "ha", "postgres", "patroni",
         "Patroni cluster on etcd across hosts, apps through HAProxy",
         ("§8 PostgreSQL: Patroni HA",), via=("haproxy",), needs=("ha-proxy-vip",), not_applicable=_single_host),
    # The HAProxy pair is built around the PostgreSQL cluster; the Redis primary rides on it.
    Edge("ha-redis", "infrastructure", "ha", "redis", "redis_sentinel",
         "Redis Sentinel across hosts, primary endpoint through HAProxy",
         ("§8 Redis: Redis Sentinel",), via=("haproxy",), needs=("ha-proxy-vip", "ha-postgres"), not_applicable=_single_host),
    Edge("ha-proxy-vip", "infrastructure", "ha", "haproxy", "keepalived",
         "two HAProxy instances holding a Keepalived virtual IP",
         ("success criterion 4: automatic failover",), not_applicable=_single_host),
)

EDGES_BY_ID: dict[str, Edge] = {edge.id: edge for edge in EDGES}


def edges_touching(service: str) -> list[Edge]:
    return [e for e in EDGES if service in e.services]


# Services that cannot run at all without another (not an edge that can be switched off).
SERVICE_REQUIRES: dict[str, tuple[str, ...]] = {
    # PostgreSQL: the only database it supports; Caddy: its team and channels are made through its public API.
    "mattermost": ("postgres", "caddy"),
    "postgres_exporter": ("postgres",),
    "redis_exporter": ("redis",),
    "alloy": ("loki",),
    "oauth2_proxy": ("keycloak",),
    "alertmanager": ("prometheus",),
    "otel_collector": ("tempo",),
    "repo_sync": ("gitea",),
}

# Edges a service cannot run without: switching one off while the service runs is a config error.
EDGES_REQUIRED_BY: dict[str, tuple[str, ...]] = {
    "mattermost": ("db-mattermost", "route-mattermost"),
}
