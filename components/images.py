"""Images CERES derives from a pinned one and builds on the Docker host that runs them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import pulumi
import pulumi_docker as docker

from components.docker_host import DockerHostComponent

# pulumi-docker builds from a context directory on the deploying machine (relative to the
# project, where Pulumi runs the program).
BUILD_ROOT = Path(".ceres/build")


def build_on_host(
    owner: pulumi.Resource,
    resource_name: str,
    *,
    service: str,
    host: DockerHostComponent,
    tag: str,
    files: Mapping[str, str],
    opts: pulumi.ResourceOptions | None = None,
) -> pulumi.Output[str]:
    """Write the build context (`files`: a Dockerfile and what it copies) and build it on the host's
    engine as `<prefix>-<service>:<tag>`. The tag changes with the content, so a changed build
    replaces the containers that run it. No registry is involved."""
    context = BUILD_ROOT / pulumi.get_stack() / service
    context.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = context / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    image = docker.Image(
        resource_name,
        image_name=f"{host.prefix}-{service}:{tag}",
        build=docker.DockerBuildArgs(context=context.as_posix()),
        skip_push=True,
        opts=pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=owner), opts),
    )
    return image.image_name


def postgres_major(postgres_image: str) -> int:
    """`postgres:17.6-bookworm` -> 17: the server's major version, which the images built from or
    beside it must match (pg_dump no older than the server; Patroni's binaries directory)."""
    match = re.search(r":(\d+)", postgres_image)
    if match is None:
        raise ValueError(f"services.postgres.image={postgres_image!r}: pin a tag that starts with the major version, e.g. postgres:17.6")
    return int(match.group(1))
