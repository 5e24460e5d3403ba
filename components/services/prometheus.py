"""Prometheus: scrapes the platform's metrics and evaluates its alert rules."""

from __future__ import annotations

import ipaddress
from typing import Mapping, Sequence

import pulumi

from components.base import Service
from components.config import alert_rules, prometheus as config
from components.container import ServiceContainer, alias_of, http_check
from components.docker_host import DockerHostComponent
from components.integrations.alert_route import AlertRouteEdge
from components.integrations.scrape import ScrapeEdge
from components.services.alertmanager import Alertmanager
from stacks.spec import StackSpec

CONFIG_DIR = "/etc/prometheus"
# Dev keeps a week to debug with; prod a month of history for trends and post-mortems.
RETENTION = {"dev": "7d", "prod": "30d"}


class Prometheus(Service):
    """On the monitoring network only; its UI is gated behind SSO by the routing issue.

    Built in two steps, because Prometheus scrapes the proxy that routes it: the service first
    (Caddy routes it by name, `upstream`), then `scrape(targets)` once every target exists, which
    makes a `scrape-<target>` edge per target and the container. It alerts to `alertmanager`
    when given (`alerts-prometheus`). Job secrets are uploaded as secret files the config names.
    No `--web.enable-lifecycle`: a config change re-uploads the file, which replaces the
    container, so the reload endpoint would only leave /-/reload and /-/quit open unauthenticated.
    """

    HTTP_PORT = 9090
    HEALTH_PATH = "/-/healthy"

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        alertmanager: Alertmanager | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("prometheus", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.alerts = AlertRouteEdge(self, alertmanager) if alertmanager is not None else None
        self.url = spec.public_url("prometheus")
        self.scrapes: list[ScrapeEdge] = []
        self._spec = spec
        self._host = host

    @property
    def upstream(self) -> str:
        # Known before the container exists: the proxy routes Prometheus before Prometheus scrapes it.
        return f"{alias_of(self.service)}:{self.HTTP_PORT}"

    def scrape(self, targets: Sequence[Service], *, ha_members: Mapping[str, Service] | None = None) -> None:
        """The second step: scrape itself, each of `targets` and each set of HA members
        (`{"patroni": the PostgreSQL cluster}`, reached at the HA hosts' addresses), and run."""
        if self.scrapes:
            raise RuntimeError("Prometheus.scrape: called twice; give every target in one call")
        spec, host = self._spec, self._host
        self.scrapes = [ScrapeEdge(self, target) for target in targets]
        self.scrapes += [ScrapeEdge(self, service, members=name) for name, service in (ha_members or {}).items()]
        settings = config.PrometheusSettings(
            external_labels={"stack": pulumi.get_stack(), "tier": spec.tier},
            jobs=(config.ScrapeJob("prometheus", (f"localhost:{self.HTTP_PORT}",)), *(edge.job for edge in self.scrapes)),
            alertmanagers=(self.alerts.upstream,) if self.alerts else (),
        )
        jobs = frozenset(job.name for job in settings.jobs)
        # Rules evaluate even without Alertmanager: their state shows on the (gated) alerts page.
        rules = alert_rules.prometheus_rules(alert_rules.AlertRuleSettings(
            jobs=jobs, ha="patroni" in jobs, backup="backup" in jobs, point_in_time="pgbackrest" in jobs,
            pitr_backup_max_age=f"{2 * spec.backup.point_in_time.diff_every_hours}h"))
        # Targets on other hosts (the HA members, their cAdvisors) are named by address: the data
        # network is the one that leaves this host.
        other_hosts = any(_is_address(target) for job in settings.jobs for target in job.targets)
        self.container = ServiceContainer(
            self,
            "prometheus",
            spec=spec.services.prometheus,
            host=host,
            networks=[host.monitoring_network, *([host.data_network] if other_hosts else [])],
            command=[
                f"--config.file={CONFIG_DIR}/prometheus.yml",
                "--storage.tsdb.path=/prometheus",
                f"--storage.tsdb.retention.time={RETENTION[spec.tier]}",
                # Alert links (generatorURL) point at the (gated) public UI.
                f"--web.external-url={self.url}",
            ],
            volumes={"prometheus-data": "/prometheus"},
            files={
                f"{CONFIG_DIR}/prometheus.yml": config.prometheus_yml(settings),
                f"{CONFIG_DIR}/{alert_rules.RULES_FILE}": rules,
            },
            secret_files={f"{CONFIG_DIR}/{path}": value for path, value in config.secret_files(settings).items()},
            # prom/prometheus is busybox-based: wget is there. TSDB replay can take a while.
            healthcheck=http_check(f"http://localhost:{self.HTTP_PORT}{self.HEALTH_PATH}", tool="wget", start_period="60s"),
        )
        self.register_outputs({"internal_url": self.internal_url, "jobs": [job.name for job in settings.jobs]})


def _is_address(target: str) -> bool:
    """`10.0.0.12:8008` (another host), not `cadvisor:8080` (a name on this host's networks)."""
    try:
        ipaddress.ip_address(target.rsplit(":", 1)[0])
    except ValueError:
        return False
    return True
