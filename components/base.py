"""The two shapes every CERES component takes: a service, and an integration edge between two.

An edge registers itself with its consumer service; the platform reads the score from the
edges that exist. Nothing here decides which edges exist: the composition point does.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pulumi
import pulumi_random as random

from components import catalog

# Services whose `reachable_url` was asked for, until a proxy serves them.
_awaiting_proxy: set[Service] = set()


def fail_unserved() -> list[str]:
    """Fail every `reachable_url` no proxy kept (what waits on it then fails instead of hanging);
    return the services' names. The composition and the offline engine call this last."""
    names = []
    for service in list(_awaiting_proxy):
        if service._served is not None and not service._served.done():
            service._served.set_exception(RuntimeError(
                f"{service.service}: its API is called at its public URL, but no proxy serves it "
                f"(is Caddy on, and route {catalog.route_id(service.service)} with it?)"
            ))
            names.append(service.service)
    _awaiting_proxy.clear()
    return sorted(names)


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
        self._served: asyncio.Future[pulumi.Output[str]] | None = None

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

    @property
    def reachable_url(self) -> pulumi.Output[str]:
        """`url` once the proxy serves it, depending on the proxy: what a provider that runs beside
        `pulumi up` (outside the Docker networks) calls this service's API at.

        The proxy is built after the apps it routes, while an app's own API resources are built
        with the app, so this is a promise the proxy keeps (`served_through`); the composition
        fails the program if any is left unkept rather than letting it wait forever.
        """
        return pulumi.Output.from_input(self._served_future())

    def served_through(self, proxy: pulumi.Resource) -> None:
        """Called by the proxy once it serves `url`: resolves `reachable_url` (the first proxy
        to serve it keeps the promise)."""
        served = self._served_future()
        if not served.done():
            served.set_result(proxy.urn.apply(lambda _: self.url))
        _awaiting_proxy.discard(self)

    def _served_future(self) -> asyncio.Future[pulumi.Output[str]]:
        if self._served is None:
            self._served = asyncio.get_event_loop().create_future()
            _awaiting_proxy.add(self)
        return self._served


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
        """`target` is a service, or the name of an endpoint outside the stack (`acme_ca`, `smtp`) or
        of a group of its services (`docker`: every stateful volume), or the members of an HA cluster
        (`patroni`, `redis_sentinel`, `keepalived`).

        An edge whose catalog source is a group of services (`docker`, `apps`) has no single
        consumer to live under: `source` is then the service that realises it for the group
        (Alloy for every container's logs), which must be one the edge touches.
        """
        entry = catalog.EDGES_BY_ID.get(edge_id)
        if entry is None:
            raise ValueError(f"{type(self).__name__}: no catalog edge {edge_id!r}")
        target_name = target if isinstance(target, str) else target.service
        if isinstance(target, str) and target not in {**catalog.EXTERNAL_ENDPOINTS, **catalog.GROUP_ENDPOINTS, **catalog.HA_ENDPOINTS}:
            raise ValueError(f"{type(self).__name__} {edge_id!r}: {target!r} is not an outside endpoint, a group or an HA member set")
        source_name = source.service
        if entry.source in catalog.GROUP_ENDPOINTS and source.service in entry.services:
            source_name = entry.source
        wiring = (entry.kind, entry.source, entry.target)
        if wiring != (self.kind, source_name, target_name):
            raise ValueError(
                f"{type(self).__name__} {edge_id!r} is catalogued as {wiring}, "
                f"built as {(self.kind, source_name, target_name)}"
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
