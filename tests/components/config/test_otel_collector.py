"""The rendered OpenTelemetry Collector config, checked against the documented components (0.132).

No collector binary is installable here (Debian, PyPI and npm ship no `otelcol-contrib`), so
`otelcol-contrib validate` cannot run: the YAML is parsed and checked the way the collector checks
it at startup (every component a pipeline names is defined, every defined extension is enabled)
plus the documented keys of each component used. Sources read:

- open-telemetry/opentelemetry-collector `processor/memorylimiterprocessor/README.md` (v0.120.0 and
  v0.162.0 pages): `check_interval`, `limit_mib`, `spike_limit_mib` (about 20% of the limit), the
  process runs about 50 MiB above `limit_mib`; memory_limiter goes first in a pipeline.
- opentelemetry-collector-contrib `extension/healthcheckextension` README and factory: `endpoint`
  (default localhost:13133 in recent releases, hence explicit 0.0.0.0), `path` (default "/").
- opentelemetry.io/docs/collector/configuration: `receivers`, `processors`, `exporters`, `extensions`, `service`
  (`extensions`, `pipelines`, `telemetry`); otlp receiver `protocols.grpc/http.endpoint`; otlp
  exporter `endpoint`, `tls.insecure` (the exporter is still named `otlp` in 0.132).
"""

from __future__ import annotations

import pytest
import yaml

from components.config.otel_collector import HEALTH_PORT, RUNTIME_OVERHEAD_MIB, CollectorSettings, collector_yaml

TOP_LEVEL = {"receivers", "processors", "exporters", "extensions", "connectors", "service"}
SERVICE = {"extensions", "pipelines", "telemetry"}
PIPELINE = {"receivers", "processors", "exporters"}
COMPONENT_KEYS = {
    ("receivers", "otlp"): {"protocols"},
    ("processors", "memory_limiter"): {"check_interval", "limit_mib", "spike_limit_mib", "limit_percentage",
                                       "spike_limit_percentage"},
    ("processors", "batch"): {"timeout", "send_batch_size", "send_batch_max_size", "metadata_keys",
                              "metadata_cardinality_limit"},
    ("exporters", "otlp"): {"endpoint", "tls", "headers", "compression", "timeout", "sending_queue",
                            "retry_on_failure", "balancer_name", "auth", "keepalive", "wait_for_ready"},
    ("extensions", "health_check"): {"endpoint", "path", "tls", "response_body", "check_collector_pipeline"},
}
SIGNALS = {"traces", "metrics", "logs"}


def render(memory_mb: int = 256, tempo: str = "tempo:4317") -> dict:
    return yaml.safe_load(collector_yaml(CollectorSettings(memory_mb=memory_mb, tempo_otlp_grpc_endpoint=tempo)))


def test_only_documented_components_and_keys_are_used():
    config = render()
    assert set(config) <= TOP_LEVEL
    assert set(config["service"]) <= SERVICE
    for section in ("receivers", "processors", "exporters", "extensions"):
        for name, settings in config[section].items():
            allowed = COMPONENT_KEYS[(section, name)]
            assert set(settings or {}) <= allowed, f"{section}.{name}: {set(settings) - allowed}"


def test_pipelines_reference_only_defined_components_and_nothing_defined_is_unused():
    config = render()
    used = {"receivers": set(), "processors": set(), "exporters": set()}
    for signal, pipeline in config["service"]["pipelines"].items():
        assert signal.split("/")[0] in SIGNALS and set(pipeline) <= PIPELINE
        for section, names in pipeline.items():
            assert set(names) <= set(config[section]), f"{signal}.{section} names undefined {names}"
            used[section] |= set(names)
    for section, names in used.items():
        assert names == set(config[section]), f"{section} defined but unused: {set(config[section]) - names}"
    assert config["service"]["extensions"] == list(config["extensions"])


def test_only_traces_flow_and_they_go_to_tempo_in_plain_grpc():
    config = render(tempo="tempo:4317")
    assert list(config["service"]["pipelines"]) == ["traces"]
    traces = config["service"]["pipelines"]["traces"]
    assert traces == {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["otlp"]}
    assert config["exporters"]["otlp"] == {"endpoint": "tempo:4317", "tls": {"insecure": True}}


def test_receivers_and_health_check_listen_on_every_interface():
    config = render()
    assert config["receivers"]["otlp"]["protocols"] == {
        "grpc": {"endpoint": "0.0.0.0:4317"}, "http": {"endpoint": "0.0.0.0:4318"},
    }
    assert config["extensions"]["health_check"] == {"endpoint": f"0.0.0.0:{HEALTH_PORT}"}


@pytest.mark.parametrize("memory_mb", [128, 256, 512, 2048])
def test_memory_limiter_fits_inside_the_container_limit(memory_mb):
    limiter = render(memory_mb=memory_mb)["processors"]["memory_limiter"]
    assert limiter["check_interval"] == "1s"
    assert 0 < limiter["limit_mib"] and limiter["limit_mib"] + RUNTIME_OVERHEAD_MIB <= memory_mb
    assert limiter["spike_limit_mib"] == int(limiter["limit_mib"] * 0.2)
    assert 0 < limiter["spike_limit_mib"] < limiter["limit_mib"]


def test_fails_on_too_little_memory_or_a_bad_tempo_endpoint():
    with pytest.raises(ValueError, match="at least 128"):
        CollectorSettings(memory_mb=64, tempo_otlp_grpc_endpoint="tempo:4317")
    for endpoint in ("http://tempo:4317", "tempo", "tempo:port"):
        with pytest.raises(ValueError, match="host:port"):
            CollectorSettings(memory_mb=256, tempo_otlp_grpc_endpoint=endpoint)
