"""redis_exporter: Redis's metrics for Prometheus, read with its own ACL user."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.services.redis import Redis
from stacks.spec import StackSpec

METRICS_PORT = 9121


class RedisExporter(Service):
    """Scrapes Redis as `ceres_monitor`: INFO, CONFIG GET, SLOWLOG, LATENCY and no keys."""

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        redis: Redis,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("redis_exporter", pulumi.ResourceOptions.merge(host.placed(), opts))
        login = redis.monitoring_login()
        self.container = ServiceContainer(
            self,
            "redis_exporter",
            spec=spec.services.redis_exporter,
            host=host,
            # Redis on the data network, Prometheus on the monitoring one.
            networks=[host.data_network, host.monitoring_network],
            envs=[
                f"REDIS_ADDR=redis://{login.host}:{login.port}",
                f"REDIS_USER={login.username}",
                pulumi.Output.concat("REDIS_PASSWORD=", login.password),
            ],
            # The image is the binary on scratch (no shell, no client): the host's probe checks /health.
            healthcheck=http_check(f"http://localhost:{METRICS_PORT}/health", tool="probe"),
            depends_on=[login.ready],
        )
        self.metrics_target = f"{self.container.alias}:{METRICS_PORT}"
        self.register_outputs({"metrics_target": self.metrics_target})
