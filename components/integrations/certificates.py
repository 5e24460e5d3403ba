"""Edge kind `certificates`: Caddy obtains and renews its certificates from the ACME CA."""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service
from stacks.spec import AcmeTls


class CertificatesEdge(IntegrationEdge):
    """Caddy's ACME account: the CA it asks and the address the CA writes to about expiry."""

    kind = "certificates"

    def __init__(self, caddy: Service, tls: AcmeTls, opts: pulumi.ResourceOptions | None = None):
        super().__init__("acme-caddy", caddy, "acme_ca", opts)
        self.register_outputs({"caUrl": tls.ca_url, "email": tls.email})
