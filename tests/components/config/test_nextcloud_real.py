"""Nextcloud's Redis config file, checked by the real `php` (Debian `php-cli`), and its bootstrap
script run by `sh` against a stub `php` whose `occ config:system:get` merges the config files
the way Nextcloud does (config.php, then every *.config.php, top-level keys replaced).

Keys checked against Nextcloud 31's config.sample.php: `memcache.distributed`,
`memcache.locking`, `redis` => host, port, user, password, dbindex, timeout.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from components.config.nextcloud import (
    REDIS_CONFIG_NAME,
    REDIS_PASSWORD_VARIABLE,
    Bootstrap,
    RedisConnection,
    bootstrap_script,
    redis_config_php,
    )
from tests.components.config.stubs import path_with, python_stub

REDIS = RedisConnection(host="redis", port=6379, user="nextcloud", db=1)
EXPECTED = {
    "memcache.distributed": "\\OC\\Memcache\\Redis",
    "memcache.locking": "\\OC\\Memcache\\Redis",
    "redis": {"host": "redis", "port": 6379, "user": "nextcloud", "password": "s3cret", "dbindex": 1, "timeout": 1.5},
}


def php() -> str:
    path = shutil.which("php", path="/usr/bin:/bin")
    if path is None:
        pytest.fail("php not found: run `apt-get install -y php-cli`. These tests need the real interpreter and do not skip.")
    return path


def evaluate(config_dir: Path, env: dict[str, str]) -> dict:
    """Nextcloud's merge (lib/private/Config.php readData): config.php, then *.config.php in order."""
    code = (
        "$merged = [];"
        "$files = array_merge(glob($argv[1] . '/config.php'), glob($argv[1] . '/*.config.php'));"
        "foreach ($files as $file) { unset($CONFIG); include $file; $merged = array_merge($merged, $CONFIG); }"
        "echo json_encode($merged);"
    )
    result = subprocess.run([php(), "-r", code, str(config_dir)], env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rendered_config_is_valid_php_and_reads_the_password_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / REDIS_CONFIG_NAME
    path.write_text(redis_config_php(REDIS))
    lint = subprocess.run([php(), "-l", str(path)], capture_output=True, text=True, timeout=30)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert evaluate(tmp_path, {REDIS_PASSWORD_VARIABLE: "s3cret"}) == EXPECTED
    assert "s3cret" not in path.read_text()


def test_our_file_overrides_the_redis_settings_of_config_php(tmp_path: Path) -> None:
    (tmp_path / "config.php").write_text("<?php\n$CONFIG = array('redis' => array('host' => 'old'), 'dbtype' => 'pgsql');\n")
    (tmp_path / REDIS_CONFIG_NAME).write_text(redis_config_php(REDIS))
    merged = evaluate(tmp_path, {REDIS_PASSWORD_VARIABLE: "s3cret"})
    assert merged["redis"] == EXPECTED["redis"] and merged["dbtype"] == "pgsql"


STUB_PHP = textwrap.dedent("""\
    import json, os, subprocess, sys
    state = os.environ["STUB_STATE"]
    calls = json.load(open(state))
    calls.append(sys.argv[1:])
    json.dump(calls, open(state, "w"))
    sys.stdin.read()  # as a CLI may: under `sh -s` that would swallow the rest of the script
    occ, *args = sys.argv[1:]
    root = os.path.dirname(occ)
    if args[:2] == ["config:system:get", "memcache.locking"]:
        code = ("$m = []; foreach (glob($argv[1] . '/*.config.php') as $f) { include $f; $m = array_merge($m, $CONFIG); }"
                " echo $m['memcache.locking'] ?? '', PHP_EOL;")
        sys.exit(subprocess.run([os.environ["REAL_PHP"], "-r", code, root + "/config"]).returncode)
""")


@pytest.fixture
def nextcloud_root(tmp_path: Path) -> Path:
    root = tmp_path / "html"
    (root / "config").mkdir(parents=True)
    python_stub(tmp_path, "php", STUB_PHP)
    (tmp_path / "calls.json").write_text("[]")
    return root


def run(root: Path, redis: RedisConnection | None, password: str | None = "s3cret") -> subprocess.CompletedProcess[str]:
    env = {"PATH": path_with(root.parent), "STUB_STATE": str(root.parent / "calls.json"), "REAL_PHP": php()}
    if password is not None:
        env[REDIS_PASSWORD_VARIABLE] = password
    script = bootstrap_script(Bootstrap(redis=redis, root=str(root)))
    return subprocess.run(["sh", "-s"], input=script, env=env, capture_output=True, text=True, timeout=60)


def calls(root: Path) -> list[list[str]]:
    return json.loads((root.parent / "calls.json").read_text())


def test_scripts_are_valid_sh() -> None:
    for redis in (REDIS, None):
        result = subprocess.run(["sh", "-n"], input=bootstrap_script(Bootstrap(redis=redis)), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr


def test_bootstrap_sets_cron_mode_and_installs_the_redis_file_idempotently(nextcloud_root: Path) -> None:
    first = run(nextcloud_root, REDIS)
    assert first.returncode == 0, first.stderr
    target = nextcloud_root / "config" / REDIS_CONFIG_NAME
    content = target.read_text()
    assert content == redis_config_php(REDIS)
    second = run(nextcloud_root, REDIS)
    assert second.returncode == 0, second.stderr
    assert target.read_text() == content
    assert sorted(p.name for p in (nextcloud_root / "config").iterdir()) == [REDIS_CONFIG_NAME]
    occ = [call[1:] for call in calls(nextcloud_root)]
    assert occ.count(["background:cron"]) == 2
    assert all(call[0] == f"{nextcloud_root}/occ" for call in calls(nextcloud_root))
    assert "s3cret" not in json.dumps(calls(nextcloud_root)) and "s3cret" not in content


def test_bootstrap_fails_when_the_container_has_no_redis_password(nextcloud_root: Path) -> None:
    result = run(nextcloud_root, REDIS, password=None)
    assert result.returncode != 0 and REDIS_PASSWORD_VARIABLE in result.stderr
    assert not (nextcloud_root / "config" / REDIS_CONFIG_NAME).exists()


def test_without_redis_the_file_is_removed(nextcloud_root: Path) -> None:
    assert run(nextcloud_root, REDIS).returncode == 0
    result = run(nextcloud_root, None, password=None)
    assert result.returncode == 0, result.stderr
    assert not (nextcloud_root / "config" / REDIS_CONFIG_NAME).exists()
    assert run(nextcloud_root, None, password=None).returncode == 0


def test_inputs_that_would_break_the_php_are_refused() -> None:
    for bad in (dict(host="redis'; evil"), dict(user="Next Cloud"), dict(db=16), dict(port=0)):
        with pytest.raises(ValueError):
            RedisConnection(**{"host": "redis", "port": 6379, "user": "nextcloud", "db": 1, **bad})

