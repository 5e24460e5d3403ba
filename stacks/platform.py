"""The one composition point: a stack's spec in, its whole graph of services and edges out.

Services are built in dependency order (data tier, identity, apps, observability, then the
proxy that routes them); each edge is built by the consumer it belongs to, from the set of
planned edges, so switching an edge off in config leaves exactly that edge out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from components import catalog
from components.base import IntegrationEdge, Service, fail_unserved
from components.container import alias_of
from components.docker_host import DockerHostComponent
from components.integrations.alert_route import AlertRouteEdge
from components.integrations.email import MailRelay
from components.integrations.file_mirror import FileMirrorEdge
from components.integrations.issue_tracker import IssueTrackerEdge
from components.integrations.oidc import OidcClientEdge
from components.integrations.project_link import ProjectLinkEdge
from components.integrations.repository_mirror import RepositoryMirrorEdge
from components.score import integration_report, is_wanted
from components.services.alertmanager import Alertmanager
from components.services.alloy import Alloy
from components.services.backup import KEPT_SERVICES, Backup
from components.services.caddy import Caddy
from components.services.cadvisor import CAdvisor
from components.services.gitea import Gitea
from components.services.grafana import Grafana
from components.services.keycloak import Keycloak
from components.services.loki import Loki
from components.services.mattermost import Mattermost
from components.services.nextcloud import Nextcloud
from components.services.oauth2_proxy import OAuth2Proxy
from components.services.otel_collector import OtelCollector
from components.services.portainer import Portainer
from components.services.haproxy import HAProxy
from components.services.postgres import PostgreSQL
from components.object_store import ObjectStoreKeys
from components.services.postgres_cluster import Archive, PostgresCluster
from components.services.redis_cluster import RedisCluster
from components.services.postgres_exporter import PostgresExporter
from components.services.prometheus import Prometheus
from components.services.redis import Redis
from components.services.redis_exporter import RedisExporter
from components.services.redmine import Redmine
from components.services.repo_sync import RepoSync, repositories_volume
from components.services.tempo import Tempo
from components.services.uptime_kuma import UptimeKuma
from components.services.wikijs import WikiJs
from stacks.load import ConfigError, Problem
from stacks.spec import StackSpec

# Edges this version of CERES can build; the rest of the catalog reports as missing, with the reason.
BUILDABLE_EDGES: frozenset[str] = frozenset({
    *(f"db-{app}" for app in ("keycloak", "nextcloud", "gitea", "mattermost", "redmine", "wikijs", "grafana")),
    "cache-nextcloud",
    "cache-gitea",
    # Admin UIs without a login of their own (GATED_UIS) are routed only behind the sso-proxy gate.
    *(catalog.route_id(app) for app in (*catalog.PUBLIC_APPS, *catalog.GATED_UIS)),
    "webdav-nextcloud",
    "acme-caddy",
    "sso-grafana",
    "sso-gitea",
    "sso-nextcloud",
    "sso-wikijs",
    "sso-mattermost",
    "sso-redmine",
    "sso-portainer",
    "sso-proxy",
    "wiki-git-storage",
    "tracker-gitea",
    "commits-redmine",
    "wiki-redmine",
    "files-gitea",
    "files-wikijs",
    "files-redmine",
    "chat-gitea",
    "chat-wikijs",
    "chat-redmine",
    "chat-nextcloud",
    "chat-alertmanager",
    "chat-grafana",
    "chat-uptime-kuma",
    "email-alertmanager",
    "email-uptime-kuma",
    "scrape-postgres-exporter",
    "scrape-redis-exporter",
    "scrape-cadvisor",
    "scrape-loki",
    "scrape-keycloak",
    "scrape-gitea",
    "scrape-alertmanager",
    "scrape-caddy",
    "scrape-oauth2-proxy",
    "scrape-tempo",
    "scrape-otel-collector",
    "scrape-alloy",
    "scrape-grafana",
    "scrape-uptime-kuma",
    "alerts-uptime-kuma",
    "alerts-loki",
    "datasource-prometheus",
    "datasource-loki",
    "datasource-tempo",
    "alerts-prometheus",
    "backup-postgres",
    "backup-volumes",
    "scrape-backup",
    "backup-pitr",
    "scrape-pgbackrest",
    "logs-shipper",
    "logs-containers",
    "traces-collector",
    "traces-apps",
    "ha-postgres",
    "ha-redis",
    "ha-proxy-vip",
    "scrape-patroni",
    "scrape-haproxy",
})


def planned_edges(spec: StackSpec) -> set[str]:
    """The edges this stack gets: wanted by its config and buildable by this version."""
    return {e.id for e in catalog.EDGES if e.id in BUILDABLE_EDGES and is_wanted(e, spec)}


def check_buildable(spec: StackSpec) -> list[Problem]:
    return [
        Problem(f"integrations.{edge_id}", True, "this version of CERES cannot build that edge yet; remove the setting")
        for edge_id, required in spec.integrations.items()
        if required and edge_id not in BUILDABLE_EDGES
    ]


@dataclass
class Platform:
    spec: StackSpec
    hosts: dict[str, DockerHostComponent] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)

    @property
    def edges(self) -> list[IntegrationEdge]:
        return [edge for service in self.services.values() for edge in service.edges]

    def add(self, service: Service) -> Any:
        self.services[service.service] = service
        return service

    def report(self) -> dict[str, Any]:
        return integration_report(self.spec, [edge.edge.id for edge in self.edges])

    def outputs(self) -> dict[str, Any]:
        report = self.report()
        return {
            "integration_score": report["score"],
            "integration_matrix": report["edges"],
            "urls": {name: service.url for name, service in self.services.items() if name in catalog.PUBLIC_APPS},
            # The only key to the backups: `pulumi stack output --show-secrets backup_password`.
            **({"backup_password": pulumi.Output.secret(self.services["backup"].password)} if "backup" in self.services else {}),
            # The only key to the cluster's point-in-time backups (pgBackRest's repository passphrase).
            **({"archive_password": pulumi.Output.secret(archive)}
               if (archive := getattr(self.services.get("postgres"), "archive_password", None)) is not None else {}),
        }


def _archive(spec: StackSpec, edges: set[str], store_keys: ObjectStoreKeys | None) -> Archive | None:
    """Point-in-time recovery for the cluster, when its edge is planned (which needs the object store)."""
    if "backup-pitr" not in edges or spec.backup.object_store is None:
        return None
    if store_keys is None:
        raise ValueError("backup-pitr: the object store's keys are missing (backup_s3_access_key, backup_s3_secret_key)")
    return Archive(spec.backup.object_store, spec.backup.point_in_time, store_keys)


def _consumers(edges: set[str], kind: str) -> tuple[str, ...]:
    """The services with a planned edge of `kind` (database, cache), in catalog order."""
    return tuple(e.source for e in catalog.EDGES if e.kind == kind and e.id in edges)


def build_platform(spec: StackSpec, smtp_password: pulumi.Output[str] | None = None,
                   store_keys: ObjectStoreKeys | None = None) -> Platform:
    """Register every resource of the stack, in dependency order, under one graph.

    `smtp_password` is the secret setting `smtp_password`, for the relay in `spec.smtp`;
    `store_keys` the secret settings backup_s3_access_key/backup_s3_secret_key, for the bucket in
    `spec.backup.object_store` (and an s3: restic repository).
    """
    try:
        platform = _compose(spec, smtp_password, store_keys)
    finally:
        # An API resource waiting for a proxy that never came would hang `pulumi up`: fail it instead.
        unserved = fail_unserved()
    if unserved:
        raise RuntimeError(f"{unserved} need Caddy to serve them (their APIs are reached at their public URLs), but it does not")
    return platform


def _compose(spec: StackSpec, smtp_password: pulumi.Output[str] | None, store_keys: ObjectStoreKeys | None) -> Platform:
    problems = check_buildable(spec)
    if problems:
        raise ConfigError(problems)
    edges = planned_edges(spec)
    on = spec.enabled
    mail_relay = MailRelay.from_spec(spec.smtp, smtp_password) if spec.smtp else None
    platform = Platform(spec)
    prefix = f"ceres-{pulumi.get_stack()}"
    clustered = {"ha-postgres", "ha-redis"} & edges
    for host in spec.hosts:
        # With the HA tier, the apps reach the database and cache at the virtual IP, off this host.
        platform.hosts[host.name] = DockerHostComponent(host, prefix, data_leaves_host=bool(clustered))
    apps = platform.hosts[spec.host_for("apps").name]
    ha_hosts = [platform.hosts[host.name] for host in spec.hosts_with("ha")]
    # Hosts besides the apps host that run containers: each gets its own log shipper and cAdvisor.
    other_hosts = [host for host in ha_hosts if host is not apps] if clustered else []

    def backend(service: Service | None, edge_id: str) -> Any:
        """The backend service when the consumer's edge to it is planned, else None."""
        return service if edge_id in edges else None

    # data tier: one server each, or (prod) the HA tier spread over the HA hosts, apps reaching it
    # through the HAProxy pair on the virtual IP (ha-postgres needs the pair; ha-redis needs both).
    # The pair waits for the Redis members, and every login waits for the pair.
    postgres = redis = haproxy = None
    if on("redis") and "ha-redis" in edges:
        redis = platform.add(RedisCluster(spec, ha_hosts, _consumers(edges, "cache"), monitoring=on("redis_exporter")))
    elif on("redis"):
        redis = platform.add(Redis(spec.services.redis, apps, _consumers(edges, "cache"), monitoring=on("redis_exporter")))
    if on("postgres") and "ha-postgres" in edges:
        redis_cluster = redis if isinstance(redis, RedisCluster) else None
        haproxy = platform.add(HAProxy(
            spec, ha_hosts, postgres_members=[(host.host.name, host.host.address) for host in ha_hosts[:spec.ha.postgres_members]],
            redis_section=redis_cluster.haproxy_section() if redis_cluster else None,
            redis_check_password=redis_cluster.haproxy_check_password if redis_cluster else None,
            after=[redis_cluster] if redis_cluster else [],
        ))
        if redis_cluster:
            redis_cluster.serve_through(haproxy)
        postgres = platform.add(PostgresCluster(
            spec, ha_hosts, _consumers(edges, "database"), monitoring=on("postgres_exporter"),
            backup="backup-postgres" in edges, proxy=haproxy, archive=_archive(spec, edges, store_keys),
        ))
    elif on("postgres"):
        postgres = platform.add(PostgreSQL(
            spec.services.postgres, apps, _consumers(edges, "database"), monitoring=on("postgres_exporter"),
            backup="backup-postgres" in edges,
        ))
    if on("postgres_exporter"):
        platform.add(PostgresExporter(spec, apps, postgres=postgres))
    if on("redis_exporter"):
        platform.add(RedisExporter(spec, apps, redis=redis))

    # the trace pipeline, before the apps that send to it
    collector = tempo = None
    if on("tempo"):
        tempo = platform.add(Tempo(spec, apps))
        if on("otel_collector"):
            collector = platform.add(OtelCollector(spec, apps, tempo=tempo))
    otlp_endpoint = collector.otlp_grpc_endpoint if collector and "traces-apps" in edges else None

    def scraped(service: str) -> bool:
        return catalog.scrape_id(service) in edges

    # identity
    keycloak = oauth2_proxy = None
    if on("keycloak"):
        keycloak = platform.add(Keycloak(spec, apps, postgres=backend(postgres, "db-keycloak"),
                                         scraped=scraped("keycloak"), otlp_endpoint=otlp_endpoint))
    if on("oauth2_proxy"):
        oauth2_proxy = platform.add(OAuth2Proxy(spec, apps, keycloak=keycloak, scraped=scraped("oauth2_proxy")))

    # work apps; the chat hub first, as every event source posts to it
    mattermost = None
    if on("mattermost"):
        mattermost = platform.add(Mattermost(spec, apps, postgres=postgres, sso="sso-mattermost" in edges))
    synced = {"tracker-gitea", "commits-redmine", "files-gitea", "files-wikijs"} & edges
    # The containers Gitea's webhooks post to (Gitea refuses private addresses it is not told of).
    webhook_hosts = [alias_of("mattermost")] if {"chat-gitea", "chat-wikijs"} & edges else []
    webhook_hosts += [alias_of("repo_sync")] if synced else []
    gitea = None
    if on("gitea"):
        gitea = platform.add(Gitea(spec, apps, postgres=backend(postgres, "db-gitea"), redis=backend(redis, "cache-gitea"),
                                   sso="sso-gitea" in edges, chat=backend(mattermost, "chat-gitea"),
                                   webhook_hosts=webhook_hosts, scraped=scraped("gitea")))
    # The volume the repo sync writes and Redmine and Nextcloud read: made before any of them.
    repositories = repositories_volume(apps) if synced else None
    redmine = None
    if on("redmine"):
        redmine = platform.add(Redmine(spec, apps, postgres=backend(postgres, "db-redmine"), sso="sso-redmine" in edges,
                                       chat=backend(mattermost, "chat-redmine"),
                                       repositories=repositories if "commits-redmine" in edges else None))
    wikijs = None
    if on("wikijs"):
        wikijs = platform.add(WikiJs(spec, apps, postgres=backend(postgres, "db-wikijs"), sso="sso-wikijs" in edges,
                                     gitea=backend(gitea, "wiki-git-storage"), chat=backend(mattermost, "chat-wikijs")))
    if synced:
        sync = platform.add(RepoSync(
            spec, apps, gitea=gitea, redmine=redmine if {"tracker-gitea", "commits-redmine"} & synced else None,
            wiki=wikijs.git_storage if "files-wikijs" in synced else None, repositories=repositories,
        ))
        if "tracker-gitea" in edges:
            IssueTrackerEdge(gitea, redmine, sync)
        if "commits-redmine" in edges:
            RepositoryMirrorEdge(redmine, gitea)
    if "wiki-redmine" in edges:
        ProjectLinkEdge(redmine, wikijs)
    if on("nextcloud"):
        nextcloud = platform.add(Nextcloud(
            spec, apps, postgres=backend(postgres, "db-nextcloud"), redis=backend(redis, "cache-nextcloud"),
            sso="sso-nextcloud" in edges, chat=backend(mattermost, "chat-nextcloud"),
            repositories=repositories if {"files-gitea", "files-wikijs"} & edges else None,
            show_projects="files-gitea" in edges, show_wiki="files-wikijs" in edges,
            redmine_files=redmine.files_volume if "files-redmine" in edges else None,
        ))
        for source in ("gitea", "wikijs", "redmine"):
            if f"files-{source}" in edges:
                FileMirrorEdge(platform.services[source], nextcloud)

    # observability
    alertmanager = None
    if on("alertmanager"):
        alertmanager = platform.add(Alertmanager(
            spec, apps, chat=backend(mattermost, "chat-alertmanager"),
            mail=mail_relay if "email-alertmanager" in edges else None,
        ))
    loki = None
    if on("loki"):
        loki = platform.add(Loki(spec, apps, alertmanager=backend(alertmanager, "alerts-loki"),
                                 remote_shippers=bool(clustered) and "logs-shipper" in edges))
        if on("alloy") and "logs-shipper" in edges:
            platform.add(Alloy(spec, apps, loki=loki, tail_containers="logs-containers" in edges,
                               other_hosts=other_hosts))
    if on("cadvisor"):
        platform.add(CAdvisor(spec, apps, other_hosts=other_hosts))
    # Prometheus scrapes the proxy that routes it: it gets its targets once the proxy is built.
    prometheus = None
    if on("prometheus"):
        prometheus = platform.add(Prometheus(spec, apps, alertmanager=backend(alertmanager, "alerts-prometheus")))
    if on("grafana"):
        platform.add(Grafana(spec, apps, postgres=backend(postgres, "db-grafana"), sso="sso-grafana" in edges,
                             chat=backend(mattermost, "chat-grafana"),
                             prometheus=backend(prometheus, "datasource-prometheus"), loki=backend(loki, "datasource-loki"),
                             tempo=backend(tempo, "datasource-tempo"), otlp_endpoint=otlp_endpoint))
    if otlp_endpoint:
        # The apps told of the collector above: Keycloak and Grafana (Gitea 1.24 speaks no OTLP).
        senders = [platform.services.get(name) for name in ("keycloak", "grafana")]
        collector.receive_from([app for app in senders if app is not None and app.traced])
    if on("uptime_kuma"):
        # Every routed site, by the URL a user opens; the monitors reach them through Caddy.
        endpoints = {catalog.display_name(app): spec.public_url(app) for app in (*catalog.PUBLIC_APPS, *catalog.GATED_UIS)
                     if catalog.route_id(app) in edges}
        # A gated site answers the gate's redirect whether or not the UI behind it runs: the UIs
        # are also watched on the monitoring network, at their own health endpoints.
        endpoints |= {f"{catalog.display_name(app)} (service)": f"{platform.services[app].internal_url}{platform.services[app].HEALTH_PATH}"
                      for app in ("prometheus", "alertmanager") if app in platform.services}
        uptime_kuma = platform.add(UptimeKuma(spec, apps, chat=backend(mattermost, "chat-uptime-kuma"),
                                              mail=mail_relay if "email-uptime-kuma" in edges else None, endpoints=endpoints))
        if "alerts-uptime-kuma" in edges:
            # Prometheus scrapes monitor_status and its UptimeKumaMonitorDown rule alerts through Alertmanager.
            AlertRouteEdge(uptime_kuma, alertmanager)

    # operations and the edge
    if on("portainer"):
        platform.add(Portainer(spec, apps, sso="sso-portainer" in edges))
    caddy = None
    if on("caddy"):
        routed = [platform.services[app] for app in (*catalog.PUBLIC_APPS, *catalog.GATED_UIS)
                  if catalog.route_id(app) in edges]
        gate = backend(oauth2_proxy, "sso-proxy")
        caddy = platform.add(Caddy(spec, apps, routes=routed, gate=gate, scraped=scraped("caddy")))
    # Last of the services, so it sees every volume to keep.
    if on("backup"):
        kept = {name: volume for service in platform.services.values() if service.service in KEPT_SERVICES
                for name, volume in service.container.volumes.items()} if "backup-volumes" in edges else {}
        platform.add(Backup(spec, apps, postgres=backend(postgres, "backup-postgres"), volumes=kept, store_keys=store_keys))
    if prometheus is not None:
        planned = [e.target for e in catalog.EDGES if e.kind == "scrape" and e.id in edges]
        # The HA members are scraped through the service that runs them, at the hosts' addresses.
        cluster = postgres if isinstance(postgres, PostgresCluster) else None
        runs_members = {"patroni": cluster, "pgbackrest": cluster, "haproxy": haproxy}
        prometheus.scrape([platform.services[name] for name in planned if name not in catalog.HA_ENDPOINTS],
                          ha_members={name: runs_members[name] for name in planned if name in catalog.HA_ENDPOINTS})

    # single sign-on: the realm is managed through Keycloak's public URL, so after the proxy
    logins = [e for e in catalog.EDGES if e.kind == "oidc_client" and e.id in edges]
    forward_auth = caddy.forward_auth if caddy else None
    if logins or forward_auth:
        keycloak.open_realm(spec, reachable_after=[caddy.container.container] if caddy else [])
        for login in logins:
            OidcClientEdge(platform.services[login.source], keycloak)
        if forward_auth:
            forward_auth.register_client(keycloak)
    return platform
