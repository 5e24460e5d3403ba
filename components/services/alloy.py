"""Grafana Alloy: the log shipper (Promtail's role), tailing this stack's containers into Loki."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.config import alloy as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.log_shipping import LogShippingEdge
from components.services.loki import Loki
from stacks.spec import StackSpec


class Alloy(Service):
    """Alloy on one host: pushes to `loki` (`logs-shipper`) and, with `tail_containers`
    (`logs-containers`), finds the containers of this stack through the host's Docker socket and
    ships their logs, labelled `service`, `stack`, `container` and `host`."""

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        loki: Loki,
        tail_containers: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("alloy", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.shipping = [LogShippingEdge("logs-shipper", self, loki)]
        if tail_containers:
            self.shipping.append(LogShippingEdge("logs-containers", self, loki))
        settings = config.AlloySettings(stack=pulumi.get_stack(), host=host.host.name, loki_push_url=loki.push_url,
                                        tail_containers=tail_containers)
        self.container = ServiceContainer(
            self,
            "alloy",
            spec=spec.services.alloy,
            host=host,
            networks=[host.monitoring_network],
            command=[
                "run",
                # Its default 127.0.0.1 would hide /metrics and /-/ready from everything but itself.
                f"--server.http.listen-addr=0.0.0.0:{config.HTTP_PORT}",
                f"--storage.path={config.DATA_DIR}",
                "--disable-reporting",
                config.CONFIG_PATH,
            ],
            volumes={"alloy-data": config.DATA_DIR},
            files={config.CONFIG_PATH: config.config_alloy(settings)},
            # Read-only stops the socket file being replaced, not API calls: Alloy only lists
            # containers and reads their logs. The image runs as root, which the socket requires.
            binds={config.DOCKER_SOCKET: config.DOCKER_SOCKET},
            # The Ubuntu-based image ships neither curl nor wget: the host's probe busybox asks /-/ready.
            healthcheck=http_check(f"http://127.0.0.1:{config.HTTP_PORT}/-/ready", tool="probe"),
            depends_on=[loki.container.container],
        )
        self.metrics_target = f"{self.container.alias}:{config.HTTP_PORT}"
        self.register_outputs({"loki_push_url": loki.push_url})
