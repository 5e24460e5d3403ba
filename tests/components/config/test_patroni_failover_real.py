"""The PostgreSQL HA tier for real, from the rendered configs: 3 etcd, 3 Patroni members, HAProxy.

Debian's `etcd-server`, `patroni` (3.0.2) and `postgresql` on 127.0.0.1 free ports; the harness is
`tests/components/ha_cluster.py` (shared with `scripts/bench_failover.py`). Under a steady write load
through HAProxy's primary port, as an ordinary consumer role:

- a hard crash of the leader (SIGKILL of its postgres and its Patroni) fails over within the targets
  of issue 9 (ttl + 3 s at most for a single run; the median over 5+ runs is the benchmark's job),
  through the same HAProxy endpoint, and no acknowledged write is lost (synchronous mode);
- a planned switchover through Patroni's authenticated REST API stops writes for under 2 s;
- stopping the leader as Docker does when a container is stopped or replaced with a grace period
  (the member image's SIGTERM to Patroni) shuts PostgreSQL down cleanly and hands the leader key
  over: the next leader takes writes sooner than a crash's failover ever could.

One cluster for the module (about 1.5 minutes in all), stopped in teardown even on failure.
"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from components.config import patroni
from tests.components.ha_cluster import (
    Connection,
    HaCluster,
    PgError,
    crash_leader_under_load,
    stop_leader_under_load,
    switchover_under_load,
)
from tests.components.real_processes import started

SWITCHOVER_TARGET = 2.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[HaCluster]:
    with started(lambda: HaCluster(synchronous_mode=True)) as cluster:
        yield cluster


def test_consumer_writes_through_haproxy_land_on_the_leader_and_reach_every_replica(cluster: HaCluster) -> None:
    cluster.through_haproxy("INSERT INTO load (id) VALUES (-1)")
    leader = cluster.wait_for_leader()
    assert cluster.leader_sql(leader, "SELECT pg_is_in_recovery()") == ["f"]
    # Synchronous mode: one replica confirms each commit before the app hears "ok". Patroni names
    # the standby a loop after the replicas stream, so a freshly started cluster may not have it yet.
    deadline = time.monotonic() + 15
    while cluster.leader_sql(leader, "SHOW synchronous_standby_names") == [""] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert cluster.leader_sql(leader, "SHOW synchronous_standby_names") != [""]
    assert cluster.sync_standby() != leader.name
    # The replica port reaches a standby, and the row gets there (replay is asynchronous: commits
    # wait for the synchronous standby's flush, not its replay, and the other replica is async).
    deadline, seen = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        try:
            replica = Connection(cluster.conninfo(port=cluster.haproxy_settings.replica_port))
            try:
                seen = (replica.execute("SELECT pg_is_in_recovery()"), replica.execute("SELECT count(*) FROM load WHERE id = -1"))
            finally:
                replica.close()
        except PgError as error:  # a replica that has not replayed the consumer's role yet
            seen = str(error)
        if seen == (["t"], ["1"]):
            break
        time.sleep(0.3)
    assert seen == (["t"], ["1"]), seen
    cluster.through_haproxy("DELETE FROM load WHERE id = -1")


def test_each_member_is_ready_by_exactly_one_of_the_container_healthchecks_paths(cluster: HaCluster) -> None:
    """The member container's healthcheck (what the next member's update waits for) asks these
    paths in turn: the leader answers the first, a replica within the failover lag the second."""
    cluster.wait_until_healthy()
    leader = cluster.wait_for_leader()
    for member in cluster.members:
        answers = tuple(cluster.rest(member, path)[0] for path in patroni.READY_PATHS)
        assert answers == ((200, 503) if member is leader else (503, 200)), (member.name, answers)


def test_planned_switchover_under_load_stops_writes_for_under_two_seconds(cluster: HaCluster) -> None:
    result = switchover_under_load(cluster)
    assert result.new_leader != result.old_leader
    assert result.lost == [], f"acknowledged writes missing after the switchover: {result.lost[:20]}"
    assert result.outage < SWITCHOVER_TARGET, f"switchover stopped writes for {result.outage:.2f}s"


def test_leader_crash_under_load_fails_over_through_the_same_endpoint_without_losing_acknowledged_writes(
    cluster: HaCluster,
) -> None:
    old_leader = cluster.wait_for_leader().name
    result = crash_leader_under_load(cluster)
    assert result.new_leader != old_leader
    assert result.lost == [], f"acknowledged writes missing on the new leader: {result.lost[:20]}"
    assert result.old_leader_state == "in production"  # crash recovery on its next start
    # The lease cannot expire sooner than ttl - loop_wait after the crash; promotion and HAProxy's
    # check are the only overhead allowed on top of ttl.
    timings = cluster.members[0].settings.timings
    assert timings.ttl - timings.loop_wait - 0.5 <= result.outage <= timings.ttl + 3, (
        f"failover took {result.outage:.2f}s with ttl={timings.ttl}\n{cluster.logs()}"
    )


def test_stopping_the_leader_as_docker_does_shuts_it_down_cleanly_and_hands_over_sooner_than_a_crash(
    cluster: HaCluster,
) -> None:
    old_leader = cluster.wait_for_leader().name
    result = stop_leader_under_load(cluster)
    assert result.new_leader != old_leader
    assert result.lost == [], f"acknowledged writes missing on the new leader: {result.lost[:20]}"
    # No crash recovery on its next start (a force-removed container would leave "in production").
    assert result.old_leader_state == "shut down", (result, cluster.logs())
    # A crash's failover waits for the lease: never sooner than ttl - loop_wait. Handed over, the
    # key goes at once (1.5 s here, also with the CPUs saturated); the bound is the lease's so a
    # slow shutdown checkpoint on a loaded machine does not fail it.
    timings = cluster.members[0].settings.timings
    assert result.outage < timings.ttl - timings.loop_wait - 0.5, (
        f"writes stopped for {result.outage:.2f}s: the leader key was not handed over\n{cluster.logs()}"
    )
