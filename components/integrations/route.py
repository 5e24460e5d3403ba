"""Edge kind `route`: Caddy serves an app at its public HTTPS name and proxies to its container."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pulumi

from components import catalog
from components.base import IntegrationEdge, Service

if TYPE_CHECKING:
    from components.integrations.forward_auth import ForwardAuthEdge


class RouteEdge(IntegrationEdge):
    """Caddy's side of one routed app: the public host it answers and the upstream it proxies to.

    The app must be a public app: a `url` (https://<host>) and an `upstream` (`name:port` on
    a network Caddy shares). The edge id defaults to the catalog's `route-<app>`. An admin UI
    with no login of its own (`catalog.GATED_UIS`) is routed only behind `gate`, the sso-proxy
    edge, which must cover its host.
    """

    kind = "route"

    def __init__(self, caddy: Service, app: Service, edge_id: str | None = None,
                 gate: ForwardAuthEdge | None = None, opts: pulumi.ResourceOptions | None = None):
        url, upstream = getattr(app, "url", None), getattr(app, "upstream", None)
        if not (isinstance(url, str) and url.startswith("https://") and isinstance(upstream, str)):
            raise TypeError(
                f"RouteEdge: {app.service!r} is not a public app; it needs `url` (https://...) and "
                f"`upstream` (name:port), got url={url!r}, upstream={upstream!r}"
            )
        site_host = urlsplit(url).hostname or ""
        if app.service in catalog.GATED_UIS and gate is None:
            # Publishing a UI that has no login without the gate would open it to anyone.
            raise ValueError(
                f"RouteEdge: {app.service!r} has no login of its own and needs the SSO gate "
                "(forward_auth to oauth2-proxy): give Caddy gate=<OAuth2Proxy>"
            )
        if gate is not None and site_host not in gate.hosts:
            raise ValueError(f"RouteEdge: the SSO gate does not cover {site_host} (it covers {list(gate.hosts)})")
        super().__init__(edge_id or f"route-{app.service.replace('_', '-')}", caddy, app, opts)
        self.site_host: str = site_host
        self.upstream: str = upstream
        self.gate = gate
        self.register_outputs({"host": self.site_host, "upstream": upstream, "gated": gate is not None})
