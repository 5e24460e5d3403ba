"""Alertmanager: groups, inhibits and routes the platform's alerts to its receivers."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import Service
from components.config import alertmanager as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from stacks.spec import StackSpec

CONFIG_FILE = "/etc/alertmanager/alertmanager.yml"


class Alertmanager(Service):
    """On the monitoring network only; its UI is gated behind SSO by the routing issue.

    `receivers` and `smtp` are the typed inputs of `components.config.alertmanager`; their
    secrets (hook URLs, the SMTP password) are uploaded as secret files the config names.
    """

    HTTP_PORT = 9093

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        receivers: Sequence[config.Receiver] = (),
        smtp: config.Smtp | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("alertmanager", pulumi.ResourceOptions.merge(host.placed(), opts))
        settings = config.AlertmanagerSettings(receivers=tuple(receivers), smtp=smtp)
        self.url = spec.public_url("alertmanager")
        self.container = ServiceContainer(
            self,
            "alertmanager",
            spec=spec.services.alertmanager,
            host=host,
            networks=[host.monitoring_network],
            command=[
                f"--config.file={CONFIG_FILE}",
                "--storage.path=/alertmanager",
                # Links in notifications point at the (gated) public UI.
                f"--web.external-url={self.url}",
                # One instance: no gossip cluster to form, so no cluster port to listen on.
                "--cluster.listen-address=",
            ],
            volumes={"alertmanager-data": "/alertmanager"},
            files={CONFIG_FILE: config.alertmanager_yml(settings)},
            secret_files=config.secret_files(settings),
            # prom/alertmanager is busybox-based: wget is there.
            healthcheck=http_check(f"http://localhost:{self.HTTP_PORT}/-/healthy", tool="wget"),
        )
        self.register_outputs({"internal_url": self.internal_url})
