"""The OpenTelemetry Collector built with its Tempo under the recording engine."""

from __future__ import annotations


import yaml

from components.config import otel_collector as config
from components.docker_host import PROBE
from components.services.otel_collector import OtelCollector
from components.services.tempo import Tempo
from tests.support import assert_no_plain_secrets, by_name, of_type, run_components


def build(**settings):
    built = {}

    def program(spec, host):
        built["spec"] = spec
        built["tempo"] = Tempo(spec, host)
        built["collector"] = OtelCollector(spec, host, tempo=built["tempo"])

    return run_components(program, stack="dev", **settings), built


def rendered(run) -> dict:
    [upload] = by_name(run, "otel_collector", "Container").inputs["uploads"]
    assert upload["file"] == config.CONFIG_PATH
    return yaml.safe_load(upload["content"])


def test_container_has_the_production_shape():
    run, built = build()
    container = by_name(run, "otel_collector", "Container")
    image = built["spec"].services.otel_collector.image
    assert by_name(run, "otel_collector-image", "RemoteImage").inputs["name"] == image
    assert image.startswith("otel/opentelemetry-collector-contrib:0.132.")
    assert container.inputs["name"] == "ceres-dev-otel-collector"
    assert container.inputs["restart"] == "unless-stopped"
    assert container.inputs["wait"] is True
    assert container.inputs["memory"] == built["spec"].services.otel_collector.memory_mb
    assert not container.inputs["ports"]
    networks = container.inputs["networksAdvanced"]
    assert [n["name"] for n in networks] == ["ceres-dev-monitoring"] and networks[0]["aliases"] == ["otel-collector"]


def test_stateless_so_no_volume_beyond_the_probe():
    run, _ = build()
    volumes = by_name(run, "otel_collector", "Container").inputs["volumes"]
    assert [v["containerPath"] for v in volumes] == ["/ceres-probe"]
    assert not [v for v in of_type(run, "Volume") if "otel" in v.name]


def test_health_check_extension_is_what_docker_probes():
    run, _ = build()
    container = by_name(run, "otel_collector", "Container")
    tests = container.inputs["healthcheck"]["tests"]
    assert tests[:2] == ["CMD", PROBE] and tests[-1] == f"http://127.0.0.1:{config.HEALTH_PORT}/"
    assert rendered(run)["extensions"]["health_check"]["endpoint"].endswith(f":{config.HEALTH_PORT}")
    assert container.inputs["command"] == [f"--config={config.CONFIG_PATH}"]


def test_exports_to_this_tempo_and_starts_after_it():
    run, built = build()
    assert rendered(run)["exporters"]["otlp"]["endpoint"] == built["tempo"].otlp_grpc_endpoint == "tempo:4317"
    assert by_name(run, "tempo", "Container").urn in by_name(run, "otel_collector", "Container").dependencies


def test_memory_limiter_follows_the_spec():
    run, built = build(services={"otel_collector": {"memory_mb": 512}})
    assert built["spec"].services.otel_collector.memory_mb == 512
    limiter = rendered(run)["processors"]["memory_limiter"]
    assert limiter["limit_mib"] == config.CollectorSettings(512, "tempo:4317").limit_mib
    assert limiter["limit_mib"] + config.RUNTIME_OVERHEAD_MIB <= 512


def test_exposes_the_endpoints_apps_send_to():
    _, built = build()
    assert built["collector"].otlp_grpc_endpoint == "otel-collector:4317"
    assert built["collector"].otlp_http_endpoint == "http://otel-collector:4318"


def test_no_credentials_anywhere():
    run, _ = build()
    assert not of_type(run, "RandomPassword")
    assert_no_plain_secrets(run)
