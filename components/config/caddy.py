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


@dataclass(frozen=True)
class Site:
    """One public host and the container address (`name:port`) Caddy proxies it to."""

    host: str
    upstream: str
    redirects: tuple[Redirect, ...] = ()

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

    def __post_init__(self) -> None:
        if not _HOST.match(self.domain):
            raise ValueError(f"domain {self.domain!r} is not a lowercase DNS name")
        for name in ("http_port", "https_port", "health_port"):
            _port(name, getattr(self, name))
        if len({self.http_port, self.https_port, self.health_port}) != 3:
            raise ValueError("http_port, https_port and health_port must differ")
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
    lines += [
        # Access logs go to the container's output, where the log shipper reads them.
        "\tlog",
        f"\treverse_proxy {site.upstream}",
        "}",
    ]
    return lines


def caddyfile(settings: CaddySettings) -> str:
    """The whole Caddyfile: global options, the health endpoint, then one block per site."""
    header = ["# Rendered by CERES: the platform's edge proxy. Edit the stack, not this file."]
    blocks = [header + _global_options(settings), _health_site(settings)]
    blocks += [_site_block(site, settings.tls) for site in settings.sites]
    return "\n\n".join("\n".join(block) for block in blocks) + "\n"
