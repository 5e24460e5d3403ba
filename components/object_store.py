"""The keys of the stack's object store (`ceres:backup.object_store`): the secret settings
`backup_s3_access_key` and `backup_s3_secret_key`, read once by `stacks/program.py`. They stay
Pulumi secrets and reach a container only as secret environment entries, under the names its
S3 client reads (restic: AWS_*, pgBackRest: PGBACKREST_REPO1_S3_*)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi


@dataclass(frozen=True)
class ObjectStoreKeys:
    access_key: pulumi.Input[str]
    secret_key: pulumi.Input[str]

    def env(self, access_key_name: str, secret_key_name: str) -> list[pulumi.Output[str]]:
        return [pulumi.Output.secret(pulumi.Output.concat(f"{access_key_name}=", self.access_key)),
                pulumi.Output.secret(pulumi.Output.concat(f"{secret_key_name}=", self.secret_key))]
