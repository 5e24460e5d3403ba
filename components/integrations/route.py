"""Edge kind `route`: Caddy serves an app at its public HTTPS name and proxies to its container."""

from __future__ import annotations

from urllib.parse import urlsplit

import pulumi

from components.base import IntegrationEdge, Service


class RouteEdge(IntegrationEdge):
    """Caddy's side of one routed app: the public host it answers and the upstream it proxies to.

    The app must be a public app: a `url` (https://<host>) and an `upstream` (`name:port` on
    the edge network). The edge id defaults to the catalog's `route-<app>`.
    """

    kind = "route"

    def __init__(self, caddy: Service, app: Service, edge_id: str | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        url, upstream = getattr(app, "url", None), getattr(app, "upstream", None)
        if not (isinstance(url, str) and url.startswith("https://") and isinstance(upstream, str)):
            raise TypeError(
                f"RouteEdge: {app.service!r} is not a public app; it needs `url` (https://...) and "
                f"`upstream` (name:port), got url={url!r}, upstream={upstream!r}"
            )
        super().__init__(edge_id or f"route-{app.service.replace('_', '-')}", caddy, app, opts)
        self.site_host: str = urlsplit(url).hostname or ""
        self.upstream: str = upstream
        self.register_outputs({"host": self.site_host, "upstream": upstream})
