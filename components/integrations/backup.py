"""Edge kind `backup`: what a stack keeps, copied where it can be restored from."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import IntegrationEdge, Service


class BackupEdge(IntegrationEdge):
    """`backup-postgres`: every database dumped (and the roles), restored by one command;
    `backup-volumes`: every stateful volume (`docker`, a group of the stack's services) in the
    same snapshot. Both live under the backup service. `backup-pitr`: the prod PostgreSQL
    cluster's WAL archive and physical backups in the object store, under the cluster."""

    kind = "backup"

    def __init__(self, edge_id: str, backup: Service, target: Service | str, *, items: Sequence[str],
                 opts: pulumi.ResourceOptions | None = None):
        super().__init__(edge_id, backup, target, opts)
        self.items = list(items)
        self.register_outputs({"items": self.items})
