"""The production shape every service container shares: pinned image, named volumes,
healthcheck with `wait`, restart policy, memory limit, config files uploaded, and no published
ports unless the service is the proxy.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Mapping, Sequence

import pulumi
import pulumi_docker as docker

from components.config.backup import KEEP_RUNNING, RESTORE_LABEL
from components.docker_host import PROBE, DockerHostComponent
from stacks.spec import ServiceSpec


@dataclass(frozen=True)
class Healthcheck:
    """A Docker healthcheck; `start_period` gives slow starters (JVMs, migrations) time."""

    test: list[str]
    start_period: str = "30s"
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 6


def _http_probe(url: str, tool: str) -> list[str]:
    commands = {
        "wget": ["wget", "-q", "-O", "/dev/null", url],
        "curl": ["curl", "-fsS", "-o", "/dev/null", url],
        "probe": [PROBE, "wget", "-q", "-O", "/dev/null", url],
    }
    return commands[tool]


def http_check(url: str, tool: str = "wget", **timing: str | int) -> Healthcheck:
    """Healthy when `url` answers 2xx, probed with a client the image ships (`wget`, `curl`),
    or with `probe`: the static busybox every host mounts into images that ship none."""
    return Healthcheck(["CMD", *_http_probe(url, tool)], **timing)


def any_http_check(urls: Sequence[str], tool: str = "wget", **timing: str | int) -> Healthcheck:
    """Healthy when one of `urls`, asked in turn, answers 2xx (the image needs a shell)."""
    return Healthcheck(["CMD-SHELL", " || ".join(shlex.join(_http_probe(url, tool)) for url in urls)], **timing)


# Most services stop within seconds; PostgreSQL gets longer (config.postgres.STOP_GRACE_SECONDS).
DEFAULT_STOP_GRACE_SECONDS = 30

# On the containers a restore goes through (the data tier and the backup): the others stop first.
KEEP_RUNNING_ON_RESTORE = {RESTORE_LABEL: KEEP_RUNNING}


def alias_of(service: str) -> str:
    """The name a service's container answers to on the platform's networks."""
    return service.replace("_", "-")


@dataclass(frozen=True)
class SharedVolume:
    """A Docker volume another component owns (its engine name), mounted at `path`: one service
    writes it, the others only read (repository mirrors, Redmine's attachments)."""

    name: pulumi.Input[str]
    path: str
    # What must have run before anyone mounts it (the step that sets its owner), if anything.
    ready: pulumi.Resource | None = None
    read_only: bool = True

    def mount(self) -> docker.ContainerVolumeArgs:
        return docker.ContainerVolumeArgs(volume_name=self.name, container_path=self.path, read_only=self.read_only)


class ServiceContainer:
    """The image, volumes and container of one service, created as children of `owner`.

    `image` replaces the pinned image with one derived from it (built by the service);
    `files` are plain config text; `secret_files` carry credentials and stay secret in state
    (`ceres render` leaves them out). `ports` maps container ports to host ports: only the
    proxy gets any on every address; `ports_on` binds them to one address (Loki's push port on
    the apps host's private address, for the log shippers of the HA hosts). `binds` are read-only host paths (the Docker socket for the few that read it);
    `writable_binds` only for the backup's local repository, which must outlive the stack's volumes;
    `labels` add to the service and stack labels (what the restore keeps running);
    `host_network` only for the HA tier, whose members talk host to host (it then joins no Docker
    network), and `capabilities` only for Keepalived, which moves the virtual IP;
    `devices` and `privileged` only for host agents such as cAdvisor; `edge_address` only for the
    proxy, whose fixed address on the edge network the apps trust.

    `stop_grace_seconds`: how long Pulumi, replacing or destroying the container, waits for the
    service to shut down on its image's stop signal before Docker kills it: without it the Docker
    provider force-removes (SIGKILL), so every replacement would crash a database instead of
    stopping it. (Only that: Docker's own stop timeout would replace every existing container
    once, killing each, as the provider forces a new container for it.)
    """

    def __init__(
        self,
        owner: pulumi.Resource,
        service: str,
        *,
        spec: ServiceSpec,
        host: DockerHostComponent,
        networks: Sequence[docker.Network],
        healthcheck: Healthcheck,
        image: pulumi.Input[str] | None = None,
        envs: Sequence[pulumi.Input[str]] = (),
        command: Sequence[str] | None = None,
        entrypoint: Sequence[str] | None = None,
        user: str | None = None,
        volumes: Mapping[str, str] | None = None,
        files: Mapping[str, str] | None = None,
        secret_files: Mapping[str, pulumi.Input[str]] | None = None,
        binds: Mapping[str, str] | None = None,
        writable_binds: Mapping[str, str] | None = None,
        host_network: bool = False,
        labels: Mapping[str, str] | None = None,
        capabilities: Sequence[str] = (),
        shared_volumes: Sequence[SharedVolume] = (),
        ports: Mapping[int, int] | None = None,
        ports_on: str | None = None,
        devices: Sequence[str] = (),
        privileged: bool = False,
        edge_address: str | None = None,
        aliases: Sequence[str] = (),
        depends_on: Sequence[pulumi.Resource] = (),
        wait_timeout: int = 300,
        stop_grace_seconds: int = DEFAULT_STOP_GRACE_SECONDS,
    ):
        if host_network and networks:
            raise ValueError(f"{service}: a container on the host's network joins no Docker network")
        child = pulumi.ResourceOptions(parent=owner)
        self.service = service
        self.name = host.container_name(service)
        self.alias = alias_of(service)
        # The spec's pinned image, pulled; or an image the service builds itself from it.
        if image is None:
            image = docker.RemoteImage(f"{service}-image", name=spec.image, keep_locally=True, opts=child).image_id
        self.volumes = {volume: docker.Volume(volume, name=f"{host.prefix}-{volume}", opts=child) for volume in volumes or {}}
        mounts = [
            docker.ContainerVolumeArgs(volume_name=self.volumes[volume].name, container_path=path)
            for volume, path in (volumes or {}).items()
        ]
        mounts += [
            docker.ContainerVolumeArgs(host_path=source, container_path=path, read_only=True)
            for source, path in (binds or {}).items()
        ]
        mounts += [
            docker.ContainerVolumeArgs(host_path=source, container_path=path)
            for source, path in (writable_binds or {}).items()
        ]
        mounts += [volume.mount() for volume in shared_volumes]
        depends_on = [*depends_on, *(volume.ready for volume in shared_volumes if volume.ready is not None)]
        if PROBE in " ".join(healthcheck.test):
            mounts.append(docker.ContainerVolumeArgs(
                volume_name=host.probe_volume.name, container_path=PROBE.rsplit("/", 1)[0], read_only=True,
            ))
            depends_on = [*depends_on, host.probe_ready]
        uploads = [docker.ContainerUploadArgs(file=path, content=text) for path, text in (files or {}).items()]
        uploads += [
            docker.ContainerUploadArgs(file=path, content=pulumi.Output.secret(text))
            for path, text in (secret_files or {}).items()
        ]
        self.container = docker.Container(
            service,
            name=self.name,
            image=image,
            envs=list(envs),
            command=list(command) if command else None,
            entrypoints=list(entrypoint) if entrypoint else None,
            user=user,
            volumes=mounts,
            uploads=uploads,
            ports=[docker.ContainerPortArgs(internal=inside, external=outside, ip=ports_on) for inside, outside in (ports or {}).items()],
            devices=[docker.ContainerDeviceArgs(host_path=d, container_path=d, permissions="r") for d in devices],
            privileged=privileged,
            network_mode="host" if host_network else None,
            capabilities=docker.ContainerCapabilitiesArgs(adds=list(capabilities)) if capabilities else None,
            networks_advanced=[
                docker.ContainerNetworksAdvancedArgs(
                    name=network.name,
                    aliases=[self.alias, *aliases],
                    ipv4_address=edge_address if network is host.edge_network else None,
                )
                for network in networks
            ],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=healthcheck.test,
                interval=healthcheck.interval,
                timeout=healthcheck.timeout,
                retries=healthcheck.retries,
                start_period=healthcheck.start_period,
            ),
            restart="unless-stopped",
            memory=spec.memory_mb,
            wait=True,
            wait_timeout=wait_timeout,
            destroy_grace_seconds=stop_grace_seconds,
            labels=[
                docker.ContainerLabelArgs(label="io.ceres.service", value=service),
                docker.ContainerLabelArgs(label="io.ceres.stack", value=pulumi.get_stack()),
                *(docker.ContainerLabelArgs(label=label, value=value) for label, value in (labels or {}).items()),
            ],
            # A fixed name must be freed before its replacement starts.
            opts=pulumi.ResourceOptions(parent=owner, depends_on=list(depends_on), delete_before_replace=True),
        )
