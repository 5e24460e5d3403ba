"""Alloy config text: ship this stack's container logs from the Docker socket to Loki.

Pure function of typed inputs, written in Alloy syntax for Grafana Alloy 1.10 (the log shipper in
Promtail's role). No Alloy binary installs here, so `tests/components/config/test_alloy.py` parses
the text and checks it against the documented arguments of each component used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

HTTP_PORT = 12345
CONFIG_PATH = "/etc/alloy/config.alloy"
# Read offsets per container, so a restarted Alloy neither skips nor resends logs.
DATA_DIR = "/var/lib/alloy/data"
DOCKER_SOCKET = "/var/run/docker.sock"

# Loki label -> the Docker label every CERES container carries (components/container.py).
CONTAINER_LABELS = {"service": "io.ceres.service", "stack": "io.ceres.stack"}


def docker_meta_label(docker_label: str) -> str:
    """The discovery label Alloy (Prometheus' Docker discovery) gives a container label."""
    return "__meta_docker_container_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", docker_label)


def _string(value: str) -> str:
    """An Alloy string literal: double quotes, JSON escapes (Alloy strings take the same)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True)
class AlloySettings:
    """`stack` and `host` become the `stack` and `host` labels; only this stack's containers ship.
    Without `tail_containers` (the logs-containers edge off) Alloy reads no container's logs."""

    stack: str
    host: str
    loki_push_url: str
    tail_containers: bool = True

    def __post_init__(self) -> None:
        if not self.stack or not self.host:
            raise ValueError("stack and host must be named: they become Loki labels")
        if not re.match(r"^https?://[^\s/]+/loki/api/v1/push$", self.loki_push_url):
            raise ValueError(f"loki_push_url={self.loki_push_url!r}: give Loki's push URL, http://HOST:3100/loki/api/v1/push")


def _rule(**arguments: str | list[str]) -> list[str]:
    lines = ["  rule {"]
    width = max(len(name) for name in arguments)
    for name, value in arguments.items():
        text = "[" + ", ".join(map(_string, value)) + "]" if isinstance(value, list) else _string(value)
        lines.append(f"    {name.ljust(width)} = {text}")
    return lines + ["  }"]


def _relabel_rules(settings: AlloySettings) -> list[str]:
    stack_label = docker_meta_label(CONTAINER_LABELS["stack"])
    rules = _rule(source_labels=[stack_label], regex=re.escape(settings.stack), action="keep")
    for loki_label, docker_label in CONTAINER_LABELS.items():
        rules += _rule(source_labels=[docker_meta_label(docker_label)], target_label=loki_label)
    # Docker reports names with a leading slash.
    rules += _rule(source_labels=["__meta_docker_container_name"], regex="/(.*)", target_label="container")
    rules += _rule(target_label="host", replacement=settings.host)
    return rules


def _container_sources(settings: AlloySettings) -> list[str]:
    socket = _string(f"unix://{DOCKER_SOCKET}")
    return [
        'discovery.docker "containers" {',
        f"  host = {socket}",
        "}",
        "",
        # Filtering here, before any log is read: containers of other stacks are never tailed.
        'discovery.relabel "ceres" {',
        "  targets = discovery.docker.containers.targets",
        "",
        *_relabel_rules(settings),
        "}",
        "",
        'loki.source.docker "containers" {',
        f"  host       = {socket}",
        "  targets    = discovery.relabel.ceres.output",
        "  forward_to = [loki.write.loki.receiver]",
        "}",
        "",
    ]


def config_alloy(settings: AlloySettings) -> str:
    return "\n".join([
        "// Rendered by CERES: this stack's container logs, labelled service/stack/container/host, to Loki.",
        *(_container_sources(settings) if settings.tail_containers else []),
        'loki.write "loki" {',
        "  endpoint {",
        f"    url = {_string(settings.loki_push_url)}",
        "  }",
        "}",
        "",
    ])
