"""The Caddyfile of the platform's edge proxy: one HTTPS site per routed app.

Pure functions of typed inputs. `tests/components/config/test_caddy.py` feeds the output to a
real `caddy validate`/`caddy adapt`, and `test_caddy_real.py` runs a real Caddy with it.

What every site gets, and why:
- `reverse_proxy` passes `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` by
  default and, with no `trusted_proxies` configured, overwrites whatever the client sent in
  them: the apps can trust these headers because Caddy is the only way in.
- `encode zstd gzip`: compression for every text response the apps send.
- On ACME (public) sites, HSTS, so browsers never fall back to plain HTTP. Not on the
  internal CA (dev): an HSTS pin on names signed by a throwaway CA only gets in the way.
- Header defaults use `?` (set only if the app did not set its own), so no header is doubled.
- HTTP on port 80 redirects to HTTPS: Caddy's automatic HTTPS does that for every named site.
Rate limiting is not in stock Caddy (it needs the caddy-ratelimit plugin and a custom build).

A gated site (an admin UI with no login of its own) follows oauth2-proxy's documented Caddy
pattern (oauth2-proxy docs, configuration/integrations/caddy.md, v7.x): `/oauth2/*` goes to
oauth2-proxy itself; everything else first asks oauth2-proxy's `/oauth2/auth` through
`forward_auth`, which on 2xx copies the `X-Auth-Request-*` identity headers onto the request,
and on 401 sends the browser to `/oauth2/sign_in?rd=<the original URL>`. Any other answer of
the gate (403) goes back to the client as it is. Before any of that, the site drops every
`X-Auth-Request-*` header the client sent: only the gate may set them. (Caddy 2.10's
`copy_headers` keeps a client's header when the gate's answer lacks it: GHSA-7r4p-vjf4-gxv4,
fixed in 2.11.) Caddy has no placeholder that URL-encodes, so `rd` carries the URL as is: of a
query with several parameters, oauth2-proxy keeps only the first after sign-in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

# The container's own healthcheck asks this loopback-only endpoint.
HEALTH_PORT = 2020
HEALTH_PATH = "/healthz"
ADMIN_ADDRESS = "localhost:2019"

_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$")
_UPSTREAM = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,252}[a-z0-9])?:\d{1,5}$")
_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
# A Caddy path pattern: a plain absolute path, optionally ending in `*` (a prefix).
_PATH_PATTERN = re.compile(r"^/[A-Za-z0-9._~/-]*\*?$")
_ADMIN = re.compile(r"^(off|[a-z0-9.-]+:\d{1,5})$")
_EMAIL = re.compile(r"^[^@\s{}\"]+@[a-z0-9.-]+\.[a-z]{2,}$", re.IGNORECASE)
_HTTPS_URL = re.compile(r"^https://[^\s{}\"]+$")


@dataclass(frozen=True)
class InternalTls:
    """Certificates from Caddy's own CA (dev): `tls internal` on every site."""


@dataclass(frozen=True)
class AcmeTls:
    """Certificates from an ACME CA (prod): the account e-mail and the directory URL."""

    email: str
    ca_url: str

    def __post_init__(self) -> None:
        if not _EMAIL.match(self.email):
            raise ValueError(f"ACME e-mail {self.email!r} is not an e-mail address")
        if not _HTTPS_URL.match(self.ca_url):
            raise ValueError(f"ACME CA URL {self.ca_url!r} must be an https:// URL")


Tls = Union[InternalTls, AcmeTls]


@dataclass(frozen=True)
class Redirect:
    """A redirect of one exact path on a site (permanent by default), answered by Caddy itself."""

    path: str
    to: str
    status: int = 301

    def __post_init__(self) -> None:
        for value in (self.path, self.to):
            if not _PATH.match(value):
                raise ValueError(f"redirect path {value!r} must be an absolute path of plain characters")
        if self.status not in (301, 302, 307, 308):
            raise ValueError(f"redirect status {self.status} must be one of 301, 302, 307, 308")


# Desktop and mobile CardDAV/CalDAV clients look these up first; behind a proxy Nextcloud
# cannot answer them itself with the right scheme and host.
NEXTCLOUD_DAV_REDIRECTS: tuple[Redirect, ...] = (
    Redirect("/.well-known/carddav", "/remote.php/dav/"),
    Redirect("/.well-known/caldav", "/remote.php/dav/"),
)


# oauth2-proxy's endpoints (sign-in, callback, sign-out, auth) under every gated host.
GATE_PREFIX = "/oauth2"
# What oauth2-proxy answers forward_auth with (--set-xauthrequest): who signed in. Every
# header under the prefix is the gate's alone to set.
IDENTITY_PREFIX = "X-Auth-Request-"
IDENTITY_HEADERS: tuple[str, ...] = (
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
)

# Uptime Kuma's status pages are built for anonymous visitors (Kuma serves them without its
# own login, and only the monitors an admin published on a page): the page, its read-only
# JSON under /api/status-page/ (page, heartbeats, manifest), the front-end bundle it loads
# and the uploaded logos. The dashboard, its socket.io API (which carries Kuma's own admin
# login), /metrics, badges and push URLs stay behind the gate.
# (Routes read in louislam/uptime-kuma server/routers/status-page-router.js.)
UPTIME_KUMA_PUBLIC_PATHS: tuple[str, ...] = (
    "/status",
    "/status/*",
    "/api/status-page/*",
    "/assets/*",
    "/upload/*",
    "/icon.svg",
    "/favicon.ico",
)


@dataclass(frozen=True)
class Gate:
    """A site's sign-in gate: forward_auth to oauth2-proxy at `upstream` (`name:port`).

    `public_paths` (Caddy path patterns; a trailing `*` matches a prefix) pass without sign-in:
    only for pages the app itself serves to anonymous visitors.
    """

    upstream: str
    public_paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _UPSTREAM.match(self.upstream):
            raise ValueError(f"gate upstream {self.upstream!r} must be name:port")
        for path in self.public_paths:
            if not _PATH_PATTERN.match(path):
                raise ValueError(f"public path {path!r} must be an absolute path of plain characters, optionally ending in *")
            if _reaches_gate(path):
                raise ValueError(f"public path {path!r} would cover oauth2-proxy's own {GATE_PREFIX}/ endpoints")


def _reaches_gate(pattern: str) -> bool:
    """Whether a path pattern matches anything under the gate's prefix (`/*` matches all)."""
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return f"{GATE_PREFIX}/".startswith(prefix) or prefix.startswith(GATE_PREFIX)
    return pattern == GATE_PREFIX or pattern.startswith(f"{GATE_PREFIX}/")


@dataclass(frozen=True)
class Site:
    """One public host and the container address (`name:port`) Caddy proxies it to; with a
    `gate`, only signed-in users of the gate get through."""

    host: str
    upstream: str
    redirects: tuple[Redirect, ...] = ()
    gate: Gate | None = None

    def __post_init__(self) -> None:
        if not _HOST.match(self.host):
            raise ValueError(f"site host {self.host!r} is not a lowercase DNS name")
        if not _UPSTREAM.match(self.upstream):
            raise ValueError(f"upstream {self.upstream!r} of {self.host} must be name:port")


def _port(name: str, value: int) -> None:
    if not 1 <= value <= 65535:
        raise ValueError(f"{name}={value} is not a TCP port")


@dataclass(frozen=True)
class CaddySettings:
    """Everything the Caddyfile depends on. Ports and admin address default to production's;
    tests move them to free loopback ports."""

    domain: str
    tls: Tls
    sites: tuple[Site, ...] = ()
    http_port: int = 80
    https_port: int = 443
    admin: str = ADMIN_ADDRESS
    health_port: int = HEALTH_PORT
    # Where Prometheus reads Caddy's metrics; None serves none.
    metrics_port: int | None = None

    def __post_init__(self) -> None:
        if not _HOST.match(self.domain):
            raise ValueError(f"domain {self.domain!r} is not a lowercase DNS name")
        ports = {"http_port": self.http_port, "https_port": self.https_port, "health_port": self.health_port}
        if self.metrics_port is not None:
            ports["metrics_port"] = self.metrics_port
        for name, value in ports.items():
            _port(name, value)
        if len(set(ports.values())) != len(ports):
            raise ValueError(f"{', '.join(ports)} must differ")
        if not _ADMIN.match(self.admin):
            raise ValueError(f"admin address {self.admin!r} must be host:port or off")
        hosts: set[str] = set()
        for site in self.sites:
            if not site.host.endswith(f".{self.domain}"):
                raise ValueError(f"site {site.host} is outside the stack's domain {self.domain}")
            if site.host in hosts:
                raise ValueError(f"site {site.host} is routed twice")
            hosts.add(site.host)


def _global_options(settings: CaddySettings) -> list[str]:
    lines = ["{", f"\tadmin {settings.admin}"]
    if settings.http_port != 80:
        lines.append(f"\thttp_port {settings.http_port}")
    if settings.https_port != 443:
        lines.append(f"\thttps_port {settings.https_port}")
    if isinstance(settings.tls, AcmeTls):
        lines += [f"\temail {settings.tls.email}", f"\tacme_ca {settings.tls.ca_url}"]
    else:
        # The internal CA's root stays in /data; Caddy must not try to install it anywhere.
        lines.append("\tskip_install_trust")
    if settings.metrics_port is not None:
        # Request counts and latencies per site, not only Caddy's own process metrics.
        lines += ["\tmetrics {", "\t\tper_host", "\t}"]
    lines += [
        # Only TCP 80/443 are published, so HTTP/3 (UDP) must not be advertised.
        "\tservers {",
        "\t\tprotocols h1 h2",
        "\t}",
        "}",
    ]
    return lines


def _health_site(settings: CaddySettings) -> list[str]:
    return [
        "# For the container's own healthcheck: plain HTTP, loopback only.",
        f"http://127.0.0.1:{settings.health_port} {{",
        "\tbind 127.0.0.1",
        f'\trespond {HEALTH_PATH} "OK" 200',
        "}",
    ]


def _metrics_site(port: int) -> list[str]:
    return [
        # Not the admin API (it could rewrite the config): a plain listener serving only metrics,
        # never published; the container's internal networks reach it.
        f"http://:{port} {{",
        "\tmetrics /metrics",
        "}",
    ]


def _site_block(site: Site, tls: Tls) -> list[str]:
    lines = [f"{site.host} {{"]
    if isinstance(tls, InternalTls):
        lines.append("\ttls internal")
    lines += [
        "\tencode zstd gzip",
        "\theader -Server",
        # One directive per default: `?` fields in one block would all be skipped as soon as
        # the app set any one of them.
        "\theader ?X-Content-Type-Options nosniff",
    ]
    if isinstance(tls, AcmeTls):
        lines.append('\theader ?Strict-Transport-Security "max-age=31536000; includeSubDomains"')
    lines += [f"\tredir {r.path} {r.to} {r.status}" for r in site.redirects]
    # Access logs go to the container's output, where the log shipper reads them.
    lines.append("\tlog")
    if site.gate is None:
        lines.append(f"\treverse_proxy {site.upstream}")
    else:
        lines += _gated(site.upstream, site.gate)
    lines.append("}")
    return lines


def _gated(upstream: str, gate: Gate) -> list[str]:
    """The gated routing of one site (see the module docstring). A site-level `request_header`
    runs before every `handle` block in Caddy's directive order, so the strip comes first."""
    lines = [
        f"\trequest_header -{IDENTITY_PREFIX}*",
        f"\thandle {GATE_PREFIX}/* {{",
        f"\t\treverse_proxy {gate.upstream} {{",
        # oauth2-proxy builds its redirects from X-Forwarded-{Proto,Host,Uri} (--reverse-proxy).
        "\t\t\theader_up X-Real-IP {remote_host}",
        "\t\t\theader_up X-Forwarded-Uri {uri}",
        "\t\t}",
        "\t}",
    ]
    if gate.public_paths:
        lines += [
            f"\t@public path {' '.join(gate.public_paths)}",
            "\thandle @public {",
            f"\t\treverse_proxy {upstream}",
            "\t}",
        ]
    lines += [
        "\thandle {",
        f"\t\tforward_auth {gate.upstream} {{",
        f"\t\t\turi {GATE_PREFIX}/auth",
        "\t\t\theader_up X-Real-IP {remote_host}",
        f"\t\t\tcopy_headers {' '.join(IDENTITY_HEADERS)}",
        "\t\t\t@signed_out status 401",
        "\t\t\thandle_response @signed_out {",
        # {hostport}: the URL exactly as the browser asked for it (no port on 443).
        f"\t\t\t\tredir * {GATE_PREFIX}/sign_in?rd={{scheme}}://{{hostport}}{{uri}} 302",
        "\t\t\t}",
        "\t\t}",
        f"\t\treverse_proxy {upstream}",
        "\t}",
    ]
    return lines


def caddyfile(settings: CaddySettings) -> str:
    """The whole Caddyfile: global options, the health endpoint, then one block per site."""
    header = ["# Rendered by CERES: the platform's edge proxy. Edit the stack, not this file."]
    blocks = [header + _global_options(settings), _health_site(settings)]
    if settings.metrics_port is not None:
        blocks.append(_metrics_site(settings.metrics_port))
    blocks += [_site_block(site, settings.tls) for site in settings.sites]
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"
