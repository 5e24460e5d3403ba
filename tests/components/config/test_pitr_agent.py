"""The PITR agent's pure parts (`components/config/pitr_agent.py`): the backup schedule, reading
`pgbackrest info`, the restore-target check and the metrics text. The info documents below are
real: printed by Debian's pgbackrest 2.45 `--output=json info` on an encrypted posix repository
(before stanza-create, right after it, after a full and a diff backup, and with a wrong
passphrase, whose decrypted garbage is cut short here). The metrics text is also checked by
Prometheus's own linter, `promtool check metrics` (Debian package `prometheus`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from components.config import pitr_agent
from components.config.pitr_agent import (
    HOUR,
    Archiver,
    Backup,
    Repository,
    State,
    check_target,
    due_backup,
    one_line,
    parse_info,
    parser,
    render_metrics,
)
from tests.components.config.stubs import path_with, python_stub, require

STANZA = "ceres-pg"
BEFORE_STANZA_CREATE = '[{"archive":[],"backup":[],"cipher":"aes-256-cbc","db":[],"name":"ceres-pg","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":1,"message":"missing stanza path"}}],"status":{"code":1,"lock":{"backup":{"held":false}},"message":"missing stanza path"}}]'
NO_BACKUP_YET = '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":null,"min":null}],"backup":[],"cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7712349051117095261,"version":"15"}],"name":"ceres-pg","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":2,"message":"no valid backups"}}],"status":{"code":2,"lock":{"backup":{"held":false}},"message":"no valid backups"}}]'
FULL_AND_DIFF = '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000004","min":"000000010000000000000001"}],"backup":[{"archive":{"start":"000000010000000000000002","stop":"000000010000000000000002"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":22992350,"repository":{"delta":2833552,"size":2833552},"size":22992350},"label":"20261126-053315F","lsn":{"start":"0/2000028","stop":"0/2000100"},"prior":null,"reference":null,"timestamp":{"start":1795671195,"stop":1795671198},"type":"full"},{"archive":{"start":"000000010000000000000003","stop":"000000010000000000000004"},"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":1},"error":false,"info":{"delta":8458,"repository":{"delta":464,"size":2833552},"size":22992350},"label":"20261126-053315F_20261126-053318D","lsn":{"start":"0/3000028","stop":"0/4000050"},"prior":"20261126-053315F","reference":["20261126-053315F"],"timestamp":{"start":1795671198,"stop":1795671200},"type":"diff"}],"cipher":"aes-256-cbc","db":[{"id":1,"repo-key":1,"system-id":7712349051117095261,"version":"15"}],"name":"ceres-pg","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":0,"message":"ok"}}],"status":{"code":0,"lock":{"backup":{"held":false}},"message":"ok"}}]'
# pgBackRest 2.45 exits 0 for this one: only the status (99, "other") and the repository's message tell.
WRONG_PASSPHRASE = (b'[{"archive":[],"backup":[],"cipher":"aes-256-cbc","db":[],"name":"ceres-pg","repo":[{"cipher":"aes-256-cbc","key":1,"status":{"code":99,"message":"[FormatError] unable to load info file \'/tmp/ceres-cap-OLcv/repo/backup/ceres-pg/backup.info\' or \'/tmp/ceres-cap-OLcv/repo/backup/ceres-pg/backup.info.copy\':\\nFormatError: key/value found outside of section at line 1: P_\xa5?\x95\xea\xf9EvA\xffn\xed?\x87]O\\\\\x18\xa8~\x80/d\xe5pw\x1e\xae\x1c1\xf4s\xd8c\\fS\xcd\\nHINT: backup.info cannot be opened and is required to perform a backup.\\nHINT: has a stanza-create been performed?"}}],"status":{"code":99,"lock":{"backup":{"held":false}},"message":"other"}}]'
                    ).decode(errors="replace")  # as the agent reads it

FULL_STOP, DIFF_STOP = 1795671198, 1795671200


def _backup(kind: str, stop: float) -> Backup:
    return Backup(f"{kind}-{stop}", kind, int(stop) - 5, int(stop))


# --- due_backup: every branch ------------------------------------------------------------------

NOW = 1_800_000_000.0
FULL_EVERY, DIFF_EVERY = 168 * HOUR, 24 * HOUR


def test_an_empty_repository_needs_a_full_backup() -> None:
    assert due_backup([], NOW, FULL_EVERY, DIFF_EVERY) == "full"


def test_only_diff_backups_still_need_a_full_one() -> None:
    assert due_backup([_backup("diff", NOW - 60)], NOW, FULL_EVERY, DIFF_EVERY) == "full"


def test_a_full_backup_older_than_full_every_needs_a_new_full_even_with_recent_diffs() -> None:
    backups = [_backup("full", NOW - FULL_EVERY - 1), _backup("diff", NOW - 60)]
    assert due_backup(backups, NOW, FULL_EVERY, DIFF_EVERY) == "full"


def test_the_newest_backup_older_than_diff_every_needs_a_diff() -> None:
    backups = [_backup("full", NOW - 3 * DIFF_EVERY), _backup("diff", NOW - DIFF_EVERY - 1)]
    assert due_backup(backups, NOW, FULL_EVERY, DIFF_EVERY) == "diff"


def test_a_recent_full_backup_counts_for_the_diff_schedule_too() -> None:
    backups = [_backup("diff", NOW - 2 * DIFF_EVERY), _backup("full", NOW - 60)]
    assert due_backup(backups, NOW, FULL_EVERY, DIFF_EVERY) is None


def test_nothing_is_due_while_the_newest_backup_is_recent() -> None:
    backups = [_backup("full", NOW - 3 * DIFF_EVERY), _backup("diff", NOW - DIFF_EVERY + 1)]
    assert due_backup(backups, NOW, FULL_EVERY, DIFF_EVERY) is None


def test_the_schedule_is_the_repositorys_so_a_new_leader_does_not_repeat_a_backup() -> None:
    # The old leader took a full a minute ago; the new one, reading the same repository, waits.
    assert due_backup(parse_info(FULL_AND_DIFF, STANZA).backups, DIFF_STOP + 60, FULL_EVERY, DIFF_EVERY) is None
    assert due_backup(parse_info(FULL_AND_DIFF, STANZA).backups, DIFF_STOP + DIFF_EVERY, FULL_EVERY, DIFF_EVERY) == "diff"


def test_a_new_timeline_makes_a_full_backup_due_at_once() -> None:
    """After a point-in-time restore the leader writes a new timeline: the backups before the
    branch cannot take a later restore past it, so a full one on the new timeline comes first."""
    backups = parse_info(FULL_AND_DIFF, STANZA).backups
    assert due_backup(backups, DIFF_STOP + 60, FULL_EVERY, DIFF_EVERY, timeline=1) is None
    assert due_backup(backups, DIFF_STOP + 60, FULL_EVERY, DIFF_EVERY, timeline=2) == "full"
    # A replica (no timeline asked) or an unknown one changes nothing.
    assert due_backup(backups, DIFF_STOP + 60, FULL_EVERY, DIFF_EVERY) is None


# --- pgbackrest info ---------------------------------------------------------------------------


def test_reads_the_backups_of_a_real_info_document_oldest_first() -> None:
    repository = parse_info(FULL_AND_DIFF, STANZA)
    assert repository.readable and repository.status == "ok"
    assert repository.backups == (
        Backup("20261126-053315F", "full", 1795671195, FULL_STOP, timeline=1),
        Backup("20261126-053315F_20261126-053318D", "diff", 1795671198, DIFF_STOP, timeline=1),
    )


def test_a_stanza_without_backups_is_readable_and_empty() -> None:
    assert parse_info(NO_BACKUP_YET, STANZA) == Repository(True, "no valid backups", ())


def test_a_stanza_never_created_is_not_readable_and_says_who_creates_it() -> None:
    repository = parse_info(BEFORE_STANZA_CREATE, STANZA)
    assert not repository.readable
    assert repository.status == "status 1: missing stanza path (the leader's stanza-create makes it)"


def test_a_wrong_passphrase_reads_as_unreadable_with_a_clean_one_line_reason() -> None:
    repository = parse_info(WRONG_PASSPHRASE, STANZA)
    assert not repository.readable and repository.backups == ()
    assert repository.status.startswith("status 99: [FormatError] unable to load info file '/tmp/ceres-cap-OLcv/repo/backup/ceres-pg/backup.info'")
    assert repository.status.endswith("(is PGBACKREST_REPO1_CIPHER_PASS the repository's passphrase?)")
    assert repository.status.isprintable() and "\ufffd" not in repository.status and "line 1:" not in repository.status


def test_other_stanzas_and_non_json_are_not_readable() -> None:
    assert parse_info(FULL_AND_DIFF, "other-stanza") == Repository(False, "stanza other-stanza is not in pgbackrest info")
    assert not parse_info("ERROR: [055]: unable to load info file", STANZA).readable


def test_one_line_keeps_messages_short_and_printable() -> None:
    assert one_line("a\nb\x00c" + "x" * 500) == "a | b c" + "x" * 293


# --- check-target ------------------------------------------------------------------------------

REPOSITORY = parse_info(FULL_AND_DIFF, STANZA)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, timezone(timedelta(hours=2)))


def test_a_target_after_a_backup_names_the_backup_pgbackrest_restores_from() -> None:
    assert check_target(REPOSITORY, _at(FULL_STOP + 1.5), NOW) == (
        0, f"restorable: {_at(FULL_STOP + 1.5).isoformat()} from full backup 20261126-053315F (ended 2026-11-26T05:33:18+00:00), then WAL replay")
    code, message = check_target(REPOSITORY, _at(DIFF_STOP + 1), NOW)
    assert code == 0 and "diff backup 20261126-053315F_20261126-053318D" in message


def test_a_target_in_a_backups_last_second_is_before_it_as_pgbackrest_counts() -> None:
    # pgBackRest picks the newest backup with stop < target in whole seconds: one ending in the
    # target's own second does not count (the restore would start from the previous one).
    code, message = check_target(REPOSITORY, _at(DIFF_STOP + 0.9), NOW)
    assert code == 0 and "full backup 20261126-053315F" in message
    code, message = check_target(REPOSITORY, _at(FULL_STOP + 0.9), NOW)
    assert code == 2 and "before the oldest backup's end: restorable from 2026-11-26T05:33:19+00:00 to now" in message


def test_a_future_target_is_refused_with_the_restorable_range() -> None:
    code, message = check_target(REPOSITORY, _at(NOW + 60), NOW)
    assert code == 2
    assert "is in the future: restorable from 2026-11-26T05:33:19+00:00 to now (2027-01-15T08:00:00+00:00" in message


def test_no_backup_or_an_unreadable_repository_is_refused() -> None:
    assert check_target(parse_info(NO_BACKUP_YET, STANZA), _at(NOW - 60), NOW) == (2, "no backup in the repository: nothing to restore from")
    code, message = check_target(parse_info(WRONG_PASSPHRASE, STANZA), _at(NOW - 60), NOW)
    assert code == 1 and message.startswith("cannot read the repository: status 99:")


def test_the_target_needs_an_offset() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["check-target", "--pgbackrest-config", "/c", "--stanza", "s", "--target", "2026-01-01T10:00:00"])
    args = parser().parse_args(["check-target", "--pgbackrest-config", "/c", "--stanza", "s", "--target", "2026-01-01T10:00:00Z"])
    assert args.target == datetime(2026, 1, 1, 10, tzinfo=timezone.utc)


# --- metrics -----------------------------------------------------------------------------------

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)$')


def _parse(text: str) -> dict[tuple[str, str], float]:
    """Samples by (name, label text); asserts every sample's metric has HELP and TYPE before it."""
    described: dict[str, set[str]] = {}
    samples: dict[tuple[str, str], float] = {}
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# "):
            kind, name = line.split(" ")[1:3]
            described.setdefault(name, set()).add(kind)
            continue
        match = SAMPLE.match(line)
        assert match, f"not a sample line: {line!r}"
        assert described.get(match["name"]) == {"HELP", "TYPE"}, f"{match['name']} lacks HELP or TYPE"
        samples[(match["name"], match["labels"] or "")] = float(match["value"])
    return samples


def _promtool(text: str) -> None:
    promtool = require("promtool", "apt-get install -y prometheus")
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_leaders_metrics_describe_the_repository_the_last_run_and_the_archive() -> None:
    state = State(REPOSITORY, leader=True, archiver=Archiver(1795671200.504417, 1795671100.0),
                  last_run_success=True, last_run_at=1795671200.75)
    text = render_metrics(state)
    _promtool(text)
    assert _parse(text) == {
        ("ceres_pitr_repository_up", ""): 1,
        ("ceres_pitr_last_backup_timestamp_seconds", 'type="diff"'): DIFF_STOP,
        ("ceres_pitr_last_backup_timestamp_seconds", 'type="full"'): FULL_STOP,
        ("ceres_pitr_oldest_restore_point_timestamp_seconds", ""): FULL_STOP,
        ("ceres_pitr_backups", ""): 2,
        ("ceres_pitr_leader", ""): 1,
        ("ceres_pitr_backup_last_run_success", ""): 1,
        ("ceres_pitr_backup_last_run_timestamp_seconds", ""): 1795671200.75,
        ("ceres_pitr_wal_archive_failing", ""): 0,
        ("ceres_pitr_wal_last_archived_timestamp_seconds", ""): 1795671200.504417,
    }


def test_a_failing_archive_and_a_failed_run_show() -> None:
    samples = _parse(render_metrics(State(REPOSITORY, leader=True, archiver=Archiver(None, 1795671100.0),
                                          last_run_success=False, last_run_at=1795671300.0)))
    assert samples[("ceres_pitr_wal_archive_failing", "")] == 1
    assert samples[("ceres_pitr_backup_last_run_success", "")] == 0
    assert ("ceres_pitr_wal_last_archived_timestamp_seconds", "") not in samples


def test_a_replica_reports_the_repository_but_no_archive_or_run() -> None:
    text = render_metrics(State(REPOSITORY, leader=False, archiver=Archiver(1.0, None)))
    _promtool(text)
    assert {name for name, _ in _parse(text)} == {
        "ceres_pitr_repository_up", "ceres_pitr_last_backup_timestamp_seconds",
        "ceres_pitr_oldest_restore_point_timestamp_seconds", "ceres_pitr_backups", "ceres_pitr_leader"}


def test_an_unreadable_repository_shows_down_and_no_stale_backup_figures() -> None:
    text = render_metrics(State(parse_info(WRONG_PASSPHRASE, STANZA), leader=False))
    _promtool(text)
    assert _parse(text) == {("ceres_pitr_repository_up", ""): 0, ("ceres_pitr_leader", ""): 0}


def test_the_agent_is_a_standalone_stdlib_script() -> None:
    # Copied alone into the container: it must not import the project, and must run as a file.
    script = Path(pitr_agent.__file__)
    source = script.read_text()
    assert not re.search(r"^\s*(from|import) (components|tests)\b", source, re.M)
    result = subprocess.run([sys.executable, "-I", str(script), "--help"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and "check-target" in result.stdout, result.stderr


# --- one loop, against stub pgbackrest and psql ------------------------------------------------

STUB_PGBACKREST = f"""
import os, sys
with open(os.environ["STUB_LOG"], "a") as log:
    log.write(" ".join(sys.argv[1:]) + "\\n")
if sys.argv[-1] == "info":
    print({NO_BACKUP_YET!r})
elif sys.argv[-1] == "backup":
    print("ERROR: [056]: unable to find primary cluster", file=sys.stderr)
    sys.exit(56)
"""


def _agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, psql_answer: str) -> pitr_agent.Agent:
    python_stub(tmp_path, "pgbackrest", STUB_PGBACKREST)
    # Leader check and pg_stat_archiver: `psql_answer` for the first, a failed archive for the second.
    python_stub(tmp_path, "psql", "import sys\nsql = sys.argv[-1]\n"
                f"print({psql_answer!r} if 'pg_is_in_recovery' in sql else '|1795671100.5')\n"
                f"sys.exit(2 if {psql_answer!r} == 'error' else 0)\n")
    monkeypatch.setenv("PATH", path_with(tmp_path))
    monkeypatch.setenv("STUB_LOG", str(tmp_path / "pgbackrest.log"))
    args = parser().parse_args(["run", "--pgbackrest-config=/etc/pgbackrest/pgbackrest.conf", "--stanza=ceres-pg",
                                "--listen=127.0.0.1:9854", "--full-every-hours=168", "--diff-every-hours=24",
                                "--interval-seconds=60", "--socket-dir=/var/run/postgresql", "--port=5432"])
    return pitr_agent.Agent(args)


def test_a_failed_backup_is_recorded_and_not_retried_every_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    agent = _agent(tmp_path, monkeypatch, "f")
    agent.step()
    agent.step()
    calls = (tmp_path / "pgbackrest.log").read_text().splitlines()
    prefix = "--config=/etc/pgbackrest/pgbackrest.conf --stanza=ceres-pg"
    assert calls == [f"{prefix} stanza-create", f"{prefix} --output=json info", f"{prefix} --type=full backup",
                     f"{prefix} --output=json info", f"{prefix} --output=json info"]
    samples = _parse(render_metrics(agent.state))
    assert samples[("ceres_pitr_backup_last_run_success", "")] == 0
    assert samples[("ceres_pitr_wal_archive_failing", "")] == 1
    assert samples[("ceres_pitr_repository_up", "")] == 1 and samples[("ceres_pitr_backups", "")] == 0
    assert "full backup failed, retrying at" in capsys.readouterr().err


def test_a_server_that_does_not_answer_is_not_the_leader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    agent = _agent(tmp_path, monkeypatch, "error")
    agent.step()
    # No stanza-create, no backup: only the repository read that every member does.
    assert (tmp_path / "pgbackrest.log").read_text().splitlines() == ["--config=/etc/pgbackrest/pgbackrest.conf --stanza=ceres-pg --output=json info"]
    assert _parse(render_metrics(agent.state))[("ceres_pitr_leader", "")] == 0
