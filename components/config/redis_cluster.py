"""The Redis HA data node's start script: its redis.conf lives on its volume, where Sentinel's
CONFIG REWRITE can record the node's role.

Pure function of typed inputs; `tests/components/config/test_redis_cluster_start.py` runs it under
`sh` with a real `redis-server`, promotes and demotes the node as Sentinel does, and restarts it.

Why a live file: Sentinel reconfigures a node with REPLICAOF then CONFIG REWRITE, and Redis
rewrites the file it started from. The rendered file (uploaded into the image's config directory)
is root's and the node runs as `redis`, so the node starts from a copy on its own volume. What
CONFIG REWRITE records there is the node's role (its `replicaof` line, or none on the primary)
and, in plain text, every setting it holds in memory, `masterauth` included
(components/config/redis_sentinel.py). At each start the script rebuilds the live file from the
current rendered one (so a changed setting or a rotated password applies, and the password the
last rewrite wrote is dropped) and keeps only the role the last rewrite recorded: a restarted
node rejoins as what Sentinel last made it, not as what the first deployment said (a restarted
old primary would otherwise come back as primary, or the current primary as a replica that
resyncs from a node with fewer writes).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

from components.config import redis as single
from components.config.redis_sentinel import Node

LIVE_FILE = f"{single.DATA_DIR}/redis.conf"
# The official image's entrypoint: as root it gives the data directory to `redis`, drops to it
# and sets umask 0077, then runs the server.
SERVER = "docker-entrypoint.sh redis-server"


@dataclass(frozen=True)
class DataNodeStart:
    """Where the rendered and live configs are, and every data node (a recorded role must name one)."""

    members: tuple[Node, ...]
    base_file: str = single.CONFIG_FILE
    live_file: str = LIVE_FILE
    server: str = SERVER

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a data node needs the list of data nodes it may follow")


def _member_pattern(members: tuple[Node, ...]) -> str:
    """An ERE for a `replicaof` line naming one of the members (as CONFIG REWRITE writes it)."""
    addresses = "|".join(sorted({f"{re.escape(node.host)} {node.port}" for node in members}))
    return f"replicaof ({addresses})"


def data_node_start_script(start: DataNodeStart) -> str:
    """The container's command (`sh -c`), run as root; the server itself runs as `redis`."""
    base, live = shlex.quote(start.base_file), shlex.quote(start.live_file)
    known = shlex.quote(f"({_member_pattern(start.members)})?")
    return "\n".join([
        "set -eu",
        "umask 077",
        f"role=$(grep -E '^replicaof ' {base} || true)",
        f"if [ -s {live} ]; then",
        # The role Sentinel's last CONFIG REWRITE recorded; no line means this node was the primary.
        f"  recorded=$(grep -E '^replicaof ' {live} || true)",
        # A primary that is no member any more (a changed address) would leave it following nothing.
        f"  if printf '%s\\n' \"$recorded\" | grep -qxE {known}; then role=$recorded; fi",
        "fi",
        f"{{ grep -vE '^replicaof ' {base}; if [ -n \"$role\" ]; then printf '%s\\n' \"$role\"; fi; }} > {live}.next",
        f"mv {live}.next {live}",
        f"exec {start.server} {live}",
        "",
    ])
