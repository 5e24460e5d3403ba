"""The two shapes every CERES component takes: a service, and an integration edge between two.

An edge registers itself with its consumer service; the platform reads the score from the
edges that exist. Nothing here decides which edges exist: the composition point does.
"""

from __future__ import annotations

from typing import ClassVar

import pulumi
import pulumi_random as random

from components import catalog


class Service(pulumi.ComponentResource):
    """One service of the platform (`ceres:services:<Type>`), named by its spec key.

    A service with an HTTP interface sets `HTTP_PORT` and its `container`; `upstream` and
    `internal_url` are then how Caddy and its peers reach it on the platform's networks.
    """

    HTTP_PORT: ClassVar[int]

    def __init__(self, service: str, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"ceres:services:{type(self).__name__}", service, None, opts)
        self.service = service
        self.edges: list[IntegrationEdge] = []

    def child(self, **extra) -> pulumi.ResourceOptions:
        """Options for a child resource: parented here, so it shares this service's provider."""
        return pulumi.ResourceOptions(parent=self, **extra)

    def generate_secret(self, name: str, length: int = 32) -> pulumi.Output[str]:
        """A password or key made once by pulumi-random (letters and digits, safe in URLs and
        env files), kept in state as a secret and stable across `pulumi up`s."""
        return random.RandomPassword(name, length=length, special=False, opts=self.child()).result

    @property
    def upstream(self) -> str:
        """`name:port` on the platform's networks."""
        return f"{self.container.alias}:{self.HTTP_PORT}"

    @property
    def internal_url(self) -> str:
        return f"http://{self.upstream}"


class IntegrationEdge(pulumi.ComponentResource):
    """One catalog edge, placed under its consumer (`ceres:integrations:<Kind>`).

    Subclasses set `kind` to the catalog kind they realise; construction fails if the
    catalog disagrees about the edge's kind or endpoints, so a miswired edge never deploys.
    """

    kind: ClassVar[str]

    def __init__(
        self,
        edge_id: str,
        source: Service,
        target: Service | str,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`target` is a service, or the name of an endpoint outside the stack (`acme_ca`, `smtp`)."""
        entry = catalog.EDGES_BY_ID.get(edge_id)
        if entry is None:
            raise ValueError(f"{type(self).__name__}: no catalog edge {edge_id!r}")
        target_name = target if isinstance(target, str) else target.service
        if isinstance(target, str) and target not in catalog.EXTERNAL_ENDPOINTS:
            raise ValueError(f"{type(self).__name__} {edge_id!r}: {target!r} is not an outside endpoint")
        wiring = (entry.kind, entry.source, entry.target)
        if wiring != (self.kind, source.service, target_name):
            raise ValueError(
                f"{type(self).__name__} {edge_id!r} is catalogued as {wiring}, "
                f"built as {(self.kind, source.service, target_name)}"
            )
        props = {
            "edgeId": entry.id,
            "layer": entry.layer,
            "source": entry.source,
            "target": entry.target,
            "mechanism": entry.mechanism,
        }
        super().__init__(
            f"ceres:integrations:{type(self).__name__}",
            edge_id,
            props,
            pulumi.ResourceOptions.merge(pulumi.ResourceOptions(parent=source), opts),
        )
        self.edge = entry
        self.source = source
        self.target = target
        source.edges.append(self)
