"""Caddy: the platform's edge proxy, and the only container that publishes ports (80 and 443)."""

from __future__ import annotations

from typing import Sequence

import pulumi

from components import catalog
from components.base import Service
from components.config import caddy as config
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.integrations.certificates import CertificatesEdge
from components.integrations.forward_auth import ForwardAuthEdge
from components.integrations.route import RouteEdge
from components.services.oauth2_proxy import OAuth2Proxy
from stacks.spec import StackSpec

CADDYFILE = "/etc/caddy/Caddyfile"  # where the official image's CMD reads its config
METRICS_PORT = 9180
# The caddy image is Alpine-based: busybox wget is there. The endpoint is loopback-only.
HEALTHCHECK = http_check(f"http://127.0.0.1:{config.HEALTH_PORT}{config.HEALTH_PATH}", start_period="20s")


def _tls(spec: StackSpec) -> config.Tls:
    if spec.tls.mode == "acme":
        return config.AcmeTls(email=spec.tls.email, ca_url=spec.tls.ca_url)
    return config.InternalTls()


class Caddy(Service):
    """One HTTPS site per routed app, each a `route-<app>` edge under Caddy.

    With Nextcloud among the routes, the `webdav-nextcloud` edge adds the `.well-known`
    CardDAV/CalDAV redirects that desktop and mobile sync clients need behind a proxy.

    The admin UIs with no login of their own (`catalog.GATED_UIS`) are routed only behind
    `gate`: with one, the `sso-proxy` edge (`self.forward_auth`) puts forward_auth to
    oauth2-proxy in front of each of them, and the composition registers oauth2-proxy's
    Keycloak client through it once the realm is open.
    """

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        routes: Sequence[Service],
        gate: OAuth2Proxy | None = None,
        scraped: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("caddy", pulumi.ResourceOptions.merge(host.placed(), opts))
        gated = [app for app in routes if app.service in catalog.GATED_UIS]
        if gated and gate is None:
            # These UIs have no login of their own: publishing them without the oauth2-proxy
            # gate (forward_auth) would open them to anyone.
            raise ValueError(
                f"Caddy cannot route {sorted(app.service for app in gated)} without the SSO gate "
                "(forward_auth to oauth2-proxy): pass gate=<OAuth2Proxy>"
            )
        self.forward_auth = ForwardAuthEdge(self, gate, gated) if gate is not None else None
        self.routes = [RouteEdge(self, app, gate=self.forward_auth if app in gated else None) for app in routes]
        nextcloud = next((app for app in routes if app.service == "nextcloud"), None)
        self.webdav = RouteEdge(self, nextcloud, edge_id="webdav-nextcloud") if nextcloud else None
        self.certificates = CertificatesEdge(self, spec.tls) if spec.tls.mode == "acme" else None
        settings = config.CaddySettings(
            domain=spec.domain,
            tls=_tls(spec),
            sites=tuple(self._site(route) for route in self.routes),
            metrics_port=METRICS_PORT if scraped else None,
        )
        networks = [host.edge_network]
        if gated or scraped:
            # The gated UIs are the monitoring stack's: Caddy reaches them on its network
            # rather than putting their unauthenticated APIs on the edge network every app shares.
            # Prometheus reads Caddy's metrics there too.
            networks.append(host.monitoring_network)
        self.container = ServiceContainer(
            self,
            "caddy",
            spec=spec.services.caddy,
            host=host,
            networks=networks,
            ports={80: 80, 443: 443},
            edge_address=host.proxy_address,
            # /data holds the certificates, ACME account and the internal CA: losing it means
            # re-issuing everything (and a new dev CA for every browser to trust again).
            volumes={"caddy-data": "/data", "caddy-config": "/config"},
            files={CADDYFILE: config.caddyfile(settings)},
            # Public names resolve to Caddy inside the stack's networks too, so a container that
            # checks or calls a public URL (Uptime Kuma's monitors) reaches it as a browser would.
            aliases=sorted(route.site_host for route in self.routes),
            healthcheck=HEALTHCHECK,
        )
        self.metrics_target = f"{self.container.alias}:{METRICS_PORT}" if scraped else None
        for route in self.routes:
            route.target.served_through(self.container.container)
        self.register_outputs({
            "sites": [route.site_host for route in self.routes],
            "gated": [route.site_host for route in self.routes if route.gate is not None],
        })

    def _site(self, route: RouteEdge) -> config.Site:
        dav = self.webdav is not None and route.target is self.webdav.target
        gate = route.gate.site_gate(route.target) if route.gate is not None else None
        return config.Site(route.site_host, route.upstream, config.NEXTCLOUD_DAV_REDIRECTS if dav else (), gate)
