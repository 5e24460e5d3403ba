"""Alertmanager config text: `alertmanager.yml` from a typed list of receivers.

Pure functions of typed inputs; `tests/components/config/test_alertmanager_amtool.py` feeds
their output to the real `amtool check-config` and `amtool config routes test`. Only keys that
Alertmanager 0.25 (Debian bookworm's amtool) and 0.28 (the pinned image) both accept are
rendered: chat goes through `slack_configs` (Mattermost takes Slack's payload;
`mattermost_configs` only exists from 0.30), secrets through `api_url_file` and
`smtp_auth_password_file`, so the config text never holds a hook URL or a password.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

import yaml

# Absolute: Alertmanager resolves only template paths against the config directory.
SECRETS_DIR = "/etc/alertmanager/secrets"
DEFAULT_RECEIVER = "default"
# Slack's default text is empty and its title holds only labels: without this, chat never shows an
# alert's summary (seen with Alertmanager 0.25 posting to a Mattermost-format receiver).
CHAT_TEXT = (
    '{{ range .Alerts }}{{ .Annotations.summary }}'
    '{{ if .Annotations.description }}: {{ .Annotations.description }}{{ end }}\n{{ end }}'
)
SEVERITIES = ("critical", "warning", "info")

# A secret value (a pulumi Output[str] in the service); this module only ever names its file.
Secret = Any

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_SMARTHOST = re.compile(r"^[A-Za-z0-9.-]+:\d{1,5}$")
_EMAIL = re.compile(r"^[^@\s]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
# Prometheus' duration syntax (common/model.ParseDuration): units largest first, each at most once.
_DURATION = re.compile(r"^(?=\d)(\d+y)?(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?(\d+ms)?$")


def _check_receiver(name: str, severities: tuple[str, ...]) -> None:
    if not _NAME.match(name) or name == DEFAULT_RECEIVER:
        raise ValueError(f"receiver name {name!r}: use lowercase letters, digits, '-' and '_', not {DEFAULT_RECEIVER!r}")
    if not severities or not set(severities) <= set(SEVERITIES):
        raise ValueError(f"receiver {name!r}: severities {severities!r} must be some of {SEVERITIES}")


@dataclass(frozen=True)
class ChatReceiver:
    """A Slack-compatible incoming webhook, e.g. a Mattermost hook (`{SiteURL}/hooks/{id}`).

    The hook URL is the secret (its id is the credential), so it goes to a secret file.
    """

    name: str
    channel: str
    hook_url: Secret = field(repr=False, compare=False)
    username: str = "Alertmanager"
    severities: tuple[str, ...] = ("critical", "warning")
    # Slack's default is false: say it, so resolved alerts reach chat too.
    send_resolved: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "severities", tuple(self.severities))
        _check_receiver(self.name, self.severities)

    @property
    def hook_url_file(self) -> str:
        return f"{SECRETS_DIR}/{self.name}/hook_url"

    def secret_files(self) -> dict[str, Secret]:
        return {self.hook_url_file: self.hook_url}

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "slack_configs": [{
            "api_url_file": self.hook_url_file,
            "channel": self.channel,
            "username": self.username,
            "text": CHAT_TEXT,
            "send_resolved": self.send_resolved,
        }]}


@dataclass(frozen=True)
class EmailReceiver:
    """Mail through the global SMTP relay: the fallback that reaches people when chat is down."""

    name: str
    to: tuple[str, ...]
    severities: tuple[str, ...] = ("critical",)
    send_resolved: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "to", tuple(self.to))
        object.__setattr__(self, "severities", tuple(self.severities))
        _check_receiver(self.name, self.severities)
        if not self.to or not all(_EMAIL.match(address) for address in self.to):
            raise ValueError(f"email receiver {self.name!r}: {self.to!r} must be one or more e-mail addresses")

    def secret_files(self) -> dict[str, Secret]:
        return {}

    def render(self) -> dict[str, Any]:
        return {"name": self.name, "email_configs": [{"to": ", ".join(self.to), "send_resolved": self.send_resolved}]}


Receiver = Union[ChatReceiver, EmailReceiver]


@dataclass(frozen=True)
class Smtp:
    """The outside mail relay every email receiver uses (Alertmanager's global smtp_* keys)."""

    smarthost: str
    from_address: str
    username: str | None = None
    password: Secret | None = field(default=None, repr=False, compare=False)
    require_tls: bool = True

    def __post_init__(self) -> None:
        if not _SMARTHOST.match(self.smarthost):
            raise ValueError(f"smtp smarthost {self.smarthost!r} must be host:port")
        if not _EMAIL.match(self.from_address):
            raise ValueError(f"smtp from_address {self.from_address!r} must be an e-mail address")
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp: give both username and password, or neither")

    @property
    def password_file(self) -> str:
        return f"{SECRETS_DIR}/smtp/password"

    def secret_files(self) -> dict[str, Secret]:
        return {self.password_file: self.password} if self.password is not None else {}

    def render(self) -> dict[str, Any]:
        smtp: dict[str, Any] = {"smtp_smarthost": self.smarthost, "smtp_from": self.from_address}
        if self.username is not None:
            smtp["smtp_auth_username"] = self.username
            smtp["smtp_auth_password_file"] = self.password_file
        smtp["smtp_require_tls"] = self.require_tls
        return smtp


@dataclass(frozen=True)
class Timing:
    """How the top route batches notifications (Prometheus durations such as "30s", "5m", "4h").

    `group_wait`: how long a new group waits for more alerts before its first notification (so the
    first alert reaches chat about this late); `group_interval`: how often a group already notified
    sends what changed, resolutions included; `repeat_interval`: how often a still-firing group is
    sent again. The defaults suit production; tests shorten them to see deliveries in seconds.
    """

    group_wait: str = "30s"
    group_interval: str = "5m"
    repeat_interval: str = "4h"

    def __post_init__(self) -> None:
        for key in ("group_wait", "group_interval", "repeat_interval"):
            value = getattr(self, key)
            if not isinstance(value, str) or not _DURATION.match(value):
                raise ValueError(f"timing {key}={value!r}: use a Prometheus duration such as '30s', '5m' or '1h30m'")
        # Alertmanager refuses a zero group_interval or repeat_interval when it loads the config.
        for key in ("group_interval", "repeat_interval"):
            if not re.search(r"[1-9]", getattr(self, key)):
                raise ValueError(f"timing {key}={getattr(self, key)!r} must be more than zero")

    def render(self) -> dict[str, str]:
        return {"group_wait": self.group_wait, "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval}


@dataclass(frozen=True)
class AlertmanagerSettings:
    """The receivers alerts go to. With none, alerts are kept (UI, API) but delivered nowhere."""

    receivers: tuple[Receiver, ...] = ()
    smtp: Smtp | None = None
    timing: Timing = Timing()

    def __post_init__(self) -> None:
        object.__setattr__(self, "receivers", tuple(self.receivers))
        names = [receiver.name for receiver in self.receivers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"receiver names must be unique; repeated: {duplicates}")
        if self.smtp is None and any(isinstance(r, EmailReceiver) for r in self.receivers):
            raise ValueError("an email receiver needs the global SMTP relay (smtp=Smtp(...))")


def _route(receiver: Receiver) -> dict[str, Any]:
    # `continue`: an alert goes to every receiver that wants its severity (chat and e-mail).
    return {"receiver": receiver.name, "matchers": [f'severity=~"{"|".join(receiver.severities)}"'], "continue": True}


def alertmanager_yml(settings: AlertmanagerSettings) -> str:
    config: dict[str, Any] = {"global": {"resolve_timeout": "5m", **(settings.smtp.render() if settings.smtp else {})}}
    config["route"] = {
        "receiver": DEFAULT_RECEIVER,
        "group_by": ["alertname", "severity"],
        **settings.timing.render(),
    }
    if settings.receivers:
        config["route"]["routes"] = [_route(receiver) for receiver in settings.receivers]
    # A critical alert silences the warning of the same name on the same instance.
    config["inhibit_rules"] = [{
        "source_matchers": ['severity="critical"'],
        "target_matchers": ['severity="warning"'],
        "equal": ["alertname", "instance"],
    }]
    # The default receiver has no integration: what no route wants stays visible in the UI only.
    config["receivers"] = [{"name": DEFAULT_RECEIVER}, *(receiver.render() for receiver in settings.receivers)]
    return "# Rendered by CERES: edit the typed inputs, not this file.\n" + yaml.safe_dump(config, sort_keys=False)


def secret_files(settings: AlertmanagerSettings) -> dict[str, Secret]:
    """Every secret the config names, by absolute path in the container."""
    files: dict[str, Secret] = settings.smtp.secret_files() if settings.smtp else {}
    for receiver in settings.receivers:
        files.update(receiver.secret_files())
    return files
