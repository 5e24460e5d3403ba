"""Tempo: the platform's trace store, monolithic, traces on its own volume."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.config import tempo as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from stacks.spec import StackSpec


class Tempo(Service):
    """Tempo on the monitoring network: OTLP in at `otlp_grpc_endpoint`, Grafana reads `internal_url`."""

    HTTP_PORT = config.HTTP_PORT

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("tempo", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.container = ServiceContainer(
            self,
            "tempo",
            spec=spec.services.tempo,
            host=host,
            networks=[host.monitoring_network],
            command=[f"-config.file={config.CONFIG_PATH}"],
            volumes={"tempo-data": config.DATA_DIR},
            files={config.CONFIG_PATH: config.tempo_yaml(config.TempoSettings())},
            # Recent Tempo images are distroless (no shell or HTTP client on the PATH): the host's
            # probe busybox asks /ready, 200 once the ingester has joined its ring.
            healthcheck=http_check(f"http://127.0.0.1:{config.HTTP_PORT}/ready", tool="probe", start_period="60s"),
        )
        self.otlp_grpc_endpoint = f"{self.container.alias}:{config.OTLP_GRPC_PORT}"
        self.metrics_target = self.upstream
        self.register_outputs({"internal_url": self.internal_url, "otlp_grpc_endpoint": self.otlp_grpc_endpoint})
