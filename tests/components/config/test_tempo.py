"""The rendered Tempo config, checked against the documented keys of Tempo 2.8 (monolithic).

No Tempo binary is installable here (Debian, PyPI and npm ship none), so `tempo
-config.verify=true` cannot run: the YAML is parsed and compared with the reference instead.
Sources read for the key tables and the facts asserted:

- Tempo configuration manifest, grafana.com/docs/tempo/v2.7.x/configuration/manifest (the full
  2.x config with defaults: top-level blocks, `server`, `distributor.receivers`, `compactor.compaction`,
  `storage.trace` with `backend`, `wal.path`, `local.path`, `usage_report`).
- grafana/tempo `example/docker-compose/local/tempo.yaml` at v2.8.0 (monolithic local storage,
  `stream_over_http_enabled`, OTLP receivers under `distributor.receivers.otlp.protocols`).
- Tempo 3.0 dropped the ingester/compactor layout: this config is for 2.x only. Recent Tempo binds
  receivers to localhost by default (shared/docs/INTEGRATION_FACTS.md), hence explicit 0.0.0.0.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml

from components.config.tempo import DATA_DIR, HTTP_PORT, TempoSettings, tempo_yaml

TOP_LEVEL = {
    "target", "http_api_prefix", "stream_over_http_enabled", "multitenancy_enabled", "server",
    "internal_server", "distributor", "ingester_client", "metrics_generator_client", "querier",
    "query_frontend", "compactor", "ingester", "metrics_generator", "storage", "overrides", "memberlist",
    "usage_report", "cache",
}
BLOCK_KEYS = {
    "server": {"http_listen_network", "http_listen_address", "http_listen_port", "grpc_listen_network",
               "grpc_listen_address", "grpc_listen_port", "log_level", "log_format", "graceful_shutdown_timeout"},
    "distributor": {"receivers", "log_received_spans", "log_discarded_spans", "metric_received_spans",
                    "forwarders", "extend_writes", "ring"},
    "compactor": {"compaction", "ring", "disable_compaction"},
    "storage": {"trace"},
    "usage_report": {"reporting_enabled", "backoff"},
}
COMPACTION = {"block_retention", "compacted_block_retention", "compaction_window", "max_compaction_objects",
              "max_block_bytes", "retention_concurrency", "max_time_per_tenant", "compaction_cycle"}
TRACE_STORAGE = {"backend", "wal", "local", "block", "pool", "blocklist_poll", "search", "cache", "s3", "gcs", "azure"}
GO_DURATION = re.compile(r"^\d+(ns|us|ms|s|m|h)$")


def render(**settings) -> dict:
    return yaml.safe_load(tempo_yaml(TempoSettings(**settings)))


def test_only_documented_keys_are_used():
    config = render()
    assert set(config) <= TOP_LEVEL, set(config) - TOP_LEVEL
    for block, allowed in BLOCK_KEYS.items():
        assert set(config[block]) <= allowed, f"{block}: {set(config[block]) - allowed}"
    assert set(config["compactor"]["compaction"]) <= COMPACTION
    assert set(config["storage"]["trace"]) <= TRACE_STORAGE
    # 2.x layout, not Tempo 3's.
    assert "live_store" not in config and "block_builder" not in config


def test_otlp_receivers_listen_on_every_interface_of_the_container():
    protocols = render()["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols == {"grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"}}


def test_http_api_on_3200_where_the_healthcheck_asks():
    assert render()["server"]["http_listen_port"] == HTTP_PORT == 3200


def test_traces_and_wal_on_the_volume():
    trace = render()["storage"]["trace"]
    assert trace["backend"] == "local"
    assert trace["wal"]["path"].startswith(DATA_DIR + "/")
    assert trace["local"]["path"].startswith(DATA_DIR + "/")
    assert trace["wal"]["path"] != trace["local"]["path"]


@pytest.mark.parametrize(("retention", "rendered"), [
    (timedelta(days=14), "336h"), (timedelta(days=1), "24h"), (timedelta(hours=6), "6h"),
])
def test_retention_is_a_go_duration(retention, rendered):
    value = render(retention=retention)["compactor"]["compaction"]["block_retention"]
    assert value == rendered and GO_DURATION.match(value)


@pytest.mark.parametrize("retention", [timedelta(0), timedelta(minutes=90), timedelta(hours=-1)])
def test_fails_on_a_retention_that_is_not_whole_hours(retention):
    with pytest.raises(ValueError, match="whole number of hours"):
        TempoSettings(retention=retention)


def test_usage_reporting_is_off_and_grafana_can_stream():
    config = render()
    assert config["usage_report"] == {"reporting_enabled": False}
    assert config["stream_over_http_enabled"] is True
