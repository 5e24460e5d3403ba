"""Edge kind `email`: a service mails people through the stack's outside relay.

E-mail is the fallback that still reaches someone when the chat hub is down, so it never goes
through anything the platform runs: the relay is outside (`ceres:smtp`), its password a
secret setting (`ceres:smtp_password`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi

from components.base import IntegrationEdge, Service
from stacks.spec import SmtpSpec


@dataclass(frozen=True)
class MailRelay:
    """The relay as services use it: built once by the composition from the stack's settings."""

    host: str
    port: int
    from_address: str
    username: str | None
    password: pulumi.Output[str] | None = field(repr=False, compare=False)
    starttls: bool
    recipients: tuple[str, ...]

    @classmethod
    def from_spec(cls, smtp: SmtpSpec, password: pulumi.Output[str] | None) -> MailRelay:
        if (smtp.username is None) != (password is None):
            raise ValueError("ceres:smtp.username and the secret ceres:smtp_password go together")
        return cls(
            host=smtp.host,
            port=smtp.port,
            from_address=smtp.from_address,
            username=smtp.username,
            password=pulumi.Output.secret(password) if password is not None else None,
            starttls=smtp.starttls,
            recipients=smtp.alert_recipients,
        )

    @property
    def smarthost(self) -> str:
        return f"{self.host}:{self.port}"


class EmailEdge(IntegrationEdge):
    """`email-<source>`: the source sends its notifications to the relay's recipients."""

    kind = "email"

    def __init__(self, source: Service, relay: MailRelay, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"email-{source.service.replace('_', '-')}", source, "smtp", opts)
        self.relay = relay
        self.register_outputs({"relay": relay.smarthost, "recipients": list(relay.recipients)})
