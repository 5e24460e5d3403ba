"""OpenTelemetry Collector config text: OTLP in, traces batched and forwarded to Tempo.

Pure function of typed inputs, for the contrib distribution 0.132. No collector binary installs
here, so `tests/components/config/test_otel_collector.py` checks the rendered structure against the
documented components and keys. Only the traces pipeline exists: nothing consumes logs or metrics
from the collector yet, and a pipeline with no real destination would be dead weight.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
HEALTH_PORT = 13133
# The collector's own telemetry (queue sizes, refused and exported spans), for Prometheus.
METRICS_PORT = 8888
CONFIG_PATH = "/etc/otelcol-contrib/config.yaml"
# The collector refuses data once its heap nears this share of the container's limit instead of
# being killed by it. Upstream's memory_limiter notes: the process runs about 50 MiB above
# `limit_mib`, and a spike allowance of a fifth of the limit suits bursts between checks.
MEMORY_LIMIT_SHARE = 0.8
RUNTIME_OVERHEAD_MIB = 50
SPIKE_SHARE = 0.2


@dataclass(frozen=True)
class CollectorSettings:
    memory_mb: int
    tempo_otlp_grpc_endpoint: str

    def __post_init__(self) -> None:
        if self.memory_mb < 128:
            raise ValueError(f"memory_mb={self.memory_mb}: the collector needs at least 128 (about 50 of it is runtime)")
        if not re.match(r"^[a-z0-9.-]+:\d{1,5}$", self.tempo_otlp_grpc_endpoint):
            raise ValueError(f"tempo_otlp_grpc_endpoint={self.tempo_otlp_grpc_endpoint!r}: give host:port, e.g. tempo:4317")

    @property
    def limit_mib(self) -> int:
        return min(int(self.memory_mb * MEMORY_LIMIT_SHARE), self.memory_mb - RUNTIME_OVERHEAD_MIB)

    @property
    def spike_limit_mib(self) -> int:
        return int(self.limit_mib * SPIKE_SHARE)


def collector_yaml(settings: CollectorSettings) -> str:
    document = {
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}},
        "receivers": {"otlp": {"protocols": {
            # The collector listens on localhost unless told otherwise: unreachable from other containers.
            "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
            "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
        }}},
        "processors": {
            "memory_limiter": {
                "check_interval": "1s",
                "limit_mib": settings.limit_mib,
                "spike_limit_mib": settings.spike_limit_mib,
            },
            "batch": {},
        },
        "exporters": {"otlp": {
            "endpoint": settings.tempo_otlp_grpc_endpoint,
            # Plain gRPC on the internal monitoring network; nothing outside it can reach Tempo.
            "tls": {"insecure": True},
        }},
        "service": {
            "extensions": ["health_check"],
            # Since 0.123 the internal metrics bind to localhost unless given a reader with a host.
            "telemetry": {"metrics": {"readers": [{"pull": {"exporter": {"prometheus": {
                "host": "0.0.0.0", "port": METRICS_PORT,
            }}}}]}},
            "pipelines": {"traces": {
                "receivers": ["otlp"],
                # memory_limiter first, so an overloaded collector refuses data before batching it.
                "processors": ["memory_limiter", "batch"],
                "exporters": ["otlp"],
            }},
        },
    }
    return "# Rendered by CERES: OTLP traces to Tempo.\n" + yaml.safe_dump(document, sort_keys=False)
