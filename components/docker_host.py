"""A Docker engine of the stack: its provider and the networks services attach to."""

from __future__ import annotations

import pulumi
import pulumi_docker as docker

from stacks.spec import DockerHost


class DockerHostComponent(pulumi.ComponentResource):
    """One host: every resource placed here uses this host's docker provider.

    Networks: `edge` joins Caddy and the apps it routes; `data` is internal (no route out)
    and joins databases and caches to their consumers only.
    """

    def __init__(self, host: DockerHost, prefix: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__("ceres:platform:DockerHost", host.name, {"url": host.url, "roles": list(host.roles)}, opts)
        self.host = host
        self.prefix = prefix
        self.provider = docker.Provider(f"{host.name}-docker", host=host.url, opts=pulumi.ResourceOptions(parent=self))
        on_host = pulumi.ResourceOptions(parent=self, provider=self.provider)
        self.edge_network = docker.Network(
            f"{host.name}-edge", name=f"{prefix}-edge", opts=on_host,
        )
        self.data_network = docker.Network(
            f"{host.name}-data", name=f"{prefix}-data", internal=True, opts=on_host,
        )
        self.register_outputs({"edgeNetwork": self.edge_network.name, "dataNetwork": self.data_network.name})

    def placed(self) -> pulumi.ResourceOptions:
        """Options that put a service component (and all it creates) on this host."""
        return pulumi.ResourceOptions(providers={"docker": self.provider})

    def container_name(self, service: str) -> str:
        return f"{self.prefix}-{service.replace('_', '-')}"
