"""Benchmark (not a test): Redis failover time under Sentinel, through HAProxy's primary endpoint.

    .venv/bin/python scripts/bench_redis_failover.py [--runs 5] [--down-after-ms 2000]

Each run builds a fresh cluster from the rendered configs on 127.0.0.1 (3 redis-server, 3
redis-sentinel, HAProxy; tests/components/config/redis_ha_cluster.py), writes through HAProxy
(SET then WAIT 1, about 150 a second), SIGKILLs the primary, and measures the time from the last
acknowledged write before the kill to the first acknowledged write sent after it. Prints each
run, then the median and max, and the acknowledged writes lost (expected: none).
Needs: apt-get install -y redis-server redis-sentinel haproxy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.config import redis_sentinel  # noqa: E402
from tests.components.config.redis_ha_cluster import Cluster, kill_primary_under_load  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--down-after-ms", type=int, default=redis_sentinel.DOWN_AFTER_MS)
    args = parser.parse_args()
    times, lost = [], 0
    for run in range(1, args.runs + 1):
        cluster = Cluster.create(down_after_ms=args.down_after_ms)
        try:
            cluster.start()
            result = kill_primary_under_load(cluster)
        finally:
            cluster.stop()
            cluster.remove()
        times.append(result.seconds)
        lost += len(result.lost)
        print(f"run {run}: failover {result.seconds:.2f} s, {result.acknowledged} acknowledged writes, "
              f"{len(result.lost)} lost, {result.unconfirmed} unconfirmed", flush=True)
    print(f"down-after-milliseconds {args.down_after_ms}: median {statistics.median(times):.2f} s, "
          f"max {max(times):.2f} s over {args.runs} runs; acknowledged writes lost: {lost}")


if __name__ == "__main__":
    main()
