"""Grafana's datasources and dashboards as rendered, checked by the real parsers.

- Every PromQL expression goes through the real `promtool check rules` (Debian's `prometheus`
  package, 2.42; the pinned server is 3.5, which reads every construct used here the same way),
  through the shared `promql_check.promql_problems`, with Grafana's variables replaced by what
  Grafana sends (`$__rate_interval` -> a duration, `$stack` -> the stack).
- Every LogQL expression goes through Grafana's own LogQL grammar, `@grafana/lezer-logql` (what
  Grafana's query editor parses with), run by node; installed once into a cache under the temp dir
  with npm (needs the npm registry).
- The trace-id pattern of Loki's derived field runs in node's RegExp: Grafana applies it in the
  browser, with JavaScript's regular expressions.
- Metric names are those the pinned exporters publish, read in their sources: Prometheus' own
  series (`up`, `scrape_*`); cAdvisor v0.54 (container_* with `--enable_metrics=cpu,memory,network,
  diskIO,oom_event`; spec metrics always); postgres_exporter v0.17 collectors database, locks,
  replication, stat_database and the pg_settings map; redis_exporter v1.75; Caddy 2.x
  `caddy_http_request_duration_seconds` histogram; Uptime Kuma 1.23 `monitor_*`; Tempo
  distributor; Alertmanager notifications.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from components.config import grafana as config
from tests.components.config.promql_check import promql_problems

TIMEOUT = 60
LOGQL_PACKAGE = "@grafana/lezer-logql@0.4.2"
NPM_CACHE = Path(tempfile.gettempdir()) / "ceres-test-node-modules"
STACK = "dev"

FULL = config.DashboardSettings(
    stack=STACK, sources=frozenset(config.DASHBOARD_SOURCES), datasources=frozenset(config.KINDS), replication=True)
MINIMAL = config.DashboardSettings(stack=STACK)

KNOWN_METRICS = {
    "prometheus": {"up", "scrape_duration_seconds", "scrape_samples_scraped"},
    "cadvisor": {
        "container_cpu_usage_seconds_total", "container_memory_working_set_bytes", "container_spec_memory_limit_bytes",
        "container_start_time_seconds", "container_oom_events_total",
        "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
    },
    "postgres_exporter": {
        "pg_up", "pg_stat_database_numbackends", "pg_settings_max_connections", "pg_stat_database_xact_commit",
        "pg_stat_database_xact_rollback", "pg_database_size_bytes", "pg_locks_count", "pg_replication_lag_seconds",
    },
    "redis_exporter": {
        "redis_up", "redis_memory_used_bytes", "redis_memory_max_bytes", "redis_connected_clients",
        "redis_commands_processed_total", "redis_keyspace_hits_total", "redis_keyspace_misses_total",
        "redis_evicted_keys_total",
    },
    "caddy": {"caddy_http_request_duration_seconds_bucket", "caddy_http_request_duration_seconds_count"},
    "uptime_kuma": {"monitor_status", "monitor_response_time"},
    "tempo": {"tempo_distributor_spans_received_total"},
    "alertmanager": {"alertmanager_notifications_failed_total", "alertmanager_notifications_total"},
}
ALL_KNOWN = set().union(*KNOWN_METRICS.values())
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset", "inf", "nan"}


def panels(text: str) -> list[dict]:
    return json.loads(text)["panels"]


def targets(rendered: dict[str, str], kind: str) -> list[str]:
    return [t["expr"] for text in rendered.values() for p in panels(text) for t in p.get("targets", [])
            if t["datasource"]["uid"] == config.UIDS[kind]]


def as_sent(expr: str) -> str:
    """The query as Grafana sends it: its variables replaced."""
    return expr.replace("$__rate_interval", "1m").replace("$stack", STACK)


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords, label
    names (in braces or by/without/on lists) or durations."""
    text = re.sub(r'"[^"]*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text):
        if not match.group(2) and match.group(1) not in PROMQL_WORDS:
            names.add(match.group(1))
    return names


# --- structure ------------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [FULL, MINIMAL], ids=["full", "minimal"])
def test_every_dashboard_is_grafana_12_json_with_a_fixed_uid_and_a_stack_constant(settings):
    for uid, text in config.dashboards(settings).items():
        document = json.loads(text)
        assert document["uid"] == uid and uid.startswith("ceres-")
        assert document["schemaVersion"] == 41
        [variable] = document["templating"]["list"]
        assert (variable["type"], variable["name"], variable["query"]) == ("constant", "stack", STACK)


@pytest.mark.parametrize("settings", [FULL, MINIMAL], ids=["full", "minimal"])
def test_panel_ids_are_unique_and_panels_never_overlap_in_the_24_column_grid(settings):
    for uid, text in config.dashboards(settings).items():
        ids = [p["id"] for p in panels(text)]
        assert len(ids) == len(set(ids)), uid
        cells: set[tuple[int, int]] = set()
        for panel in panels(text):
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["w"] > 0 and grid["x"] + grid["w"] <= 24, (uid, panel["title"])
            mine = {(x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])}
            assert not cells & mine, f"{uid}: {panel['title']!r} overlaps another panel"
            cells |= mine


def test_panels_name_datasources_only_by_the_three_fixed_uids():
    for uid, text in config.dashboards(FULL).items():
        for panel in panels(text):
            if panel["type"] == "row":
                continue
            assert panel["datasource"]["uid"] in config.UIDS.values(), (uid, panel["title"])
            assert panel["targets"], (uid, panel["title"])
            for target in panel["targets"]:
                assert target["datasource"] == panel["datasource"], (uid, panel["title"])


def test_dashboards_of_absent_exporters_are_left_out():
    assert set(config.dashboards(FULL)) == {
        "ceres-service-health", "ceres-integrations", "ceres-containers", "ceres-postgresql", "ceres-redis", "ceres-caddy"}
    assert set(config.dashboards(MINIMAL)) == {"ceres-service-health", "ceres-integrations"}
    only_postgres = config.DashboardSettings(stack=STACK, sources=frozenset({"postgres_exporter"}))
    assert set(config.dashboards(only_postgres)) == {"ceres-service-health", "ceres-integrations", "ceres-postgresql"}


def test_replication_lag_shows_only_with_replicas():
    def titles(settings) -> list[str]:
        return [p["title"] for p in panels(config.dashboards(settings)["ceres-postgresql"])]

    assert "Replication lag" in titles(FULL)
    assert "Replication lag" not in titles(config.DashboardSettings(stack=STACK, sources=frozenset({"postgres_exporter"})))


def test_integration_health_has_a_row_per_edge_kind_with_a_runtime_signal():
    rows = [p["title"].split(":")[0] for p in panels(config.dashboards(FULL)["ceres-integrations"]) if p["type"] == "row"]
    assert rows == ["scrape", "log_shipping", "traces", "alert delivery", "Uptime Kuma monitors"]
    minimal = [p["title"] for p in panels(config.dashboards(MINIMAL)["ceres-integrations"]) if p["type"] == "row"]
    assert minimal == ["scrape: Prometheus collects each service's metrics"]
    assert targets(config.dashboards(FULL), "loki") == ['sum by (service) (count_over_time({stack="$stack"}[5m]))']


@pytest.mark.parametrize("bad,message", [
    ({"stack": ""}, "stack="),
    ({"stack": "dev", "sources": frozenset({"nginx"})}, "sources"),
    ({"stack": "dev", "datasources": frozenset({"loki"})}, "Prometheus"),
])
def test_settings_that_make_no_sense_fail(bad, message):
    with pytest.raises(ValueError, match=message):
        config.DashboardSettings(**bad)


# --- datasources' jsonData ---------------------------------------------------------------------------


def test_links_point_only_at_present_datasources():
    everything = set(config.KINDS)
    assert config.datasource_json_data("loki", everything)["derivedFields"][0]["datasourceUid"] == "ceres-tempo"
    assert "derivedFields" not in config.datasource_json_data("loki", {"loki", "prometheus"})
    tempo = config.datasource_json_data("tempo", {"tempo"})
    assert set(tempo) == {"nodeGraph"}
    with pytest.raises(ValueError, match="elasticsearch"):
        config.datasource_json_data("elasticsearch", everything)


def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail("`node` not found: install the Debian packages `nodejs` and `npm`")
    return path


def test_the_trace_id_pattern_finds_ids_in_javascript_as_grafana_applies_it():
    lines = {
        'level=info msg="Request Completed" traceID=4bf92f3577b34da6a3ce929d0e0e4736 status=200': "4bf92f3577b34da6a3ce929d0e0e4736",
        '{"level":"info","trace_id":"00f067aa0ba902b7","msg":"ok"}': "00f067aa0ba902b7",
        "GET /api/health 200": None,
        "traceID=not-hex": None,
    }
    script = ("const re = new RegExp(process.argv[1]); const lines = JSON.parse(process.argv[2]);"
              "console.log(JSON.stringify(lines.map((l) => { const m = l.match(re); return m ? m[1] : null; })))")
    result = subprocess.run([node(), "-e", script, config.TRACE_ID_PATTERN, json.dumps(list(lines))],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == list(lines.values())


# --- PromQL by promtool ---------------------------------------------------------------------------------


def test_every_promql_expression_parses_in_promtool():
    exprs = sorted({as_sent(e) for e in targets(config.dashboards(FULL), "prometheus")})
    assert len(exprs) > 20
    assert promql_problems(exprs) == []


def test_promtool_does_reject_a_broken_expression():
    [problem] = promql_problems(["sum by (job) (rate(up[5m])"])
    assert "parse error" in problem


def test_dashboards_use_only_metrics_the_pinned_exporters_publish():
    used = set().union(*(metric_names(as_sent(e)) for e in targets(config.dashboards(FULL), "prometheus")))
    assert used - ALL_KNOWN == set()
    assert "pg_replication_lag_seconds" in used and "container_oom_events_total" in used


def test_the_metric_name_reader_sees_through_functions_labels_and_ranges():
    expr = 'sum by (code, host) (rate(caddy_http_request_duration_seconds_count{code=~"5.."}[1m])) / on (x) up'
    assert metric_names(expr) == {"caddy_http_request_duration_seconds_count", "up"}


def test_absent_exporters_leave_no_metric_of_theirs():
    used = set().union(*(metric_names(as_sent(e)) for e in targets(config.dashboards(MINIMAL), "prometheus")))
    assert used <= KNOWN_METRICS["prometheus"]


# --- LogQL by Grafana's grammar ----------------------------------------------------------------------------

LOGQL_CHECK = r"""
const { parser } = require("@grafana/lezer-logql");
const queries = JSON.parse(require("fs").readFileSync(0, "utf8"));
const problems = [];
for (const query of queries) {
    let bad = null;
    parser.parse(query).iterate({ enter: (node) => { if (node.type.isError && bad === null) bad = node.from; } });
    if (bad !== null) problems.push(`${query} (at ${bad})`);
}
console.log(JSON.stringify(problems));
"""


@pytest.fixture(scope="module")
def logql_parser() -> Iterator[Path]:
    """The folder whose node_modules holds Grafana's LogQL grammar."""
    name, _, version = LOGQL_PACKAGE.rpartition("@")
    prefix = NPM_CACHE / f"{name.lstrip('@').replace('/', '-')}-{version}"
    if not (prefix / "node_modules" / name / "package.json").exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("`npm` not found: install the Debian package `npm`")
        prefix.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-save", "--no-package-lock", "--loglevel=error",
             "--prefix", str(prefix), LOGQL_PACKAGE],
            capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 0, f"npm install {LOGQL_PACKAGE} failed (needs the npm registry):\n{result.stderr}"
    yield prefix


def logql_problems(parser_dir: Path, queries: list[str]) -> list[str]:
    result = subprocess.run([node(), "-e", LOGQL_CHECK], input=json.dumps(queries), cwd=parser_dir,
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_logql_expression_parses_in_grafanas_grammar(logql_parser: Path):
    queries = [as_sent(q) for q in targets(config.dashboards(FULL), "loki")]
    assert queries
    assert logql_problems(logql_parser, queries) == []


def test_the_grammar_does_reject_a_broken_query(logql_parser: Path):
    assert logql_problems(logql_parser, ['sum by (service) (count_over_time({stack="dev"[5m]))'])
