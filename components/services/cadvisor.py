"""cAdvisor: per-container CPU, memory, network and disk I/O metrics for Prometheus."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from stacks.spec import StackSpec

# The cheap, useful metric families, and OOM kills (read from /dev/kmsg). Left out: per-CPU,
# TCP/UDP tables, process lists, filesystem usage (a du over every layer).
METRICS = "cpu,memory,network,diskIO,oom_event"
# Container labels worth keeping as metric labels; the rest (and all env vars) stay out.
KEPT_LABELS = "io.ceres.service,io.ceres.stack"


class CAdvisor(Service):
    """Reads the host's cgroups and Docker state through read-only binds; monitoring network only."""

    HTTP_PORT = 8080

    def __init__(self, spec: StackSpec, host: DockerHostComponent, opts: pulumi.ResourceOptions | None = None):
        super().__init__("cadvisor", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.container = ServiceContainer(
            self,
            "cadvisor",
            spec=spec.services.cadvisor,
            host=host,
            networks=[host.monitoring_network],
            command=[
                "--docker_only=true",
                f"--enable_metrics={METRICS}",
                "--housekeeping_interval=30s",
                "--max_housekeeping_interval=60s",
                "--store_container_labels=false",
                f"--whitelisted_container_labels={KEPT_LABELS}",
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
            healthcheck=http_check(f"http://localhost:{self.HTTP_PORT}/healthz", tool="wget"),
        )
        self.register_outputs({"metrics_target": self.metrics_target})

    @property
    def metrics_target(self) -> str:
        """`host:port` for Prometheus's scrape job, on the monitoring network."""
        return f"{self.container.alias}:{self.HTTP_PORT}"
