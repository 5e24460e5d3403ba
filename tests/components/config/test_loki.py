"""The rendered Loki config, checked against the documented keys of Loki 3.5.

No Loki binary is installable here (Debian's `loki` is a genetics package; PyPI and npm ship no
Loki server), so `loki -verify-config` cannot run: the YAML is parsed and compared with the
reference instead. Sources read for the key tables and the facts asserted:

- Loki configuration reference, grafana/loki `docs/sources/shared/configuration.md`
  ("Supported contents and default values of loki.yaml"; the stored copy is newer than 3.5, so
  only keys that exist since 3.0 are listed here).
- Loki 3.x source (`github.com/grafana/loki/v3`): `pkg/compactor/compactor.go` Config,
  `pkg/validation/limits.go` Limits, `pkg/ruler/config` AlertManagerConfig and the ruler Config
  (`enable_alertmanager_v2` still exists in 3.x), `pkg/ruler/rulestore/local/local.go` (the local
  rule store lists tenants as the directories of its root, and fails if the root is missing).
- Loki 3 upgrade notes: retention needs `compactor.delete_request_store`; schema v13 needs tsdb.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import yaml

from components.config.loki import (
    DATA_DIR,
    RULES_DIR,
    RULES_README,
    TENANT,
    TENANT_RULES_DIR,
    LokiSettings,
    loki_yaml,
)

TOP_LEVEL = {
    "target", "auth_enabled", "ballast_bytes", "server", "distributor", "querier", "query_scheduler",
    "frontend", "query_range", "ruler", "ingester_client", "ingester", "pattern_ingester", "index_gateway",
    "bloom_build", "bloom_gateway", "storage_config", "chunk_store_config", "schema_config", "compactor",
    "limits_config", "frontend_worker", "table_manager", "memberlist", "kafka_config", "runtime_config",
    "operational_config", "tracing", "analytics", "profiling", "common", "shutdown_delay", "metrics_namespace",
}
# Second-level keys of the blocks the rendered config uses (a subset of each documented block).
BLOCK_KEYS = {
    "server": {
        "http_listen_network", "http_listen_address", "http_listen_port", "grpc_listen_network",
        "grpc_listen_address", "grpc_listen_port", "log_level", "log_format", "graceful_shutdown_timeout",
        "http_server_read_timeout", "http_server_write_timeout", "http_server_idle_timeout",
        "grpc_server_max_recv_msg_size", "grpc_server_max_send_msg_size", "register_instrumentation",
        "http_path_prefix",
    },
    "common": {
        "path_prefix", "storage", "persist_tokens", "replication_factor", "ring", "instance_interface_names",
        "instance_addr", "compactor_address", "compactor_grpc_address",
    },
    "schema_config": {"configs"},
    "compactor": {
        "working_directory", "compaction_interval", "apply_retention_interval", "retention_enabled",
        "retention_delete_delay", "retention_delete_worker_count", "retention_table_timeout",
        "delete_request_store", "delete_request_store_key_prefix", "delete_batch_size",
        "delete_request_cancel_period", "delete_max_interval", "max_compaction_parallelism",
        "upload_parallelism", "compactor_ring",
    },
    "limits_config": {
        "ingestion_rate_strategy", "ingestion_rate_mb", "ingestion_burst_size_mb", "max_label_name_length",
        "max_label_value_length", "max_label_names_per_series", "reject_old_samples",
        "reject_old_samples_max_age", "creation_grace_period", "max_line_size", "max_line_size_truncate",
        "increment_duplicate_timestamp", "discover_service_name", "discover_log_levels",
        "max_streams_per_user", "max_global_streams_per_user", "unordered_writes", "per_stream_rate_limit",
        "per_stream_rate_limit_burst", "max_chunks_per_query", "max_query_series", "max_query_lookback",
        "max_query_length", "max_query_range", "max_query_parallelism", "tsdb_max_query_parallelism",
        "cardinality_limit", "max_streams_matchers_per_query", "max_concurrent_tail_requests",
        "max_entries_limit_per_query", "max_cache_freshness_per_query", "split_queries_by_interval",
        "query_timeout", "volume_enabled", "retention_period", "retention_stream", "allow_structured_metadata",
    },
    "ruler": {
        "external_url", "external_labels", "evaluation_interval", "poll_interval", "storage", "rule_path",
        "alertmanager_url", "enable_alertmanager_discovery", "alertmanager_refresh_interval",
        "enable_alertmanager_v2", "alert_relabel_configs", "notification_queue_capacity",
        "notification_timeout", "alertmanager_client", "for_outage_tolerance", "for_grace_period",
        "resend_delay", "enable_sharding", "sharding_strategy", "search_pending_for", "ring", "flush_period",
        "enable_api", "enabled_tenants", "disabled_tenants", "wal", "wal_cleaner", "remote_write", "evaluation",
    },
    "analytics": {"reporting_enabled", "proxy_url", "usage_stats_url"},
}
COMMON_STORAGE_FILESYSTEM = {"chunks_directory", "rules_directory"}
COMMON_RING = {"kvstore", "heartbeat_period", "heartbeat_timeout", "instance_addr", "instance_port",
               "instance_id", "instance_interface_names", "zone_awareness_enabled"}
SCHEMA_ENTRY = {"from", "store", "object_store", "schema", "index", "chunks", "row_shards"}
RULER_STORAGE = {"type", "local", "s3", "gcs", "azure", "swift", "bos", "cos", "alibabacloud"}
# Durations Loki parses with Go's time.ParseDuration (no `d`), and flagext byte sizes.
GO_DURATION = re.compile(r"^\d+(ns|us|ms|s|m|h)$")
BYTE_SIZE = re.compile(r"^\d+(B|KB|MB|GB)$")


def render(**settings) -> dict:
    text = loki_yaml(LokiSettings(**settings))
    return yaml.safe_load(text)


def test_only_documented_keys_are_used():
    config = render(alertmanager_url="http://alertmanager:9093")
    assert set(config) <= TOP_LEVEL, set(config) - TOP_LEVEL
    for block, allowed in BLOCK_KEYS.items():
        if block in config:
            assert set(config[block]) <= allowed, f"{block}: {set(config[block]) - allowed}"
    assert set(config["common"]["storage"]) == {"filesystem"}
    assert set(config["common"]["storage"]["filesystem"]) <= COMMON_STORAGE_FILESYSTEM
    assert set(config["common"]["ring"]) <= COMMON_RING
    for entry in config["schema_config"]["configs"]:
        assert set(entry) <= SCHEMA_ENTRY
    assert set(config["ruler"]["storage"]) <= RULER_STORAGE


def test_single_binary_without_auth_on_the_filesystem():
    config = render()
    assert config["auth_enabled"] is False
    assert config.get("target", "all") == "all"
    assert config["server"]["http_listen_port"] == 3100
    assert config["common"]["replication_factor"] == 1
    assert config["common"]["ring"]["kvstore"]["store"] == "inmemory"
    assert config["common"]["path_prefix"] == DATA_DIR
    assert config["common"]["storage"]["filesystem"]["chunks_directory"].startswith(DATA_DIR + "/")


def test_schema_is_one_tsdb_v13_period_that_never_moves():
    [entry] = render()["schema_config"]["configs"]
    assert entry["store"] == "tsdb" and entry["schema"] == "v13" and entry["object_store"] == "filesystem"
    assert entry["index"] == {"prefix": "index_", "period": "24h"}
    # A date string, not a YAML timestamp, and the same on every render.
    assert isinstance(entry["from"], str) and re.match(r"^\d{4}-\d{2}-\d{2}$", entry["from"])
    assert entry["from"] == render(alertmanager_url="http://alertmanager:9093")["schema_config"]["configs"][0]["from"]


@pytest.mark.parametrize("days", [1, 7, 30, 400])
def test_retention_is_enforced_by_the_compactor(days):
    config = render(retention=timedelta(days=days))
    compactor, limits = config["compactor"], config["limits_config"]
    assert compactor["retention_enabled"] is True
    # Loki 3 refuses retention without it.
    assert compactor["delete_request_store"] == "filesystem"
    assert compactor["working_directory"].startswith(DATA_DIR + "/")
    assert limits["retention_period"] == f"{days * 24}h"
    assert limits["max_query_lookback"] == limits["retention_period"]


@pytest.mark.parametrize("retention", [timedelta(hours=36), timedelta(0), timedelta(hours=12), timedelta(days=-1)])
def test_fails_on_a_retention_that_is_not_whole_index_periods(retention):
    with pytest.raises(ValueError, match="whole number of days"):
        LokiSettings(retention=retention)


def test_durations_and_sizes_are_in_the_units_loki_parses():
    config = render(alertmanager_url="http://alertmanager:9093")
    durations = [config["compactor"][k] for k in ("compaction_interval", "retention_delete_delay")]
    durations += [config["limits_config"][k] for k in ("retention_period", "max_query_lookback", "reject_old_samples_max_age")]
    assert all(GO_DURATION.match(value) for value in durations), durations
    sizes = [config["limits_config"][k] for k in ("per_stream_rate_limit", "per_stream_rate_limit_burst")]
    assert all(BYTE_SIZE.match(value) for value in sizes), sizes


def test_limits_hold_back_one_noisy_container():
    limits = render()["limits_config"]
    assert 0 < limits["ingestion_rate_mb"] <= limits["ingestion_burst_size_mb"]
    # One stream may never take the whole tenant's rate.
    assert int(limits["per_stream_rate_limit"].removesuffix("MB")) < limits["ingestion_rate_mb"]
    assert limits["reject_old_samples"] is True
    assert limits["max_global_streams_per_user"] > 0 and limits["max_query_series"] > 0


def test_ruler_reads_local_rules_from_the_directory_the_service_fills():
    ruler = render()["ruler"]
    common_rules = render()["common"]["storage"]["filesystem"]["rules_directory"]
    assert ruler["storage"] == {"type": "local", "local": {"directory": RULES_DIR}}
    assert common_rules == RULES_DIR, "both places Loki may take the rules directory from must agree"
    assert ruler["rule_path"].startswith(DATA_DIR + "/"), "the ruler's scratch space must be writable"
    assert ruler["enable_api"] is True
    # auth off -> tenant "fake": the local store expects RULES_DIR/<tenant>/<namespace file>.
    assert TENANT == "fake" and TENANT_RULES_DIR == f"{RULES_DIR}/fake"
    assert TENANT_RULES_DIR in RULES_README


def test_rules_directory_is_created_without_inventing_a_rule(tmp_path):
    # The service uploads RULES_DIR/README: a plain file, which the local store skips when it
    # lists tenant directories, so the ruler starts with the directory present and no rules.
    (tmp_path / "README").write_text(RULES_README)
    tenants = [entry.name for entry in tmp_path.iterdir() if entry.is_dir()]
    assert tenants == []
    assert "groups:" in RULES_README and "alert" in RULES_README.lower()


def test_alertmanager_only_when_given():
    assert "alertmanager_url" not in render()["ruler"]
    ruler = render(alertmanager_url="http://alertmanager:9093")["ruler"]
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"
    # Alertmanager 0.28 (the pinned one) serves only the v2 API.
    assert ruler["enable_alertmanager_v2"] is True


@pytest.mark.parametrize("url", ["alertmanager:9093", "ftp://alertmanager", "http://", "http://a b"])
def test_fails_on_an_alertmanager_url_that_is_not_http(url):
    with pytest.raises(ValueError, match="alertmanager_url"):
        LokiSettings(alertmanager_url=url)


def test_usage_reporting_is_off_and_the_text_says_who_wrote_it():
    text = loki_yaml(LokiSettings())
    assert text.startswith("# Rendered by CERES")
    assert yaml.safe_load(text)["analytics"] == {"reporting_enabled": False}
