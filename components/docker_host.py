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
        self._networks: dict[str, docker.Network] = {}
        self.register_outputs({"url": host.url})

    def _network(self, purpose: str, internal: bool) -> docker.Network:
        # Created on first use, so a host gets only the networks its services attach to.
        if purpose not in self._networks:
            self._networks[purpose] = docker.Network(
                f"{self.host.name}-{purpose}",
                name=f"{self.prefix}-{purpose}",
                internal=internal,
                opts=pulumi.ResourceOptions(parent=self, provider=self.provider),
            )
        return self._networks[purpose]

    @property
    def edge_network(self) -> docker.Network:
        return self._network("edge", internal=False)

    @property
    def data_network(self) -> docker.Network:
        return self._network("data", internal=True)

    def placed(self) -> pulumi.ResourceOptions:
        """Options that put a service component (and all it creates) on this host."""
        return pulumi.ResourceOptions(providers={"docker": self.provider})

    def container_name(self, service: str) -> str:
        return f"{self.prefix}-{service.replace('_', '-')}"
