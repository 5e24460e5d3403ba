"""Backup: every database dumped and every stateful volume copied into one restic repository, on a schedule."""

from __future__ import annotations

import hashlib
from typing import Mapping

import pulumi
import pulumi_docker as docker

from components.base import Service
from components.config import backup as config
from components.config.prometheus import ScrapeJob
from components.container import KEEP_RUNNING_ON_RESTORE, Healthcheck, ServiceContainer, SharedVolume
from components.docker_host import DockerHostComponent
from components.images import build_on_host, postgres_major
from components.integrations.backup import BackupEdge
from components.object_store import ObjectStoreKeys
from components.services.postgres import PostgreSQL
from stacks.spec import StackSpec

SECRETS_DIR = "/run/ceres"
SCRIPTS_DIR = "/usr/local/bin"
ENTRY = f"{SCRIPTS_DIR}/ceres-backup-entry"
PGPASS = "/root/.pgpass"
POSTGRES_IMAGE_LABEL = "io.ceres.postgres-image"
# The services whose volumes a restore must bring back. PostgreSQL is dumped instead of copied;
# caches and the metric, log and trace stores refill themselves and would dwarf the rest.
KEPT_SERVICES = ("keycloak", "gitea", "nextcloud", "wikijs", "redmine", "mattermost", "grafana",
                 "uptime_kuma", "portainer", "caddy", "alertmanager")


class Backup(Service):
    """The restic container: `backup.sh` on `backup.schedule` (backup-postgres: every consumer's
    database and the roles, as the `ceres_backup` superuser; backup-volumes: every volume in
    `volumes`, mounted under /backup/volumes), retention and a partial `restic check`, then the
    last-success time on :9108 for Prometheus. `restore-full.sh` and `restore-drill.sh` are in the
    container too: `scripts/restore-full.sh` stops the apps and runs it there.

    The repository password is generated once and is the only key to the backups: it is the
    secret stack output `backup_password`; keep a copy outside the stack.
    """

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        postgres: PostgreSQL | None,
        volumes: Mapping[str, docker.Volume],
        store_keys: ObjectStoreKeys | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`store_keys`: the object store's keys, for an s3: repository (restic reads them as AWS_*)."""
        super().__init__("backup", pulumi.ResourceOptions.merge(host.placed(), opts))
        login = postgres.backup_login() if postgres is not None else None
        server = config.PostgresServer(host=login.host, port=login.port, user=login.user) if login else None
        databases = tuple(config.Database(name, server) for name in postgres.consumer_databases) if server else ()
        settings = config.BackupSettings(
            repository=spec.backup.repository,
            retention=config.Retention(spec.backup.keep_daily, spec.backup.keep_weekly, spec.backup.keep_monthly),
            databases=databases,
            volumes=tuple(sorted(volumes)),
        )
        if postgres is not None:
            BackupEdge("backup-postgres", self, postgres, items=[db.name for db in databases])
        if volumes:
            BackupEdge("backup-volumes", self, "docker", items=sorted(volumes))
        dockerfile = config.dockerfile(spec.services.backup.image, postgres_major(spec.services.postgres.image))
        image = build_on_host(self, "backup-image", service="backup", host=host,
                              tag=hashlib.sha256(dockerfile.encode()).hexdigest()[:12], files={"Dockerfile": dockerfile})
        self.password = self.generate_secret("backup-repository-password")
        secret_files: dict[str, pulumi.Input[str]] = {f"{SECRETS_DIR}/restic-password": self.password}
        networks = [host.monitoring_network]
        depends_on: list[pulumi.Resource] = []
        if login is not None:
            secret_files[f"{SECRETS_DIR}/pgpass"] = pulumi.Output.concat(f"{login.host}:{login.port}:*:{login.user}:", login.password)
            networks.append(host.data_network)
            depends_on.append(login.ready)
        local_repository = spec.backup.repository if spec.backup.repository.startswith("/") else None
        if spec.backup.repository.startswith("s3:") and store_keys is None:
            raise ValueError("backup: an s3: repository needs the object store's keys (backup_s3_access_key, backup_s3_secret_key)")
        store_env: list[pulumi.Input[str]] = []
        if spec.backup.repository.startswith("s3:"):
            store_env += store_keys.env("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
            if spec.backup.object_store is not None:
                # Else restic asks the store for the bucket's region, which tight policies refuse.
                store_env.append(f"AWS_DEFAULT_REGION={spec.backup.object_store.region}")
        self.container = ServiceContainer(
            self,
            "backup",
            spec=spec.services.backup,
            host=host,
            # The drill starts a throwaway server of the stack's own PostgreSQL image.
            labels={**KEEP_RUNNING_ON_RESTORE, POSTGRES_IMAGE_LABEL: spec.services.postgres.image},
            image=image,
            networks=networks,
            envs=[
                f"RESTIC_REPOSITORY={spec.backup.repository}",
                f"RESTIC_PASSWORD_FILE={SECRETS_DIR}/restic-password",
                f"PGPASSFILE={PGPASS}",
                f"CERES_BACKUP_ROOT={config.ROOT}",
                *store_env,
            ],
            command=["sh", ENTRY],
            # The last-success time, kept when the container is replaced.
            volumes={"backup-state": config.METRICS_DIR.rsplit("/", 1)[0]},
            # Read-write: the same container restores into them.
            shared_volumes=[SharedVolume(volume.name, f"{config.ROOT}/volumes/{name}", read_only=False)
                            for name, volume in sorted(volumes.items())],
            # A local repository lives on the host, outside every volume `pulumi destroy` removes.
            writable_binds={local_repository: local_repository} if local_repository else None,
            files={
                ENTRY: config.entry_script(settings, spec.backup.schedule, f"{SECRETS_DIR}/pgpass" if login else None),
                f"{SCRIPTS_DIR}/backup.sh": config.backup_script(settings),
                f"{SCRIPTS_DIR}/restore-full.sh": config.restore_full_script(settings),
                f"{SCRIPTS_DIR}/restore-drill.sh": config.restore_drill_script(settings),
            },
            secret_files=secret_files,
            # Alpine's busybox: both long-running processes must be there.
            healthcheck=Healthcheck(["CMD-SHELL", "pidof crond && pidof httpd"], start_period="10s"),
            depends_on=depends_on,
        )
        self.metrics_target = f"{self.container.alias}:{config.METRICS_PORT}"
        self.register_outputs({"repository": spec.backup.repository, "databases": [db.name for db in databases],
                               "volumes": sorted(volumes)})

    def scrape_job(self) -> ScrapeJob:
        """The metric is a static file busybox httpd serves as text/plain (for its .txt name)."""
        return ScrapeJob(self.service, (self.metrics_target,), metrics_path=config.METRICS_PATH)


