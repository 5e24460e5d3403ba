"""Edge kind `forward_auth` (`sso-proxy`): Caddy asks oauth2-proxy before serving the admin UIs
that have no login of their own, and oauth2-proxy signs people in through the Keycloak realm.

Caddy builds the edge with the UIs it gates (their Caddyfile blocks come from `site_gate`).
oauth2-proxy's Keycloak client can exist only once the realm is open, which happens after Caddy
(the realm is managed through Keycloak's public URL): the composition calls `register_client`
then.
"""

from __future__ import annotations

from typing import Sequence
from urllib.parse import urlsplit

import pulumi
from pulumi_keycloak import openid

from components.base import IntegrationEdge, Service
from components.config import caddy as caddy_config
from components.integrations.oidc import confidential_client
from components.services.keycloak import Keycloak
from components.services.oauth2_proxy import CALLBACK_PATH, CLIENT_ID, OAuth2Proxy

# Pages an app serves to anonymous visitors on purpose, which the gate lets through.
PUBLIC_PATHS: dict[str, tuple[str, ...]] = {"uptime_kuma": caddy_config.UPTIME_KUMA_PUBLIC_PATHS}


class ForwardAuthEdge(IntegrationEdge):
    """The gate in front of `apps`: one oauth2-proxy for all of them, one callback per host."""

    kind = "forward_auth"

    def __init__(self, caddy: Service, proxy: OAuth2Proxy, apps: Sequence[Service],
                 opts: pulumi.ResourceOptions | None = None):
        if not apps:
            # A Keycloak client with the code flow needs at least one redirect URI.
            raise ValueError("ForwardAuthEdge: no UI to gate; route one of catalog.GATED_UIS or leave the gate out")
        super().__init__("sso-proxy", caddy, proxy, opts)
        self.proxy = proxy
        self.upstream: str = proxy.upstream
        self.hosts: tuple[str, ...] = tuple(urlsplit(app.url).hostname or "" for app in apps)
        # oauth2-proxy builds its redirect URI from the host it was reached on (no fixed
        # --redirect-url), so each gated host has its own callback.
        self.redirect_uris: tuple[str, ...] = tuple(f"https://{host}{CALLBACK_PATH}" for host in self.hosts)
        self.client: openid.Client | None = None
        self.register_outputs({"hosts": list(self.hosts), "redirectUris": list(self.redirect_uris)})

    def site_gate(self, app: Service) -> caddy_config.Gate:
        """How Caddy gates `app`'s site: forward_auth to this oauth2-proxy, its public pages open."""
        return caddy_config.Gate(self.upstream, PUBLIC_PATHS.get(app.service, ()))

    def register_client(self, keycloak: Keycloak) -> openid.Client:
        """oauth2-proxy's client in the realm, with the secret oauth2-proxy already has, the
        exact callbacks of the gated hosts, and the claims keycloak-oidc needs: `aud` must
        name the client, and `groups` carries the admin group oauth2-proxy lets through."""
        realm = keycloak.realm
        if realm is None:
            raise ValueError("ForwardAuthEdge.register_client: open the realm first (keycloak.open_realm)")
        if self.client is not None:
            raise ValueError("ForwardAuthEdge.register_client: the oauth2-proxy client is already registered")
        self.client = confidential_client(
            self, realm, "oauth2_proxy",
            client_id=CLIENT_ID,
            client_secret=self.proxy.client_secret,
            redirect_uris=self.redirect_uris,
            name="oauth2-proxy",
            # oauth2-proxy always sends an S256 challenge (--code-challenge-method): require it.
            pkce_code_challenge_method="S256",
        )
        return self.client
