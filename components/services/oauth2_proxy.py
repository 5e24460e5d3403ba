"""oauth2-proxy: the sign-in gate (Caddy forward_auth) for UIs that have no login of their own."""

from __future__ import annotations

from urllib.parse import urlsplit

import pulumi

from components import catalog
from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.services.keycloak import Keycloak
from stacks.spec import StackSpec

CLIENT_ID = "oauth2-proxy"
# Where Keycloak sends the browser back to, on each gated host.
CALLBACK_PATH = "/oauth2/callback"
# The claim the Keycloak client's group mapper writes and oauth2-proxy reads groups from.
GROUPS_CLAIM = "groups"


def _endpoint(realm_url: str, name: str) -> str:
    return f"{realm_url}/protocol/openid-connect/{name}"


def gated_hosts(spec: StackSpec) -> list[str]:
    """The public hosts of the enabled admin UIs the gate stands in front of."""
    return [urlsplit(spec.public_url(ui)).hostname or "" for ui in catalog.GATED_UIS if spec.enabled(ui)]


class OAuth2Proxy(Service):
    """oauth2-proxy against the Keycloak realm (`spec.sso.realm`); only members of the admin
    group (`spec.sso.admin_group`) get through, since everything it gates is an admin UI.

    It starts without the realm existing yet: OIDC discovery at startup would fetch the
    realm's discovery document and exit on failure, so discovery is skipped and the endpoints
    are given explicitly. The browser goes to the public login URL; token, keys and userinfo
    go through Keycloak's internal URL and never leave Docker.

    Its session cookie is scoped to each gated host, not to the whole domain: the other apps
    under the domain never receive it. A sign-in on one gated UI makes the next one a silent
    round trip through Keycloak's own session.
    """

    HTTP_PORT = 4180
    METRICS_PORT = 44180

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        keycloak: Keycloak,
        scraped: bool = False,
        opts: pulumi.ResourceOptions | None = None,
    ):
        """`scraped`: Prometheus reads /metrics on its own port, from the monitoring network."""
        super().__init__("oauth2_proxy", pulumi.ResourceOptions.merge(host.placed(), opts))
        client_secret = self.generate_secret("oauth2-proxy-client-secret")
        # 32 alphanumerics (~190 bits). oauth2-proxy decodes them as base64url into a 24-byte
        # AES key (a non-decodable secret would be used raw): a valid key either way.
        cookie_secret = self.generate_secret("oauth2-proxy-cookie-secret")
        envs: list[pulumi.Input[str]] = [
            "OAUTH2_PROXY_PROVIDER=keycloak-oidc",
            f"OAUTH2_PROXY_OIDC_ISSUER_URL={keycloak.issuer_url}",
            "OAUTH2_PROXY_SKIP_OIDC_DISCOVERY=true",
            f"OAUTH2_PROXY_LOGIN_URL={_endpoint(keycloak.issuer_url, 'auth')}",
            f"OAUTH2_PROXY_REDEEM_URL={_endpoint(keycloak.internal_realm_url, 'token')}",
            f"OAUTH2_PROXY_OIDC_JWKS_URL={_endpoint(keycloak.internal_realm_url, 'certs')}",
            f"OAUTH2_PROXY_PROFILE_URL={_endpoint(keycloak.internal_realm_url, 'userinfo')}",
            f"OAUTH2_PROXY_CLIENT_ID={CLIENT_ID}",
            pulumi.Output.concat("OAUTH2_PROXY_CLIENT_SECRET=", client_secret),
            pulumi.Output.concat("OAUTH2_PROXY_COOKIE_SECRET=", cookie_secret),
            "OAUTH2_PROXY_CODE_CHALLENGE_METHOD=S256",
            "OAUTH2_PROXY_COOKIE_SECURE=true",
            # Who may pass is decided by group membership in the realm, not by e-mail domain.
            "OAUTH2_PROXY_EMAIL_DOMAINS=*",
            f"OAUTH2_PROXY_OIDC_GROUPS_CLAIM={GROUPS_CLAIM}",
            # Plain group names: the client's group mapper has the full path off.
            f"OAUTH2_PROXY_ALLOWED_GROUPS={spec.sso.admin_group}",
            # Straight to Keycloak instead of oauth2-proxy's own "Sign in with" page.
            "OAUTH2_PROXY_SKIP_PROVIDER_BUTTON=true",
            # Behind Caddy: trust its X-Forwarded-* for redirects; answer forward_auth with
            # X-Auth-Request-* headers and never proxy content itself.
            "OAUTH2_PROXY_REVERSE_PROXY=true",
            "OAUTH2_PROXY_SET_XAUTHREQUEST=true",
            "OAUTH2_PROXY_UPSTREAMS=static://202",
            f"OAUTH2_PROXY_HTTP_ADDRESS=0.0.0.0:{self.HTTP_PORT}",
            "OAUTH2_PROXY_SILENCE_PING_LOGGING=true",
        ]
        networks = [host.edge_network]
        if scraped:
            # A port of its own, so /metrics never goes through the proxying handler.
            envs.append(f"OAUTH2_PROXY_METRICS_ADDRESS=0.0.0.0:{self.METRICS_PORT}")
            networks.append(host.monitoring_network)
        hosts = gated_hosts(spec)
        if hosts:
            # Lists are comma-separated in env form. The cookie goes to the exact host signed
            # in on; after sign-in, oauth2-proxy returns only to a gated host.
            envs += [f"OAUTH2_PROXY_COOKIE_DOMAINS={','.join(hosts)}", f"OAUTH2_PROXY_WHITELIST_DOMAINS={','.join(hosts)}"]
        self.container = ServiceContainer(
            self,
            "oauth2_proxy",
            spec=spec.services.oauth2_proxy,
            host=host,
            networks=networks,
            envs=envs,
            # No volume: it keeps no state, sessions live in the browser's encrypted cookie.
            # Distroless image: no shell, no client. The host's probe busybox asks /ping.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/ping", tool="probe"),
        )
        self.client_id = CLIENT_ID
        self.metrics_target = f"{self.container.alias}:{self.METRICS_PORT}" if scraped else None
        self.hosts = hosts
        # The sso-proxy edge registers the Keycloak client with this same secret.
        self.client_secret: pulumi.Output[str] = client_secret
        self.register_outputs({"clientId": CLIENT_ID, "hosts": hosts})
