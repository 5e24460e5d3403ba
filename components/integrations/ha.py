"""Edge kind `ha`: a data service runs as a cluster of members across the HA hosts."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components.base import IntegrationEdge, Service


class HaEdge(IntegrationEdge):
    """`ha-postgres`, `ha-redis`, `ha-proxy-vip`: the source service is replicated over `members`
    (the member endpoints, e.g. `10.0.0.11:8008`), the HA endpoint `endpoint_name` names the
    software that keeps them in agreement (`patroni`, `redis_sentinel`, `keepalived`).

    The members themselves are built by the source service; this records the edge and fails at
    construction if there is nothing to fail over to.
    """

    kind = "ha"

    def __init__(
        self,
        edge_id: str,
        source: Service,
        endpoint_name: str,
        *,
        members: Sequence[str],
        opts: pulumi.ResourceOptions | None = None,
    ):
        members = list(members)
        if len(members) < 2 or len(set(members)) != len(members):
            raise ValueError(f"HaEdge {edge_id!r}: needs at least two distinct members to fail over between, got {members}")
        super().__init__(edge_id, source, endpoint_name, opts)
        self.members = members
        self.register_outputs({"members": members})
