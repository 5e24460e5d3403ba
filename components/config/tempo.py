"""Tempo config text: Tempo 2.8 in monolithic mode, traces on a local volume, OTLP in.

Pure function of typed inputs. Written for the 2.x config (distributor, ingester, compactor):
Tempo 3.0 changed it. No Tempo binary installs here, so `tests/components/config/test_tempo.py`
checks the rendered structure against the documented keys.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import yaml

HTTP_PORT = 3200
GRPC_PORT = 9095
OTLP_GRPC_PORT = 4317
OTLP_HTTP_PORT = 4318
CONFIG_PATH = "/etc/tempo/tempo.yaml"
# The image prepares /var/tempo for its non-root user; a fresh volume there inherits that.
DATA_DIR = "/var/tempo"


@dataclass(frozen=True)
class TempoSettings:
    """How long traces are kept."""

    retention: timedelta = timedelta(days=14)

    def __post_init__(self) -> None:
        if self.retention < timedelta(hours=1) or self.retention % timedelta(hours=1):
            raise ValueError(f"retention={self.retention}: give a whole number of hours, at least one")


def tempo_yaml(settings: TempoSettings) -> str:
    retention_hours = int(settings.retention.total_seconds()) // 3600
    document = {
        # Grafana streams TraceQL search results over HTTP when Tempo allows it.
        "stream_over_http_enabled": True,
        "server": {"http_listen_port": HTTP_PORT, "grpc_listen_port": GRPC_PORT, "log_level": "info"},
        "distributor": {"receivers": {"otlp": {"protocols": {
            # Recent Tempo binds receivers to localhost unless told otherwise: unreachable from other containers.
            "grpc": {"endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}"},
            "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}"},
        }}}},
        "compactor": {"compaction": {"block_retention": f"{retention_hours}h"}},
        "storage": {"trace": {
            "backend": "local",
            "wal": {"path": f"{DATA_DIR}/wal"},
            "local": {"path": f"{DATA_DIR}/blocks"},
        }},
        # The monitoring network has no way out: usage reports could only fail.
        "usage_report": {"reporting_enabled": False},
    }
    return "# Rendered by CERES: monolithic Tempo on a local volume.\n" + yaml.safe_dump(document, sort_keys=False)
