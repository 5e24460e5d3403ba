"""One-time bootstrap steps run with an app's own CLI inside its container (`docker exec`).

The script text comes from a pure renderer and must be idempotent: it runs when the step is
first created (and again only if its inputs change), so a second `pulumi up` neither duplicates
nor rotates what it made. Secrets reach it only as environment variables, never in its text.
"""

from __future__ import annotations

import shlex
from typing import Mapping, Sequence

import pulumi
import pulumi_command as command

from components.container import ServiceContainer
from components.docker_host import DockerHostComponent


class ContainerScript:
    """A shell script piped into `docker exec -i <container> sh -s`, as a child of `owner`.

    With `secret_output`, what the script prints (a token, as its last line) is a secret
    output: `.output` is that last line.
    """

    def __init__(
        self,
        owner: pulumi.Resource,
        name: str,
        *,
        container: ServiceContainer,
        host: DockerHostComponent,
        script: str,
        env: Mapping[str, pulumi.Input[str]] | None = None,
        user: str | None = None,
        shell: str = "sh",
        secret_output: bool = False,
        depends_on: Sequence[pulumi.Resource] = (),
    ):
        env = dict(env or {})
        docker_exec = ["docker", "exec", "-i"]
        if user:
            docker_exec += ["-u", user]
        for variable in env:
            docker_exec += ["-e", variable]
        docker_exec += [container.name, shell, "-s"]
        self.command = command.local.Command(
            name,
            create=shlex.join(docker_exec),
            stdin=script,
            environment={"DOCKER_HOST": host.host.url, **env},
            opts=pulumi.ResourceOptions(
                parent=owner,
                depends_on=[container.container, *depends_on],
                additional_secret_outputs=["stdout"] if secret_output else None,
            ),
        )
        self.output: pulumi.Output[str] = self.command.stdout.apply(
            lambda text: (text or "").strip().splitlines()[-1] if (text or "").strip() else ""
        )
