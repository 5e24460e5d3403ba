"""Repo sync: Gitea's repositories mirrored for Redmine and checked out for Nextcloud."""

from __future__ import annotations

import dataclasses

import pulumi

from components.base import Service
from components.config import repo_sync as config
from components.container import ServiceContainer, SharedVolume, http_check
from components.docker_host import DockerHostComponent
from components.images import build_on_host
from components.integrations.git_storage import GitStorageEdge
from components.providers import gitea as gitea_api
from components.services.gitea import Gitea
from components.services.redmine import Redmine
from stacks.spec import StackSpec

REPOSITORIES_VOLUME = "repositories"
# Where every container that shares the volume sees it: a mirror's path is the same everywhere.
REPOSITORIES_PATH = "/srv/repos"
SECRETS_DIR = "/run/ceres"


def repositories_volume(host: DockerHostComponent) -> SharedVolume:
    """The volume the worker writes (mirrors, checkouts) and Redmine and Nextcloud read."""
    volume, owned = host.shared_volume(REPOSITORIES_VOLUME, owner_uid=config.UID)
    return SharedVolume(name=volume.name, path=REPOSITORIES_PATH, ready=owned)


class RepoSync(Service):
    """A small worker (stdlib Python and git, `components/config/repo_sync.py`) on the edge
    network, fed by a signed Gitea webhook on the projects organisation (push, repository) and a
    reconcile every 10 minutes. For each project repository it points the external tracker at
    Redmine, keeps a bare mirror Redmine reads, asks Redmine to fetch the new changesets, and keeps
    the default branch checked out for Nextcloud; the wiki repository only gets the checkout.

    It acts in Gitea with the admin API token: setting a repository's tracker needs admin rights
    on every project repository, which a bot outside the organisation's owners does not have.
    """

    HTTP_PORT = config.PORT

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        gitea: Gitea,
        redmine: Redmine | None,
        wiki: GitStorageEdge | None,
        repositories: SharedVolume,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("repo_sync", pulumi.ResourceOptions.merge(host.placed(), opts))
        image = build_on_host(
            self, "repo_sync-image", service="repo_sync", host=host, tag=config.image_tag(spec.services.repo_sync.image),
            files={"Dockerfile": config.dockerfile(spec.services.repo_sync.image), config.PROGRAM_FILE: config.worker_source()},
        )
        webhook_secret = self.generate_secret("repo_sync-webhook-secret")
        env = config.ENV
        envs = [
            f"{env.gitea_url}={gitea.internal_url}",
            f"{env.org}={spec.services.gitea.organization}",
            f"{env.wiki_repo}={f'{wiki.owner}/{wiki.repository_name}' if wiki else ''}",
            f"{env.gitea_token_file}={SECRETS_DIR}/gitea-token",
            f"{env.webhook_secret_file}={SECRETS_DIR}/webhook-secret",
        ]
        secret_files: dict[str, pulumi.Input[str]] = {
            f"{SECRETS_DIR}/gitea-token": gitea.api_token,
            f"{SECRETS_DIR}/webhook-secret": webhook_secret,
        }
        if redmine is not None:
            envs += [
                f"{env.redmine_url}={redmine.internal_url}",
                f"{env.redmine_public_url}={redmine.url}",
                f"{env.redmine_sys_key_file}={SECRETS_DIR}/redmine-sys-key",
            ]
            secret_files[f"{SECRETS_DIR}/redmine-sys-key"] = redmine.sys_api_key
        self.container = ServiceContainer(
            self,
            "repo_sync",
            spec=spec.services.repo_sync,
            host=host,
            image=image,
            networks=[host.edge_network],
            envs=envs,
            volumes={"repo_sync-state": config.STATE_DIR},
            secret_files=secret_files,
            # Not read-only: the worker is the volume's one writer.
            shared_volumes=[dataclasses.replace(repositories, read_only=False)],
            # python:alpine has busybox's wget.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}{config.HEALTH_PATH}", tool="wget"),
        )
        hook = {"hook_type": "gitea", "url": f"{self.internal_url}{config.HOOK_PATH}", "secret": webhook_secret,
                **gitea.api_access()}
        gitea_api.Webhook(
            "repo_sync-webhook", scope="org", owner=spec.services.gitea.organization, events=["push", "repository"],
            **hook, opts=self.child(depends_on=[gitea.projects_organization()]),
        )
        if wiki is not None:
            # The wiki's repository is the bot's, outside the organisation: a hook of its own.
            gitea_api.Webhook(
                "repo_sync-wiki-webhook", scope="repo", owner=wiki.owner, repo=wiki.repository_name, events=["push"],
                **hook, opts=self.child(depends_on=[wiki.repository]),
            )
        self.register_outputs({"internal_url": self.internal_url})
