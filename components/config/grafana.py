"""Grafana config as data: the datasources' fixed uids and jsonData, and the CERES dashboards.

Pure functions of typed inputs, no Pulumi import. Dashboards name datasources only by the fixed
uids below, so they survive a datasource being re-created, and Grafana links traces and logs
through the same uids: Loki's derived field opens a trace id in Tempo, Tempo opens a span's logs
in Loki and its service map from Prometheus, Prometheus' exemplars open their trace in Tempo.

Written for Grafana 12 (dashboard `schemaVersion` 41; datasource jsonData keys as Grafana's
Prometheus, Loki and Tempo datasource plugins read them). Every PromQL expression goes through
the real `promtool` and every LogQL one through Grafana's own LogQL grammar in
`tests/components/config/test_grafana_dashboards.py`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Collection, Iterable

KINDS: tuple[str, ...] = ("prometheus", "loki", "tempo")
UIDS: dict[str, str] = {kind: f"ceres-{kind}" for kind in KINDS}
NAMES: dict[str, str] = {"prometheus": "Prometheus", "loki": "Loki", "tempo": "Tempo"}
# Grafana 12.0/12.1's dashboard schema: Grafana migrates older JSON on load, never newer.
SCHEMA_VERSION = 41
FOLDER_UID = "ceres"
FOLDER_TITLE = "CERES"

# A trace id in a log line, as `traceID=...` (logfmt: Grafana, Tempo, Loki), `trace_id=...` or
# `"trace_id":"..."` (OpenTelemetry SDKs, JSON logs); 16 or 32 hex digits.
TRACE_ID_PATTERN = r"""(?:traceID|trace_id|traceId)["']?\s*[=:]\s*["']?([0-9a-fA-F]{32}|[0-9a-fA-F]{16})\b"""
# Exemplar labels that carry a trace id: OpenTelemetry's, and Grafana's own.
EXEMPLAR_TRACE_LABELS: tuple[str, ...] = ("trace_id", "traceID")
# Loki label -> the span's resource attribute holding the same value (Alloy labels each log line
# with the container's `service`; OTLP apps name themselves in `service.name`).
TRACE_TO_LOG_TAGS: dict[str, str] = {"service": "service.name"}


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"datasource kind {kind!r}: use one of {', '.join(KINDS)}")


def datasource_type(kind: str) -> str:
    """Grafana's plugin id for the kind (the same word for all three)."""
    _check_kind(kind)
    return kind


def datasource_json_data(kind: str, present: Collection[str], *, scrape_interval: str = "30s") -> dict[str, Any]:
    """The datasource's jsonData. `present` are the kinds Grafana has: links go only to those,
    so no link points at a datasource that does not exist."""
    _check_kind(kind)
    unknown = set(present) - set(KINDS)
    if unknown:
        raise ValueError(f"present datasources {sorted(unknown)}: use some of {', '.join(KINDS)}")
    if kind == "prometheus":
        return _prometheus(present, scrape_interval)
    if kind == "loki":
        return _loki(present)
    return _tempo(present)


def _prometheus(present: Collection[str], scrape_interval: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        # Long PromQL (dashboards' regexes) does not fit in a GET URL.
        "httpMethod": "POST",
        "prometheusType": "Prometheus",
        # The smallest step worth asking for: one sample per scrape.
        "timeInterval": scrape_interval,
    }
    if "tempo" in present:
        data["exemplarTraceIdDestinations"] = [
            {"name": label, "datasourceUid": UIDS["tempo"]} for label in EXEMPLAR_TRACE_LABELS
        ]
    return data


def _loki(present: Collection[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"maxLines": 1000}
    if "tempo" in present:
        data["derivedFields"] = [{
            "name": "TraceID",
            "matcherType": "regex",
            "matcherRegex": TRACE_ID_PATTERN,
            # With a datasource uid the url is the query: the captured id, opened in Tempo.
            "url": "${__value.raw}",
            "datasourceUid": UIDS["tempo"],
            "urlDisplayLabel": "Open trace in Tempo",
        }]
    return data


def _tempo(present: Collection[str]) -> dict[str, Any]:
    data: dict[str, Any] = {"nodeGraph": {"enabled": True}}
    if "loki" in present:
        data["tracesToLogsV2"] = {
            "datasourceUid": UIDS["loki"],
            # Log lines are stamped a little before or after the span by the shipper.
            "spanStartTimeShift": "-5m",
            "spanEndTimeShift": "5m",
            "tags": [{"key": attribute, "value": label} for label, attribute in TRACE_TO_LOG_TAGS.items()],
            "filterByTraceID": True,
            "filterBySpanID": False,
        }
        data["lokiSearch"] = {"datasourceUid": UIDS["loki"]}
    if "prometheus" in present:
        # Tempo's metrics-generator service-graph series, once it writes them to Prometheus.
        data["serviceMap"] = {"datasourceUid": UIDS["prometheus"]}
    return data


# --- dashboards -----------------------------------------------------------------------------------

# Services whose metrics a dashboard reads, by the scrape job (= service name) that brings them.
DASHBOARD_SOURCES: tuple[str, ...] = (
    "cadvisor", "postgres_exporter", "redis_exporter", "caddy", "uptime_kuma", "alertmanager", "tempo",
)


@dataclass(frozen=True)
class DashboardSettings:
    """`stack` filters the series of this stack where a metric carries it (cAdvisor's container
    label, Loki's `stack` label). `sources` are the services of DASHBOARD_SOURCES that run and are
    scraped; `datasources` the kinds Grafana has. `replication`: PostgreSQL has replicas (HA)."""

    stack: str
    sources: frozenset[str] = frozenset()
    datasources: frozenset[str] = frozenset({"prometheus"})
    replication: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", frozenset(self.sources))
        object.__setattr__(self, "datasources", frozenset(self.datasources))
        if not self.stack or not self.stack.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"stack={self.stack!r}: give the stack's name (letters, digits, '-', '_')")
        if unknown := self.sources - set(DASHBOARD_SOURCES):
            raise ValueError(f"sources {sorted(unknown)}: use some of {', '.join(DASHBOARD_SOURCES)}")
        if unknown := self.datasources - set(KINDS):
            raise ValueError(f"datasources {sorted(unknown)}: use some of {', '.join(KINDS)}")
        if "prometheus" not in self.datasources:
            raise ValueError("dashboards read Prometheus: give it in datasources")


RATE = "$__rate_interval"
# cAdvisor keeps the CERES container labels (components/services/cadvisor.py): series of this stack.
CONTAINERS = 'container_label_io_ceres_stack="$stack", container_label_io_ceres_service!=""'
BY_SERVICE = "container_label_io_ceres_service"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""
    kind: str = "prometheus"


@dataclass(frozen=True)
class Panel:
    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    type: str = "timeseries"
    description: str = ""
    width: int = 12
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


def _q(expr: str, legend: str = "") -> Query:
    return Query(expr, legend)


def _datasource(kind: str) -> dict[str, str]:
    return {"type": datasource_type(kind), "uid": UIDS[kind]}


def _target(query: Query, ref: str) -> dict[str, Any]:
    target: dict[str, Any] = {"refId": ref, "datasource": _datasource(query.kind), "expr": query.expr}
    if query.legend:
        target["legendFormat"] = query.legend
    if query.kind == "loki":
        target["queryType"] = "range"
    return target


def _panel_json(panel: Panel, panel_id: int, x: int, y: int, height: int) -> dict[str, Any]:
    kinds = {query.kind for query in panel.queries}
    if len(kinds) != 1:
        raise ValueError(f"panel {panel.title!r}: one datasource per panel")
    return {
        "id": panel_id,
        "type": panel.type,
        "title": panel.title,
        "description": panel.description,
        "gridPos": {"h": height, "w": panel.width, "x": x, "y": y},
        "datasource": _datasource(kinds.pop()),
        "targets": [_target(query, chr(ord("A") + i)) for i, query in enumerate(panel.queries)],
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}
        if panel.type == "timeseries" else {},
        **panel.extra,
    }


PANEL_HEIGHT = 8
GRID_WIDTH = 24


def _layout(rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Rows one under another, panels left to right wrapping at the grid's 24 columns; ids count up."""
    panels: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        panels.append({"id": len(panels) + 1, "type": "row", "title": row.title, "collapsed": False,
                       "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y}, "panels": []})
        y += 1
        x = 0
        for panel in row.panels:
            if x + panel.width > GRID_WIDTH:
                x, y = 0, y + PANEL_HEIGHT
            panels.append(_panel_json(panel, len(panels) + 1, x, y, PANEL_HEIGHT))
            x += panel.width
        y += PANEL_HEIGHT
    return panels


def _dashboard(uid: str, title: str, settings: DashboardSettings, rows: Iterable[Row]) -> str:
    document = {
        "uid": uid,
        "title": title,
        "tags": ["ceres"],
        "timezone": "browser",
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "time": {"from": "now-6h", "to": "now"},
        "refresh": "1m",
        "templating": {"list": [{
            # A hidden constant: queries say $stack, the dashboard is this stack's.
            "type": "constant", "name": "stack", "hide": 2, "query": settings.stack,
            "current": {"text": settings.stack, "value": settings.stack},
        }]},
        "annotations": {"list": []},
        "panels": _layout(rows),
    }
    return json.dumps(document, indent=2, sort_keys=True)


def _stat(title: str, query: Query, unit: str = "short", mappings: list[dict[str, Any]] | None = None) -> Panel:
    extra = {"options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                         "colorMode": "background", "graphMode": "none"}}
    if mappings:
        extra["fieldConfig"] = {"defaults": {"unit": unit, "mappings": mappings}, "overrides": []}
    return Panel(title, (query,), unit=unit, type="stat", extra=extra)


UP_DOWN = [{"type": "value", "options": {"0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"}}}]


def _uptime_kuma_row() -> Row:
    return Row("Uptime Kuma monitors", (
        _stat("Monitor status", _q("monitor_status", "{{monitor_name}}"),
              mappings=[{"type": "value", "options": {
                  "0": {"text": "DOWN", "color": "red"}, "1": {"text": "UP", "color": "green"},
                  "2": {"text": "PENDING", "color": "yellow"}, "3": {"text": "MAINTENANCE", "color": "blue"}}}]),
        Panel("Response time", (_q("monitor_response_time", "{{monitor_name}}"),), unit="ms"),
    ))


def _service_health(settings: DashboardSettings) -> str:
    rows = [Row("Scrape targets", (
        _stat("Targets up", _q("up", "{{job}} {{instance}}"), mappings=UP_DOWN),
        Panel("Scrape duration", (_q("max by (job) (scrape_duration_seconds)", "{{job}}"),), unit="s"),
        Panel("Samples per scrape", (_q("sum by (job) (scrape_samples_scraped)", "{{job}}"),), width=24),
    ))]
    if "uptime_kuma" in settings.sources:
        rows.append(_uptime_kuma_row())
    return _dashboard("ceres-service-health", "CERES / Service health", settings, rows)


def _containers(settings: DashboardSettings) -> str:
    def per_service(expr: str) -> Query:
        return _q(f"sum by ({BY_SERVICE}) ({expr})", f"{{{{{BY_SERVICE}}}}}")

    return _dashboard("ceres-containers", "CERES / Containers", settings, [
        Row("Resources", (
            Panel("CPU", (per_service(f"rate(container_cpu_usage_seconds_total{{{CONTAINERS}}}[{RATE}])"),), unit="cores"),
            Panel("Memory used of the limit", (_q(
                f"sum by ({BY_SERVICE}) (container_memory_working_set_bytes{{{CONTAINERS}}})"
                f" / sum by ({BY_SERVICE}) (container_spec_memory_limit_bytes{{{CONTAINERS}}} > 0)",
                f"{{{{{BY_SERVICE}}}}}"),), unit="percentunit",
                description="Working set over the container's memory limit; near 100% the kernel OOM-kills it."),
            Panel("Memory working set", (per_service(f"container_memory_working_set_bytes{{{CONTAINERS}}}"),), unit="bytes"),
        )),
        Row("Stability", (
            # cAdvisor counts no restarts: a new start time is one.
            Panel("Restarts (last hour)", (per_service(f"changes(container_start_time_seconds{{{CONTAINERS}}}[1h])"),)),
            Panel("OOM kills (last hour)", (per_service(f"increase(container_oom_events_total{{{CONTAINERS}}}[1h])"),)),
        )),
        Row("Network", (
            Panel("Received", (per_service(f"rate(container_network_receive_bytes_total{{{CONTAINERS}}}[{RATE}])"),), unit="Bps"),
            Panel("Sent", (per_service(f"rate(container_network_transmit_bytes_total{{{CONTAINERS}}}[{RATE}])"),), unit="Bps"),
        )),
    ])


def _postgresql(settings: DashboardSettings) -> str:
    panels = [
        _stat("PostgreSQL up", _q("pg_up", "{{instance}}"), mappings=UP_DOWN),
        Panel("Connections of max_connections", (_q(
            "sum by (instance) (pg_stat_database_numbackends) / on (instance) max by (instance) (pg_settings_max_connections)",
            "{{instance}}"),), unit="percentunit"),
        Panel("Connections per database", (_q("sum by (datname) (pg_stat_database_numbackends)", "{{datname}}"),)),
        Panel("Transactions", (
            _q(f"sum by (datname) (rate(pg_stat_database_xact_commit[{RATE}]))", "{{datname}} commits"),
            _q(f"sum by (datname) (rate(pg_stat_database_xact_rollback[{RATE}]))", "{{datname}} rollbacks"),
        ), unit="ops"),
        Panel("Database size", (_q("sum by (datname) (pg_database_size_bytes)", "{{datname}}"),), unit="bytes"),
        Panel("Locks", (_q("sum by (mode) (pg_locks_count)", "{{mode}}"),)),
    ]
    if settings.replication:
        panels.append(Panel("Replication lag", (_q("max by (instance) (pg_replication_lag_seconds)", "{{instance}}"),), unit="s"))
    return _dashboard("ceres-postgresql", "CERES / PostgreSQL", settings, [Row("PostgreSQL", tuple(panels))])


def _redis(settings: DashboardSettings) -> str:
    def rate(metric: str) -> str:
        return f"sum(rate({metric}[{RATE}]))"

    return _dashboard("ceres-redis", "CERES / Redis", settings, [Row("Redis", (
        _stat("Redis up", _q("redis_up", "{{instance}}"), mappings=UP_DOWN),
        Panel("Memory used of maxmemory", (_q("redis_memory_used_bytes / (redis_memory_max_bytes > 0)", "{{instance}}"),),
              unit="percentunit", description="Empty when no maxmemory is set."),
        Panel("Memory used", (_q("redis_memory_used_bytes", "{{instance}}"),), unit="bytes"),
        Panel("Connected clients", (_q("redis_connected_clients", "{{instance}}"),)),
        Panel("Commands per second", (_q(rate("redis_commands_processed_total"), "commands"),), unit="ops"),
        Panel("Keyspace hit ratio", (_q(
            f"{rate('redis_keyspace_hits_total')} / ({rate('redis_keyspace_hits_total')} + {rate('redis_keyspace_misses_total')})",
            "hits"),), unit="percentunit"),
        Panel("Evicted keys per second", (_q(rate("redis_evicted_keys_total"), "evicted"),), unit="ops"),
    ))])


def _caddy(settings: DashboardSettings) -> str:
    # Every request Caddy served lands in the duration histogram, with its status code (and its
    # host once Caddy's `metrics { per_host }` is on); caddy_http_requests_total has no code.
    def quantile(q: str, legend: str) -> Query:
        return _q(f"histogram_quantile({q}, sum by (le) (rate(caddy_http_request_duration_seconds_bucket[{RATE}])))", legend)

    return _dashboard("ceres-caddy", "CERES / Caddy", settings, [Row("Caddy", (
        Panel("Requests by status code", (_q(f"sum by (code) (rate(caddy_http_request_duration_seconds_count[{RATE}]))", "{{code}}"),), unit="reqps"),
        Panel("Requests by host", (_q(f"sum by (host) (rate(caddy_http_request_duration_seconds_count[{RATE}]))", "{{host}}"),), unit="reqps"),
        Panel("Server errors (5xx) share", (_q(
            f'sum(rate(caddy_http_request_duration_seconds_count{{code=~"5.."}}[{RATE}]))'
            f" / sum(rate(caddy_http_request_duration_seconds_count[{RATE}]))", "5xx"),), unit="percentunit"),
        Panel("Latency quantiles", (quantile("0.5", "p50"), quantile("0.95", "p95"), quantile("0.99", "p99")), unit="s"),
    ))])


def loki_lines_per_service(stack: str = "$stack") -> str:
    """Log lines Loki received in the last 5 minutes, per service, for the stack."""
    return f'sum by (service) (count_over_time({{stack="{stack}"}}[5m]))'


def _integrations(settings: DashboardSettings) -> str:
    rows = [Row("scrape: Prometheus collects each service's metrics", (
        _stat("Targets up", _q("up", "{{job}}"), mappings=UP_DOWN),
        Panel("Targets down", (_q("count(up == 0) or vector(0)", "down"),), description="Scrape jobs whose target does not answer."),
    ))]
    if "loki" in settings.datasources:
        rows.append(Row("log_shipping: every container's logs reach Loki", (
            Panel("Log lines received per service (last 5 minutes)",
                  (Query(loki_lines_per_service(), "{{service}}", kind="loki"),), width=24),
        )))
    if "tempo" in settings.sources:
        rows.append(Row("traces: OTLP spans reach Tempo", (
            Panel("Spans received per second", (_q(f"sum(rate(tempo_distributor_spans_received_total[{RATE}]))", "spans"),),
                  unit="ops", width=24),
        )))
    if "alertmanager" in settings.sources:
        rows.append(Row("alert delivery: Alertmanager notifies its receivers", (
            Panel("Failed notifications (last hour)",
                  (_q("sum by (integration) (increase(alertmanager_notifications_failed_total[1h]))", "{{integration}}"),)),
            Panel("Notifications sent per second",
                  (_q(f"sum by (integration) (rate(alertmanager_notifications_total[{RATE}]))", "{{integration}}"),), unit="ops"),
        )))
    if "uptime_kuma" in settings.sources:
        rows.append(_uptime_kuma_row())
    return _dashboard("ceres-integrations", "CERES / Integration health", settings, rows)


def dashboards(settings: DashboardSettings) -> dict[str, str]:
    """uid -> dashboard JSON text; dashboards of exporters that are not there are left out."""
    built = [_service_health(settings), _integrations(settings)]
    optional = {"cadvisor": _containers, "postgres_exporter": _postgresql, "redis_exporter": _redis, "caddy": _caddy}
    built += [render(settings) for source, render in optional.items() if source in settings.sources]
    return {json.loads(text)["uid"]: text for text in built}
