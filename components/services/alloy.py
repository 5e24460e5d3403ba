"""Grafana Alloy: the log shipper (Promtail's role), tailing this stack's containers into Loki."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import Service
from components.config import alloy as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.log_shipping import LogShippingEdge
from components.services.loki import Loki
from stacks.spec import StackSpec


class Alloy(Service):
    """Alloy on the apps host: pushes to `loki` (`logs-shipper`) and, with `tail_containers`
    (`logs-containers`), finds the containers of this stack through the host's Docker socket and
    ships their logs, labelled `service`, `stack`, `container` and `host`.

    Every other host that runs containers (`other_hosts`: the HA hosts) gets its own Alloy under
    this service, pushing to Loki's address on the apps host (`Loki.remote_push_url`)."""

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        loki: Loki,
        tail_containers: bool = True,
        other_hosts: Sequence[DockerHostComponent] = (),
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("alloy", pulumi.ResourceOptions.merge(host.placed(), opts))
        self.shipping = [LogShippingEdge("logs-shipper", self, loki)]
        if tail_containers:
            self.shipping.append(LogShippingEdge("logs-containers", self, loki))
        self.container = _shipper(self, "alloy", spec, host, [host.monitoring_network], loki.push_url, tail_containers,
                                  depends_on=[loki.container.container])
        self.remote = []
        for other in other_hosts:
            if loki.remote_push_url is None:
                raise ValueError("Alloy: Loki takes no pushes from other hosts; build it with remote_shippers=True")
            placed = pulumi.ComponentResource("ceres:services:AlloyOnHost", f"alloy-{other.host.name}", None,
                                              pulumi.ResourceOptions(parent=self, provider=other.provider))
            # The host's edge network is the one with a way out, to Loki on the apps host.
            self.remote.append(_shipper(placed, f"alloy-{other.host.name}", spec, other, [other.edge_network],
                                        loki.remote_push_url, tail_containers))
        self.metrics_target = f"{self.container.alias}:{config.HTTP_PORT}"
        self.register_outputs({"loki_push_url": loki.push_url, "hosts": [host.host.name, *(o.host.name for o in other_hosts)]})


def _shipper(owner: pulumi.Resource, name: str, spec: StackSpec, host: DockerHostComponent, networks: list,
             push_url: str, tail_containers: bool, depends_on: Sequence[pulumi.Resource] = ()) -> ServiceContainer:
    settings = config.AlloySettings(stack=pulumi.get_stack(), host=host.host.name, loki_push_url=push_url,
                                    tail_containers=tail_containers)
    return ServiceContainer(
        owner,
        name,
        spec=spec.services.alloy,
        host=host,
        networks=networks,
        command=[
            "run",
            # Its default 127.0.0.1 would hide /metrics and /-/ready from everything but itself.
            f"--server.http.listen-addr=0.0.0.0:{config.HTTP_PORT}",
            f"--storage.path={config.DATA_DIR}",
            "--disable-reporting",
            config.CONFIG_PATH,
        ],
        volumes={f"{name}-data": config.DATA_DIR},
        files={config.CONFIG_PATH: config.config_alloy(settings)},
        # Read-only stops the socket file being replaced, not API calls: Alloy only lists
        # containers and reads their logs. The image runs as root, which the socket requires.
        binds={config.DOCKER_SOCKET: config.DOCKER_SOCKET},
        # The Ubuntu-based image ships neither curl nor wget: the host's probe busybox asks /-/ready.
        healthcheck=http_check(f"http://127.0.0.1:{config.HTTP_PORT}/-/ready", tool="probe"),
        depends_on=depends_on,
    )
