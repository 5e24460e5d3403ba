"""Keycloak's container healthcheck: an HTTP probe written in bash alone.

The Keycloak image ships bash but no curl or wget (upstream keeps HTTP clients out on
purpose, keycloak/keycloak#38131 documents this probe). Bash opens the TCP connection
itself (`/dev/tcp`), sends a minimal request and passes only on a 200 status line.
`tests/components/services/test_keycloak.py` runs it for real against a local server.
"""

from __future__ import annotations

import re

_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")


def health_probe(port: int, path: str = "/health/ready") -> str:
    """A bash script: exit 0 only when GET `path` on 127.0.0.1:`port` answers 200."""
    if not 1 <= port <= 65535:
        raise ValueError(f"port={port} is not a TCP port")
    if not _PATH.match(path):
        raise ValueError(f"path {path!r} must be an absolute path of plain characters")
    request = f"GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"
    return (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
        f"printf '{request}' >&3 && "
        "grep -q '^HTTP/1\\.[01] 200' <&3"
    )
