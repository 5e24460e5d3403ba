"""The production shape every service container shares: pinned image, named volumes,
healthcheck with `wait`, restart policy, memory limit, config files uploaded, no published ports.
"""

from __future__ import annotations

from typing import Sequence

import pulumi
import pulumi_docker as docker

from components.docker_host import DockerHostComponent
from stacks.spec import ServiceSpec


class ServiceContainer:
    """The image, volumes and container of one service, created as children of `owner`."""

    def __init__(
        self,
        owner: pulumi.Resource,
        service: str,
        *,
        spec: ServiceSpec,
        host: DockerHostComponent,
        networks: Sequence[docker.Network],
        healthcheck: list[str],
        envs: Sequence[pulumi.Input[str]] = (),
        command: list[str] | None = None,
        volumes: dict[str, str] | None = None,
        files: dict[str, str] | None = None,
        aliases: Sequence[str] = (),
        depends_on: Sequence[pulumi.Resource] = (),
    ):
        child = pulumi.ResourceOptions(parent=owner)
        self.name = host.container_name(service)
        self.image = docker.RemoteImage(f"{service}-image", name=spec.image, keep_locally=True, opts=child)
        named_volumes = [
            docker.ContainerVolumeArgs(
                volume_name=docker.Volume(volume, name=f"{host.prefix}-{volume}", opts=child).name,
                container_path=path,
            )
            for volume, path in (volumes or {}).items()
        ]
        self.container = docker.Container(
            service,
            name=self.name,
            image=self.image.image_id,
            envs=list(envs),
            command=command,
            volumes=named_volumes,
            uploads=[docker.ContainerUploadArgs(file=path, content=text) for path, text in (files or {}).items()],
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(name=network.name, aliases=[service.replace("_", "-"), *aliases])
                for network in networks
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=healthcheck, interval="10s", timeout="5s", retries=6, start_period="30s",
            ),
            restart="unless-stopped",
            memory=spec.memory_mb,
            wait=True,
            wait_timeout=300,
            labels=[
                docker.ContainerLabelArgs(label="io.ceres.service", value=service),
                docker.ContainerLabelArgs(label="io.ceres.stack", value=pulumi.get_stack()),
            ],
            # A fixed name must be freed before its replacement starts.
            opts=pulumi.ResourceOptions(parent=owner, depends_on=list(depends_on), delete_before_replace=True),
        )
