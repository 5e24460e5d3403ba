"""cAdvisor: per-container CPU, memory, network and disk I/O metrics, and each host's root
filesystem usage (the disk alerts), for Prometheus."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import Service
from components.config.prometheus import ScrapeJob
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from stacks.spec import StackSpec

# The cheap, useful metric families, and OOM kills (read from /dev/kmsg). Left out: per-CPU,
# TCP/UDP tables, process lists, filesystem usage (a du over every layer).
METRICS = "cpu,memory,network,diskIO,oom_event"
# Container labels worth keeping as metric labels; the rest (and all env vars) stay out.
KEPT_LABELS = "io.ceres.service,io.ceres.stack"
HTTP_PORT = 8080


class CAdvisor(Service):
    """cAdvisor on the apps host, on the monitoring network. Every other host that runs containers
    (`other_hosts`: the HA hosts) gets its own under this service, on the host's network like the
    HA members and listening only on the host's private address, where Prometheus scrapes the
    Patroni members too: the databases' disks are the ones that must not fill unnoticed."""

    def __init__(self, spec: StackSpec, host: DockerHostComponent, *, other_hosts: Sequence[DockerHostComponent] = (),
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__("cadvisor", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.container = _cadvisor(self, "cadvisor", spec, host, listen_on=None)
        self.remote_targets: list[str] = []
        self._hosts = {self.metrics_target: host.host.name}
        for other in other_hosts:
            address = other.private_address
            placed = pulumi.ComponentResource("ceres:services:CAdvisorOnHost", f"cadvisor-{other.host.name}", None,
                                              pulumi.ResourceOptions(parent=self, provider=other.provider))
            _cadvisor(placed, f"cadvisor-{other.host.name}", spec, other, listen_on=address)
            self.remote_targets.append(f"{address}:{HTTP_PORT}")
            self._hosts[f"{address}:{HTTP_PORT}"] = other.host.name
        self.register_outputs({"metrics_target": self.metrics_target, "remote_targets": self.remote_targets})

    @property
    def metrics_target(self) -> str:
        """`host:port` for Prometheus's scrape job, on the monitoring network."""
        return f"{self.container.alias}:{HTTP_PORT}"

    def scrape_job(self) -> ScrapeJob:
        """One job over every host's cAdvisor, so the container and disk alerts cover them all,
        each target labelled with its host's name."""
        return ScrapeJob("cadvisor", (self.metrics_target, *self.remote_targets), hosts=self._hosts)


def _cadvisor(owner: pulumi.Resource, name: str, spec: StackSpec, host: DockerHostComponent,
              listen_on: str | None) -> ServiceContainer:
    """`listen_on`: None for the monitoring network (all of the container's addresses); a host
    address puts cAdvisor on the host's network, answering there only."""
    listen = [f"--listen_ip={listen_on}", f"--port={HTTP_PORT}"] if listen_on else []
    return ServiceContainer(
        owner,
        name,
        spec=spec.services.cadvisor,
        host=host,
        networks=[] if listen_on else [host.monitoring_network],
        host_network=listen_on is not None,
        command=[
            "--docker_only=true",
            f"--enable_metrics={METRICS}",
            "--housekeeping_interval=30s",
            "--max_housekeeping_interval=60s",
            "--store_container_labels=false",
            f"--whitelisted_container_labels={KEPT_LABELS}",
            *listen,
        ],
        # The mounts cAdvisor's README runs it with, all read-only. Its in-memory history is
        # only a cache for its own UI, so it keeps no volume.
        binds={
            "/": "/rootfs",
            "/var/run": "/var/run",
            "/sys": "/sys",
            "/var/lib/docker": "/var/lib/docker",
            "/dev/disk": "/dev/disk",
        },
        # As cAdvisor's README runs it: cgroup stats of every container need privileges.
        devices=["/dev/kmsg"],
        privileged=True,
        # The Alpine-based image has busybox wget (its own Dockerfile HEALTHCHECK uses it).
        healthcheck=http_check(f"http://{listen_on or 'localhost'}:{HTTP_PORT}/healthz", tool="wget"),
    )
