"""Tempo built alone under the recording engine: the trace store a user would get."""

from __future__ import annotations


import yaml

from components.config import tempo as config
from components.docker_host import PROBE
from components.services.tempo import Tempo
from tests.support import assert_no_plain_secrets, assert_production_shape, build_named, by_name, of_type


def build():
    return build_named("tempo", Tempo, stack="dev")


def test_container_has_the_production_shape():
    run, built = build()
    container = assert_production_shape(run, "tempo", image=built["spec"].services.tempo.image, memory=built["spec"].services.tempo.memory_mb)
    # The config is written for the 2.x layout; Tempo 3 changed it.
    assert built["spec"].services.tempo.image.startswith("grafana/tempo:2.8.")
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-monitoring"]


def test_traces_on_a_named_volume_and_the_rendered_config_in_use():
    run, _ = build()
    container = by_name(run, "tempo", "Container")
    assert {"volumeName": "ceres-dev-tempo-data", "containerPath": config.DATA_DIR} in container.inputs["volumes"]
    assert container.inputs["command"] == [f"-config.file={config.CONFIG_PATH}"]
    [upload] = container.inputs["uploads"]
    assert upload["file"] == config.CONFIG_PATH
    rendered = yaml.safe_load(upload["content"])
    assert rendered["storage"]["trace"]["local"]["path"].startswith(config.DATA_DIR)
    assert rendered["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"] == "0.0.0.0:4317"


def test_healthcheck_probes_ready_with_the_mounted_busybox():
    run, _ = build()
    container = by_name(run, "tempo", "Container")
    tests = container.inputs["healthcheck"]["tests"]
    assert tests[:2] == ["CMD", PROBE] and tests[-1] == "http://127.0.0.1:3200/ready"
    assert by_name(run, "local-probe-fill", "Container").urn in container.dependencies


def test_exposes_its_otlp_endpoint_and_api():
    _, built = build()
    assert built["tempo"].otlp_grpc_endpoint == "tempo:4317"
    assert built["tempo"].internal_url == "http://tempo:3200"


def test_no_credentials_anywhere():
    run, _ = build()
    assert not of_type(run, "RandomPassword")
    assert_no_plain_secrets(run)
