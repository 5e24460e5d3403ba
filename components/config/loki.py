"""Loki config text: one single-binary Loki 3.5 on a local volume, with retention and a log ruler.

Pure functions of typed inputs. No Loki binary installs from Debian or PyPI, so
`tests/components/config/test_loki.py` checks the rendered structure against the documented keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

import yaml

HTTP_PORT = 3100
GRPC_PORT = 9096
CONFIG_PATH = "/etc/loki/loki.yaml"
# Chunks, TSDB index, compactor state and the ruler's scratch space: all on the service's volume.
# The image prepares /loki for its non-root user (10001); a fresh volume there inherits that.
DATA_DIR = "/loki"
# Rule files live in the container image layer, not on the volume: a rule dropped from the config
# disappears with the next container instead of lingering on disk.
RULES_DIR = "/etc/loki/rules"
# With auth off, Loki files everything under the tenant "fake": the ruler reads RULES_DIR/fake/*.yaml.
TENANT = "fake"
TENANT_RULES_DIR = f"{RULES_DIR}/{TENANT}"
# The one schema period so far. Never edit it: a schema change appends an entry from a future date.
SCHEMA_FROM = "2025-01-01"
INDEX_PERIOD = timedelta(hours=24)

# Enough for a small company's containers (a few hundred streams, bursts at deploy time),
# small enough that one chatty container cannot starve the others or exhaust Loki's memory.
INGESTION_RATE_MB = 8
INGESTION_BURST_MB = 16
PER_STREAM_RATE = "3MB"
PER_STREAM_BURST = "15MB"
MAX_STREAMS = 5000
MAX_QUERY_SERIES = 1000
MAX_ENTRIES_PER_QUERY = 5000
OLDEST_ACCEPTED = "168h"

# The ruler's local store fails to list rules when its directory is missing; this file is what
# creates the directory before any rule exists.
RULES_README = f"""\
Loki log alert rules (rendered by CERES).
Put one Prometheus-style rule file (groups: ...) per namespace in {TENANT_RULES_DIR}/.
"""


def _hours(period: timedelta) -> str:
    """A Go duration Loki accepts everywhere (`d` is not a Go unit)."""
    return f"{int(period.total_seconds()) // 3600}h"


@dataclass(frozen=True)
class LokiSettings:
    """How long logs are kept, and where the ruler sends alerts (none: rules evaluate, nobody is told)."""

    retention: timedelta = timedelta(days=30)
    alertmanager_url: str | None = None

    def __post_init__(self) -> None:
        if self.retention < INDEX_PERIOD or self.retention % INDEX_PERIOD:
            raise ValueError(f"retention={self.retention}: Loki deletes whole index periods, give a whole number of days")
        if self.alertmanager_url is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", self.alertmanager_url):
            raise ValueError(f"alertmanager_url={self.alertmanager_url!r}: give an http(s) URL, e.g. http://alertmanager:9093")


def loki_yaml(settings: LokiSettings) -> str:
    retention = _hours(settings.retention)
    ruler: dict = {
        "storage": {"type": "local", "local": {"directory": RULES_DIR}},
        "rule_path": f"{DATA_DIR}/rules-temp",
        # Read-only with local storage: lets Grafana list the log alert rules.
        "enable_api": True,
    }
    if settings.alertmanager_url:
        # Alertmanager 0.27+ serves only the v2 API.
        ruler |= {"alertmanager_url": settings.alertmanager_url, "enable_alertmanager_v2": True}
    document = {
        "auth_enabled": False,
        "server": {"http_listen_port": HTTP_PORT, "grpc_listen_port": GRPC_PORT, "log_level": "info"},
        "common": {
            "path_prefix": DATA_DIR,
            "replication_factor": 1,
            # One process: the rings live in memory and point at itself.
            "ring": {"instance_addr": "127.0.0.1", "kvstore": {"store": "inmemory"}},
            # The same rules directory as the ruler's own storage, so either source Loki derives agrees.
            "storage": {"filesystem": {"chunks_directory": f"{DATA_DIR}/chunks", "rules_directory": RULES_DIR}},
        },
        "schema_config": {"configs": [{
            "from": SCHEMA_FROM,
            "store": "tsdb",
            "object_store": "filesystem",
            "schema": "v13",
            "index": {"prefix": "index_", "period": _hours(INDEX_PERIOD)},
        }]},
        "compactor": {
            "working_directory": f"{DATA_DIR}/compactor",
            "compaction_interval": "10m",
            "retention_enabled": True,
            "retention_delete_delay": "2h",
            # Loki 3 refuses retention without a store for delete requests.
            "delete_request_store": "filesystem",
        },
        "limits_config": {
            "retention_period": retention,
            "max_query_lookback": retention,
            "ingestion_rate_mb": INGESTION_RATE_MB,
            "ingestion_burst_size_mb": INGESTION_BURST_MB,
            "per_stream_rate_limit": PER_STREAM_RATE,
            "per_stream_rate_limit_burst": PER_STREAM_BURST,
            "max_global_streams_per_user": MAX_STREAMS,
            "max_query_series": MAX_QUERY_SERIES,
            "max_entries_limit_per_query": MAX_ENTRIES_PER_QUERY,
            "reject_old_samples": True,
            "reject_old_samples_max_age": OLDEST_ACCEPTED,
        },
        "ruler": ruler,
        # The monitoring network has no way out: usage reports could only fail.
        "analytics": {"reporting_enabled": False},
    }
    return "# Rendered by CERES: single-binary Loki on a local volume.\n" + yaml.safe_dump(document, sort_keys=False)
