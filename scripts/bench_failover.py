"""Benchmark: PostgreSQL failover time of the CERES HA tier, from the rendered configs.

Not a test. Starts the real cluster of `tests/components/ha_cluster.py` (3 etcd, 3 Patroni, HAProxy,
Debian packages `etcd-server patroni postgresql haproxy`), crashes the leader (SIGKILL of its
postgres and Patroni) under a write load N times, and prints the median and max failover time
(the longest stretch without an acknowledged write, from the last one before the kill on) and
lost writes.

    .venv/bin/python scripts/bench_failover.py [--runs 5] [--async]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.components.ha_cluster import HaCluster, crash_leader_under_load  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="synchronous_mode off")
    args = parser.parse_args()
    cluster = HaCluster(synchronous_mode=not args.asynchronous)
    outages, lost = [], 0
    try:
        cluster.start()
        for run in range(1, args.runs + 1):
            result = crash_leader_under_load(cluster)
            outages.append(result.outage)
            lost += len(result.lost)
            print(f"run {run}: failover {result.outage:.2f}s, lost {len(result.lost)}, new leader {result.new_leader}", flush=True)
    finally:
        cluster.stop()
    print(f"ttl {cluster.ttl}s, synchronous_mode {not args.asynchronous}, {len(outages)} runs: "
          f"median {statistics.median(outages):.2f}s, max {max(outages):.2f}s, lost acknowledged writes {lost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
