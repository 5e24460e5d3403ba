"""OpenTelemetry Collector (contrib): where applications send OTLP; traces go on to Tempo."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import Service
from components.config import otel_collector as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.trace_pipeline import TracePipelineEdge
from components.services.tempo import Tempo
from stacks.spec import StackSpec


class OtelCollector(Service):
    """The collector on the monitoring network; apps send to `otlp_grpc_endpoint` or `otlp_http_endpoint`
    (`receive_from` records which do: the traces-apps edge), and it exports to Tempo (traces-collector)."""

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        tempo: Tempo,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("otel_collector", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.export = TracePipelineEdge("traces-collector", self, tempo)
        service = spec.services.otel_collector
        settings = config.CollectorSettings(memory_mb=service.memory_mb, tempo_otlp_grpc_endpoint=tempo.otlp_grpc_endpoint)
        # No volume: the collector keeps no state (its retry queue is in memory).
        self.container = ServiceContainer(
            self,
            "otel_collector",
            spec=service,
            host=host,
            networks=[host.monitoring_network],
            command=[f"--config={config.CONFIG_PATH}"],
            files={config.CONFIG_PATH: config.collector_yaml(settings)},
            # The image is scratch plus one binary: the host's probe busybox asks the health_check extension.
            healthcheck=http_check(f"http://127.0.0.1:{config.HEALTH_PORT}/", tool="probe", start_period="15s"),
            depends_on=[tempo.container.container],
        )
        self.otlp_grpc_endpoint = f"{self.container.alias}:{config.OTLP_GRPC_PORT}"
        self.otlp_http_endpoint = f"http://{self.container.alias}:{config.OTLP_HTTP_PORT}"
        self.metrics_target = f"{self.container.alias}:{config.METRICS_PORT}"
        self.receive: TracePipelineEdge | None = None
        self.register_outputs({"otlp_grpc_endpoint": self.otlp_grpc_endpoint, "otlp_http_endpoint": self.otlp_http_endpoint})

    def receive_from(self, apps: Sequence[Service]) -> None:
        """The traces-apps edge, once the apps that send to this collector are built."""
        self.receive = TracePipelineEdge("traces-apps", self, self, senders=apps)
