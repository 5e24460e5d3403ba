"""Loki ruler rules: alerts on what the services log, in Prometheus' rule-file format with LogQL.

Pure functions of typed inputs. No Loki binary installs here, so
`tests/components/config/test_log_alert_rules.py` parses every expression with Grafana's own
LogQL grammar (@grafana/lezer-logql) and matches the line filters against real-format lines.

Streams carry the labels Alloy gives them (components/config/alloy.py): `service` (the CERES
service name), `stack`, `container`, `host`. The lines matched, checked upstream:
- Keycloak 26 (events/log/JBossLoggingEventListenerProvider.java): the `jboss-logging` listener,
  on in every realm by default, logs user events through the `org.keycloak.events` category,
  errors at WARN, values in double quotes by default:
  `... WARN  [org.keycloak.events] (executor-thread-1) type="LOGIN_ERROR", realmId="...",
  realmName="ceres", clientId="grafana", userId="null", ipAddress="10.0.0.5", error="user_not_found", ...`
- Caddy 2 access log (the `log` directive in each site): one JSON object per request, logger
  `http.log.access.log<N>`, numeric `status`, request host at `request.host`.
- Gitea 1.24 console log, default flags `stdflags` (date, time, medfile, shortfuncname,
  levelinitial): `2025/01/02 03:04:05 routers/web/repo/view.go:123:Home() [E] message`;
  `[E]` is error, `[F]` fatal.

Every rule keeps `stack` (Alloy's label) in its result: Loki's alerts get no external labels,
unlike Prometheus', so this is how a notification says which stack it is about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml

# In the ruler's tenant directory (components/config/loki.py TENANT_RULES_DIR); its name is the namespace.
RULES_FILE = "ceres-logs.yaml"
GROUP = "ceres-logs"

# Regexes in RE2 syntax that Python's `re` reads the same way, so tests can run them on sample lines.
KEYCLOAK_LOGIN_ERROR = r'type="LOGIN_ERROR"'
# One stage per field: a line lacking one (realmName is new in Keycloak 25) still yields the other.
KEYCLOAK_FIELDS = (r'realmName="(?P<realm>[^"]*)"', r'ipAddress="(?P<ip_address>[^"]*)"')
GITEA_ERROR = r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2} \S+ \[[EF]\] "

_DURATION = re.compile(r"^[1-9]\d*(s|m|h)$")


@dataclass(frozen=True)
class LogAlertSettings:
    """Which services this stack runs (rules for the others are left out), and the thresholds.

    A rule fires when more than `*_count` matching lines arrive within `*_window`.
    """

    services: frozenset[str]
    # Keycloak's brute-force lockout starts at 10 failures per user: alert on an address doing more.
    login_failures_count: int = 10
    login_failures_window: str = "10m"
    caddy_5xx_count: int = 20
    caddy_5xx_window: str = "5m"
    gitea_errors_count: int = 5
    gitea_errors_window: str = "10m"

    def __post_init__(self) -> None:
        object.__setattr__(self, "services", frozenset(self.services))
        for name in ("login_failures", "caddy_5xx", "gitea_errors"):
            count, window = getattr(self, f"{name}_count"), getattr(self, f"{name}_window")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise ValueError(f"{name}_count={count!r}: give a whole number of at least 1")
            if not isinstance(window, str) or not _DURATION.match(window):
                raise ValueError(f"{name}_window={window!r}: give one LogQL range such as '5m', '90s' or '1h'")


def _raw(text: str) -> str:
    """A LogQL raw string (backticks: no escaping of the regex's quotes and backslashes)."""
    if "`" in text:
        raise ValueError(f"{text!r} cannot be a LogQL raw string")
    return f"`{text}`"


def _rule(name: str, expr: str, service: str, severity: str, summary: str, description: str,
          runbook: str) -> dict[str, Any]:
    return {
        "alert": name,
        "expr": expr,
        "labels": {"severity": severity, "service": service},
        "annotations": {"summary": summary, "description": description, "runbook": runbook},
    }


def _keycloak(s: LogAlertSettings) -> dict[str, Any]:
    window = s.login_failures_window
    expr = (f'sum by (stack, realm, ip_address) (count_over_time({{service="keycloak"}} |= "org.keycloak.events" '
            f"|= {_raw(KEYCLOAK_LOGIN_ERROR)} "
            + "".join(f"| regexp {_raw(field)} " for field in KEYCLOAK_FIELDS)
            + f"[{window}])) "
            f"> {s.login_failures_count}")
    return _rule(
        "KeycloakRepeatedLoginFailures", expr, "keycloak", "warning",
        "Repeated failed logins from {{ $labels.ip_address }}",
        "{{ $value }} failed logins in realm {{ $labels.realm }} from {{ $labels.ip_address }} within " + window
        + ": a forgotten password, a misconfigured client, or someone guessing.",
        'In Grafana Explore (Loki): `{service="keycloak"} |= "LOGIN_ERROR" |= "{{ $labels.ip_address }}"` shows '
        "the users and errors; Keycloak's admin console (realm > Events) too. Block the address at Caddy if hostile.",
    )


def _caddy(s: LogAlertSettings) -> dict[str, Any]:
    window = s.caddy_5xx_window
    # Only the access log's fields are extracted: parsing whole lines would turn every header into a label.
    expr = (f'sum by (stack, request_host) (count_over_time({{service="caddy"}} |= "http.log.access" '
            f'| json status="status", request_host="request.host" | status >= 500 [{window}])) '
            f"> {s.caddy_5xx_count}")
    return _rule(
        "CaddyServerErrorBurst", expr, "caddy", "warning",
        "Burst of 5xx responses on {{ $labels.request_host }}",
        "Caddy answered {{ $value }} requests for {{ $labels.request_host }} with a 5xx status within " + window
        + ": the service behind it is failing or unreachable (502/504).",
        'In Grafana Explore (Loki): `{service="caddy"} |= "{{ $labels.request_host }}" | json | status >= 500` '
        "shows which paths fail; then that service's container: `docker logs --tail 100 <container>`.",
    )


def _gitea(s: LogAlertSettings) -> dict[str, Any]:
    window = s.gitea_errors_window
    expr = (f'sum by (stack, container) (count_over_time({{service="gitea"}} |~ {_raw(GITEA_ERROR)} [{window}])) '
            f"> {s.gitea_errors_count}")
    return _rule(
        "GiteaErrors", expr, "gitea", "warning",
        "Gitea logs errors",
        "{{ $labels.container }} logged {{ $value }} error lines ([E]/[F]) within " + window + ".",
        'In Grafana Explore (Loki): `{service="gitea"} |~ "\\\\[[EF]\\\\] "` shows the errors; '
        "`docker exec -u git <container> gitea doctor check` checks the installation.",
    )


_RULES = {"keycloak": _keycloak, "caddy": _caddy, "gitea": _gitea}


def log_alert_rules(settings: LogAlertSettings) -> dict[str, Any]:
    """The rules document: one group, only the rules for services this stack runs."""
    rules = [render(settings) for service, render in _RULES.items() if service in settings.services]
    return {"groups": [{"name": GROUP, "rules": rules}]} if rules else {"groups": []}


def loki_rules(settings: LogAlertSettings) -> str:
    """RULES_FILE's text, for the ruler's tenant directory."""
    return "# Rendered by CERES: edit the typed inputs, not this file.\n" + yaml.safe_dump(
        log_alert_rules(settings), sort_keys=False, width=1000)
