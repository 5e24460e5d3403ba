"""A Docker engine of the stack: its provider, the networks services attach to, and the probe tools."""

from __future__ import annotations

import ipaddress

import pulumi
import pulumi_docker as docker

from stacks.spec import DockerHost

# A static busybox, mounted read-only into images that ship no HTTP client or shell,
# so their healthchecks can still probe them from inside.
PROBE_IMAGE = "busybox:1.37.0-musl"
PROBE = "/ceres-probe/busybox"

NETWORKS = {
    # Caddy and the apps it routes; the only network with a way out.
    "edge": False,
    # Databases and caches with their consumers and exporters.
    "data": True,
    # Metrics, logs and traces between the observability services and what they watch.
    "monitoring": True,
}


class DockerHostComponent(pulumi.ComponentResource):
    """One host: every resource placed here uses this host's docker provider."""

    def __init__(self, host: DockerHost, prefix: str, opts: pulumi.ResourceOptions | None = None, *,
                 data_leaves_host: bool = False):
        """`data_leaves_host`: the data network reaches other hosts (the HA tier's virtual IP and
        Sentinels), instead of being internal to this one."""
        super().__init__("ceres:platform:DockerHost", host.name, {"url": host.url, "roles": list(host.roles)}, opts)
        self.host = host
        self.prefix = prefix
        self.provider = docker.Provider(f"{host.name}-docker", host=host.url, opts=pulumi.ResourceOptions(parent=self))
        self._networks: dict[str, docker.Network] = {}
        self._probe: tuple[docker.Volume, docker.Container] | None = None
        self._shared: dict[str, tuple[docker.Volume, docker.Container]] = {}
        self._busybox_image: docker.RemoteImage | None = None
        self._internal = dict(NETWORKS, data=not data_leaves_host)
        self.register_outputs({"url": host.url})

    def _on_host(self) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(parent=self, provider=self.provider)

    def network(self, purpose: str) -> docker.Network:
        """The host's network for `purpose` (see NETWORKS), created on first use so a host gets
        only the networks its services attach to."""
        if purpose not in self._networks:
            subnet = [docker.NetworkIpamConfigArgs(subnet=self.host.edge_subnet)] if purpose == "edge" else None
            self._networks[purpose] = docker.Network(
                f"{self.host.name}-{purpose}",
                name=f"{self.prefix}-{purpose}",
                internal=self._internal[purpose],
                ipam_configs=subnet,
                opts=self._on_host(),
            )
        return self._networks[purpose]

    @property
    def proxy_address(self) -> str:
        """Caddy's fixed address on the edge network (the first after the gateway): the one
        address the apps trust to set X-Forwarded-* headers."""
        return str(ipaddress.IPv4Network(self.host.edge_subnet)[2])

    @property
    def edge_network(self) -> docker.Network:
        return self.network("edge")

    @property
    def data_network(self) -> docker.Network:
        return self.network("data")

    @property
    def monitoring_network(self) -> docker.Network:
        return self.network("monitoring")

    def _busybox(self) -> docker.RemoteImage:
        """The static busybox image: the probe the scratch images lack, and one-shot volume chores."""
        if self._busybox_image is None:
            self._busybox_image = docker.RemoteImage(
                f"{self.host.name}-probe-image", name=PROBE_IMAGE, keep_locally=True, opts=self._on_host())
        return self._busybox_image

    def _volume_with_chore(self, purpose: str, chore: str, command: list[str], mount: str) -> tuple[docker.Volume, docker.Container]:
        """A host volume and a one-shot busybox container that runs `command` on it (mounted at
        `mount`) and exits; `attach` makes the engine wait for it, so mounts can depend on it."""
        volume = docker.Volume(f"{self.host.name}-{purpose}", name=f"{self.prefix}-{purpose}", opts=self._on_host())
        step = docker.Container(
            f"{self.host.name}-{purpose}-{chore}",
            name=f"{self.prefix}-{purpose}-{chore}",
            image=self._busybox().image_id,
            command=command,
            volumes=[docker.ContainerVolumeArgs(volume_name=volume.name, container_path=mount)],
            attach=True,
            must_run=False,
            opts=self._on_host(),
        )
        return volume, step

    def _probe_tools(self) -> tuple[docker.Volume, docker.Container]:
        if self._probe is None:
            # Copies busybox into the volume, for images that ship no HTTP client.
            self._probe = self._volume_with_chore("probe", "fill", ["cp", "/bin/busybox", PROBE], PROBE.rsplit("/", 1)[0])
        return self._probe

    @property
    def probe_volume(self) -> docker.Volume:
        return self._probe_tools()[0]

    @property
    def probe_ready(self) -> docker.Container:
        return self._probe_tools()[1]

    def shared_volume(self, purpose: str, owner_uid: int) -> tuple[docker.Volume, docker.Container]:
        """A volume one service writes and others read, with its root owned by `owner_uid` before
        anyone mounts it: Docker would otherwise make it root's, or copy the ownership of whichever
        image mounts it first. Returns the volume and the one-shot step to depend on."""
        if purpose not in self._shared:
            self._shared[purpose] = self._volume_with_chore(purpose, "init", ["chown", f"{owner_uid}:{owner_uid}", "/volume"], "/volume")
        return self._shared[purpose]

    @property
    def private_address(self) -> str:
        """The host's private IPv4, where the other hosts reach what it runs on the host's network."""
        if self.host.address is None:
            raise ValueError(f"host {self.host.name} has no `address` (its private IPv4, required in HA mode)")
        return self.host.address

    def placed(self) -> pulumi.ResourceOptions:
        """Options that put a service component (and all it creates) on this host."""
        return pulumi.ResourceOptions(providers={"docker": self.provider})

    def container_name(self, service: str) -> str:
        return f"{self.prefix}-{service.replace('_', '-')}"
