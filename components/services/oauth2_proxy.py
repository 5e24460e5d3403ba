"""oauth2-proxy: the sign-in gate (Caddy forward_auth) for UIs that have no login of their own."""

from __future__ import annotations

import pulumi

from components.base import Service
from components.container import ServiceContainer, http_check
from components.docker_host import DockerHostComponent
from components.services.keycloak import Keycloak
from stacks.spec import StackSpec

CLIENT_ID = "oauth2-proxy"


def _endpoint(realm_url: str, name: str) -> str:
    return f"{realm_url}/protocol/openid-connect/{name}"


class OAuth2Proxy(Service):
    """oauth2-proxy against the Keycloak realm, with one cookie for the whole domain.

    It starts without the realm existing yet: OIDC discovery at startup would fetch the
    realm's discovery document and exit on failure, so discovery is skipped and the endpoints
    are given explicitly. The browser goes to the public login URL; token, keys and userinfo
    go through Keycloak's internal URL and never leave Docker.
    """

    HTTP_PORT = 4180

    def __init__(
        self,
        spec: StackSpec,
        host: DockerHostComponent,
        *,
        keycloak: Keycloak,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("oauth2_proxy", pulumi.ResourceOptions.merge(host.placed(), opts))
        client_secret = self.generate_secret("oauth2-proxy-client-secret")
        # 32 alphanumerics (~190 bits). oauth2-proxy decodes them as base64url into a 24-byte
        # AES key (a non-decodable secret would be used raw): a valid key either way.
        cookie_secret = self.generate_secret("oauth2-proxy-cookie-secret")
        cookie_domain = f".{spec.domain}"
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
            # One sign-in covers every gated UI under the domain.
            f"OAUTH2_PROXY_COOKIE_DOMAINS={cookie_domain}",
            f"OAUTH2_PROXY_WHITELIST_DOMAINS={cookie_domain}",
            "OAUTH2_PROXY_COOKIE_SECURE=true",
            # Who may sign in is decided in Keycloak (realm users, and roles later), not by e-mail domain.
            "OAUTH2_PROXY_EMAIL_DOMAINS=*",
            # Behind Caddy: trust its X-Forwarded-* for redirects; answer forward_auth with
            # X-Auth-Request-* headers and never proxy content itself.
            "OAUTH2_PROXY_REVERSE_PROXY=true",
            "OAUTH2_PROXY_SET_XAUTHREQUEST=true",
            "OAUTH2_PROXY_UPSTREAMS=static://202",
            f"OAUTH2_PROXY_HTTP_ADDRESS=0.0.0.0:{self.HTTP_PORT}",
            "OAUTH2_PROXY_SILENCE_PING_LOGGING=true",
        ]
        self.container = ServiceContainer(
            self,
            "oauth2_proxy",
            spec=spec.services.oauth2_proxy,
            host=host,
            networks=[host.edge_network],
            envs=envs,
            # No volume: it keeps no state, sessions live in the browser's encrypted cookie.
            # Distroless image: no shell, no client. The host's probe busybox asks /ping.
            healthcheck=http_check(f"http://127.0.0.1:{self.HTTP_PORT}/ping", tool="probe"),
        )
        self.client_id = CLIENT_ID
        # The identity issue creates the Keycloak client with this same secret.
        self.client_secret: pulumi.Output[str] = client_secret
        self.register_outputs({"clientId": CLIENT_ID})
