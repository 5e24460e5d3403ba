"""Alloy built with its Loki under the recording engine: the log shipper a user would get."""

from __future__ import annotations

import re

from components.config import alloy as config
from components.docker_host import PROBE
from components.services.alloy import Alloy
from components.services.loki import Loki
from tests.support import assert_no_plain_secrets, assert_production_shape, by_name, of_type, run_components


def build():
    built = {}

    def program(spec, host):
        built["spec"] = spec
        built["loki"] = Loki(spec, host)
        built["alloy"] = Alloy(spec, host, loki=built["loki"])

    return run_components(program, stack="dev"), built


def alloy_config(run) -> str:
    uploads = {u["file"]: u["content"] for u in by_name(run, "alloy", "Container").inputs["uploads"]}
    return uploads[config.CONFIG_PATH]


def test_container_has_the_production_shape():
    run, built = build()
    container = assert_production_shape(run, "alloy", image=built["spec"].services.alloy.image, memory=built["spec"].services.alloy.memory_mb)
    assert built["spec"].services.alloy.image.startswith("grafana/alloy:v1.10.")
    assert [n["name"] for n in container.inputs["networksAdvanced"]] == ["ceres-dev-monitoring"]


def test_reads_the_docker_socket_read_only_and_keeps_positions_on_a_volume():
    run, _ = build()
    volumes = by_name(run, "alloy", "Container").inputs["volumes"]
    assert {"hostPath": "/var/run/docker.sock", "containerPath": "/var/run/docker.sock", "readOnly": True} in volumes
    assert {"volumeName": "ceres-dev-alloy-data", "containerPath": config.DATA_DIR} in volumes


def test_serves_on_all_interfaces_and_is_probed_on_ready():
    run, _ = build()
    container = by_name(run, "alloy", "Container")
    command = container.inputs["command"]
    assert command[0] == "run" and command[-1] == config.CONFIG_PATH
    assert "--server.http.listen-addr=0.0.0.0:12345" in command
    assert f"--storage.path={config.DATA_DIR}" in command
    tests = container.inputs["healthcheck"]["tests"]
    assert tests[:2] == ["CMD", PROBE] and tests[-1] == "http://127.0.0.1:12345/-/ready"


def test_ships_to_this_stacks_loki_and_starts_after_it():
    run, built = build()
    text = alloy_config(run)
    assert f'url = "{built["loki"].push_url}"' in text
    assert re.search(r'regex\s+= "dev"', text), "keeps only the dev stack's containers"
    assert 'replacement  = "local"' in text, "host label is the DockerHost's name"
    assert by_name(run, "loki", "Container").urn in by_name(run, "alloy", "Container").dependencies


def test_labels_it_reads_are_the_labels_every_container_carries():
    run, _ = build()
    for container in of_type(run, "docker:index/container:Container"):
        if container.name.endswith("probe-fill"):
            continue
        labels = {entry["label"]: entry["value"] for entry in container.inputs["labels"]}
        assert set(config.CONTAINER_LABELS.values()) <= set(labels), container.name
        assert labels["io.ceres.stack"] == "dev"
    text = alloy_config(run)
    for docker_label in config.CONTAINER_LABELS.values():
        assert config.docker_meta_label(docker_label) in text


def test_exposes_nothing_secret():
    run, _ = build()
    assert not of_type(run, "RandomPassword")
    assert_no_plain_secrets(run)
    assert by_name(run, "alloy", "Container").inputs["envs"] == []
