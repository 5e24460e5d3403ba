"""Edge kind `oidc_client`: an app signs in through the platform's Keycloak realm.

The app builds its `OidcLogin` in its own constructor (its client secret is generated there,
so the app's container is configured before Keycloak runs). The edge, built once the realm is
open, registers the matching Keycloak client with the same secret, the claims the app reads,
and then lets the app run its own side of the set-up (`apply_sso`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import pulumi
from pulumi_keycloak import openid

from components.base import IntegrationEdge, Service
from components.services.keycloak import Keycloak, Realm
from stacks.spec import StackSpec

KEYCLOAK_INTERNAL_URL = f"http://keycloak:{Keycloak.HTTP_PORT}"


@dataclass(frozen=True)
class UserClaim:
    """A claim taken from a property of the Keycloak user (`id`, `username`, `email`, ...)."""

    claim: str
    user_property: str
    value_type: Literal["String", "long", "int", "boolean", "JSON"] = "String"


@dataclass(frozen=True)
class OidcLogin:
    """How one app signs in: known from the spec alone, before Keycloak runs.

    Browsers go to the public issuer; containers call Keycloak's token, userinfo and JWKS
    endpoints on the internal network (Keycloak answers them with back-channel URLs).
    """

    client_id: str
    client_secret: pulumi.Output[str]
    app_url: str
    redirect_uris: tuple[str, ...]
    issuer_url: str
    internal_issuer_url: str
    admin_group: str
    user_group: str
    claims: tuple[UserClaim, ...] = ()

    def endpoint(self, name: str, internal: bool = True) -> str:
        """`auth`, `token`, `userinfo`, `certs` or `logout` under the realm's protocol path."""
        base = self.internal_issuer_url if internal else self.issuer_url
        return f"{base}/protocol/openid-connect/{name}"

    @property
    def auth_url(self) -> str:
        return self.endpoint("auth", internal=False)

    @property
    def logout_url(self) -> str:
        return self.endpoint("logout", internal=False)

    @property
    def discovery_url(self) -> str:
        """Discovery for containers: issuer and auth endpoint stay public, the rest internal."""
        return f"{self.internal_issuer_url}/.well-known/openid-configuration"


def oidc_login(
    spec: StackSpec,
    app: Service,
    callback_paths: tuple[str, ...],
    claims: tuple[UserClaim, ...] = (),
) -> OidcLogin:
    """The login of `app` at its public URL: one redirect URI per callback path, plus the
    stack's extra ones for that app (config validation keeps them on the stack's domain)."""
    app_url = spec.public_url(app.service)
    issuer = f"{spec.public_url('keycloak')}/realms/{spec.sso.realm}"
    return OidcLogin(
        client_id=app.service.replace("_", "-"),
        client_secret=app.generate_secret(f"{app.service}-oidc-client-secret"),
        app_url=app_url,
        redirect_uris=(*(app_url + path for path in callback_paths), *spec.sso.extra_redirect_uris.get(app.service, ())),
        issuer_url=issuer,
        internal_issuer_url=f"{KEYCLOAK_INTERNAL_URL}/realms/{spec.sso.realm}",
        admin_group=spec.sso.admin_group,
        user_group=spec.sso.user_group,
        claims=claims,
    )


def confidential_client(
    owner: pulumi.Resource,
    realm: Realm,
    prefix: str,
    *,
    client_id: str,
    client_secret: pulumi.Input[str],
    redirect_uris: Sequence[str],
    **settings: Any,
) -> openid.Client:
    """A confidential code-flow client in the realm, with the claims every CERES client carries:
    `groups` (plain group names, so admin rights can follow the admin group) and an audience
    naming the client itself."""
    client = openid.Client(
        f"{prefix}-oidc-client",
        realm_id=realm.realm.id,
        client_id=client_id,
        access_type="CONFIDENTIAL",
        standard_flow_enabled=True,
        direct_access_grants_enabled=False,
        client_secret=client_secret,
        valid_redirect_uris=list(redirect_uris),
        opts=pulumi.ResourceOptions(parent=owner, provider=realm.provider),
        **settings,
    )
    on_client = pulumi.ResourceOptions(parent=owner, provider=realm.provider, depends_on=[client])
    openid.GroupMembershipProtocolMapper(
        f"{prefix}-groups-claim",
        realm_id=realm.realm.id, client_id=client.id, name="groups", claim_name="groups",
        full_path=False, add_to_id_token=True, add_to_access_token=True, add_to_userinfo=True,
        opts=on_client,
    )
    openid.AudienceProtocolMapper(
        f"{prefix}-audience",
        realm_id=realm.realm.id, client_id=client.id, name="audience",
        included_client_audience=client_id, add_to_id_token=True, add_to_access_token=True,
        opts=on_client,
    )
    return client


class OidcClientEdge(IntegrationEdge):
    """The app's Keycloak client: exact redirect URIs, its secret, groups and audience claims."""

    kind = "oidc_client"

    def __init__(self, app: Service, keycloak: Keycloak, opts: pulumi.ResourceOptions | None = None):
        login: OidcLogin | None = getattr(app, "oidc", None)
        if login is None:
            raise ValueError(f"{app.service} was built without its login (sso=True): it has no client to register")
        if keycloak.realm is None:
            raise ValueError("the realm is not open yet: call keycloak.open_realm(...) before building logins")
        super().__init__(f"sso-{app.service.replace('_', '-')}", app, keycloak, opts)
        realm = keycloak.realm
        self.client = confidential_client(
            self, realm, app.service,
            client_id=login.client_id,
            client_secret=login.client_secret,
            redirect_uris=login.redirect_uris,
            name=app.service,
            valid_post_logout_redirect_uris=[f"{login.app_url}/*"],
            web_origins=[login.app_url],
            root_url=login.app_url,
        )
        client = pulumi.ResourceOptions(parent=self, provider=realm.provider, depends_on=[self.client])
        for claim in login.claims:
            openid.UserPropertyProtocolMapper(
                f"{app.service}-{claim.claim}-claim",
                realm_id=realm.realm.id, client_id=self.client.id, name=claim.claim, claim_name=claim.claim,
                user_property=claim.user_property, claim_value_type=claim.value_type,
                add_to_id_token=True, add_to_access_token=True, add_to_userinfo=True,
                opts=client,
            )
        # The app's own side (a CLI or API call in its container), once the client exists.
        apply = getattr(app, "apply_sso", None)
        if apply is not None:
            apply(self)
        self.register_outputs({"clientId": login.client_id, "redirectUris": list(login.redirect_uris)})
