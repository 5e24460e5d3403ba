"""The rendered redis.conf and ACL file, run by a real `redis-server`.

The server is Debian's (`apt-get install -y redis-server`, 7.0 on bookworm); production runs the
official `redis:7.4` image with the same two files. Proven here: the server starts with our
config, each consumer logs in with its own password and lands in its own database, the default
user cannot log in, a wrong password is refused, the users cannot administer the server, the
exporter's user can read what redis_exporter reads and no keys, data written before a hard kill
is back after a restart (AOF), and provisioning twice changes nothing.

Each test server binds 127.0.0.1 on a free port with its files in a temp dir, and is stopped in
teardown even when a test fails.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from components.config.redis import (
    ACL_FILE,
    DATA_DIR,
    HEALTHCHECK_USER,
    MONITOR_USER,
    PORT,
    RedisSettings,
    acl_file,
    database_number,
    login_users,
    redis_conf,
    redis_url,
)
from tests.support import free_port

TIMEOUT = 20
SETTINGS = RedisSettings(memory_mb=256, consumers=("gitea", "nextcloud"), monitoring=True)
INSTALL_HINT = "run `apt-get install -y redis-server` (Debian's Redis server and redis-cli)"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} not found: {INSTALL_HINT}. These tests need the real server and do not skip.")
    return path


def passwords() -> dict[str, str]:
    return {user: os.urandom(16).hex() for user in login_users(SETTINGS)}


@dataclass
class Server:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def conf(self) -> Path:
        return self.root / "redis.conf"

    @property
    def acl(self) -> Path:
        return self.root / "users.acl"

    @property
    def data(self) -> Path:
        return self.root / "data"

    def provision(self, secrets: dict[str, str]) -> None:
        """What production does: render both files and (re)start the server with them.

        Redis changes into `dir` while it parses the file, before any later override applies,
        so the one line naming the image's /data is pointed at the temp dir here (as the
        PostgreSQL test does for hba_file); every other line is used verbatim.
        """
        conf = redis_conf(SETTINGS)
        assert conf.count(f"dir {DATA_DIR}\n") == 1
        self.conf.write_text(conf.replace(f"dir {DATA_DIR}\n", f"dir {self.data}\n"))
        self.acl.write_text(acl_file(SETTINGS, secrets))

    def start(self) -> None:
        # Arguments after the config file override it: they only confine the test server
        # (loopback, a free port, the ACL file beside the conf instead of /usr/local/etc/redis,
        # which is the image's, not this machine's).
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            [binary("redis-server"), str(self.conf), "--bind", "127.0.0.1", "--port", str(self.port),
             "--aclfile", str(self.acl)],
            stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"redis-server did not listen within {TIMEOUT}s:\n{(self.root / 'server.log').read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=TIMEOUT)
        self.process = None

    def cli(self, user: str | None, password: str | None, *command: str, db: int | None = None) -> str:
        """redis-cli as production's healthcheck runs it: the password in REDISCLI_AUTH, not argv."""
        argv = [binary("redis-cli"), "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if user is not None:
            argv += ["--user", user]
        if db is not None:
            argv += ["-n", str(db)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        if password is not None:
            env["REDISCLI_AUTH"] = password
        result = subprocess.run([*argv, *command], env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert not password or password not in " ".join(argv + list(command))
        return (result.stdout + result.stderr).strip()


@pytest.fixture
def server() -> Iterator[Server]:
    binary("redis-cli")
    root = Path(tempfile.mkdtemp(prefix="ceres-redis-"))
    server = Server(root, free_port())
    server.data.mkdir()
    try:
        yield server
    finally:
        server.stop(signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def running(server: Server) -> tuple[Server, dict[str, str]]:
    secrets = passwords()
    server.provision(secrets)
    server.start()
    return server, secrets


# --- the config itself -----------------------------------------------------------------------


def test_server_runs_with_the_rendered_settings(running) -> None:
    server, secrets = running
    health = (HEALTHCHECK_USER, secrets[HEALTHCHECK_USER])
    assert server.cli(*health, "ping") == "PONG"
    monitor = (MONITOR_USER, secrets[MONITOR_USER])
    config = server.cli(*monitor, "config", "get", "*").splitlines()
    settings = dict(zip(config[::2], config[1::2]))
    assert settings["appendonly"] == "yes"
    assert settings["appendfsync"] == "everysec"
    assert settings["save"] == "3600 1 300 100 60 10000"
    assert settings["maxmemory"] == str(128 * 1024 * 1024)  # half the 256 MB container limit
    assert settings["maxmemory-policy"] == "volatile-lru"
    assert settings["protected-mode"] == "yes"
    assert settings["databases"] == "16"


def test_rendered_config_names_the_production_paths() -> None:
    conf = redis_conf(SETTINGS)
    # The lines the test server overrides on its command line, as production has them.
    assert "bind 0.0.0.0\n" in conf and f"port {PORT}\n" in conf
    assert f"dir {DATA_DIR}\n" in conf and f"aclfile {ACL_FILE}\n" in conf


# --- who may log in --------------------------------------------------------------------------


def test_each_consumer_logs_in_with_its_own_password_into_its_own_database(running) -> None:
    server, secrets = running
    for consumer in SETTINGS.consumers:
        db = database_number(consumer)
        assert server.cli(consumer, secrets[consumer], "acl", "whoami") == consumer
        assert server.cli(consumer, secrets[consumer], "set", "owner", consumer, db=db) == "OK"
        # Another consumer's password does not open this user.
        other = next(c for c in SETTINGS.consumers if c != consumer)
        assert "WRONGPASS" in server.cli(consumer, secrets[other], "ping")
    for consumer in SETTINGS.consumers:
        assert server.cli(consumer, secrets[consumer], "get", "owner", db=database_number(consumer)) == consumer
    assert database_number("gitea") != database_number("nextcloud")


def test_default_user_and_wrong_passwords_are_refused(running) -> None:
    server, secrets = running
    assert "NOAUTH" in server.cli(None, None, "ping")
    assert "WRONGPASS" in server.cli("default", "", "ping")
    assert "WRONGPASS" in server.cli("default", secrets["gitea"], "ping")
    assert "WRONGPASS" in server.cli("gitea", secrets["gitea"] + "x", "ping")
    assert "WRONGPASS" in server.cli("nobody", secrets["gitea"], "ping")
    # Protected mode refuses every outside client while the default user is passwordless
    # (`nopass`); ours has no password at all, so the apps' logins from other containers pass.
    # (Not provable from 127.0.0.1, which protected mode always lets in.)
    acl = server.acl.read_text()
    assert acl.startswith("user default off resetpass ") and "nopass" not in acl


def test_the_acl_file_holds_digests_not_passwords(running) -> None:
    server, secrets = running
    acl = server.acl.read_text()
    for password in secrets.values():
        assert password not in acl
    assert ">" not in acl


def test_users_cannot_administer_the_server(running) -> None:
    server, secrets = running
    gitea = ("gitea", secrets["gitea"])
    for command in (["flushall"], ["config", "set", "maxmemory", "1"], ["acl", "list"], ["shutdown"],
                    ["bgsave"], ["monitor"], ["subscribe", "events"]):
        assert "NOPERM" in server.cli(*gitea, *command), command
    # What the apps do: strings, hashes, lists, expiry, Lua (Nextcloud's locks), KEYS (its cache clear).
    assert server.cli(*gitea, "hset", "h", "f", "v") == "1"
    assert server.cli(*gitea, "rpush", "queue", "job") == "1"
    assert server.cli(*gitea, "expire", "h", "60") == "1"
    assert server.cli(*gitea, "eval", "return redis.call('get', KEYS[1])", "1", "none") == ""
    assert server.cli(*gitea, "keys", "h*") == "h"
    health = (HEALTHCHECK_USER, secrets[HEALTHCHECK_USER])
    assert "NOPERM" in server.cli(*health, "get", "h")


def test_the_exporter_user_reads_what_redis_exporter_reads_and_no_keys(running) -> None:
    server, secrets = running
    monitor = (MONITOR_USER, secrets[MONITOR_USER])
    # The calls redis_exporter makes on a scrape (exporter/exporter.go scrapeRedisHost).
    assert server.cli(*monitor, "client", "setname", "redis_exporter") == "OK"
    assert "maxmemory" in server.cli(*monitor, "config", "get", "*")
    assert "redis_version" in server.cli(*monitor, "info", "all")
    assert "NOPERM" not in server.cli(*monitor, "latency", "latest")
    assert "NOPERM" not in server.cli(*monitor, "latency", "histogram")
    assert "NOPERM" not in server.cli(*monitor, "slowlog", "len")
    assert "NOPERM" not in server.cli(*monitor, "slowlog", "get", "128")
    for command in (["get", "owner"], ["keys", "*"], ["config", "set", "maxmemory", "1"], ["client", "kill", "id", "1"]):
        assert "NOPERM" in server.cli(*monitor, *command), command


# --- persistence and idempotence -------------------------------------------------------------


def test_data_survives_a_hard_kill_through_the_aof(running) -> None:
    server, secrets = running
    gitea = ("gitea", secrets["gitea"])
    assert server.cli(*gitea, "set", "durable", "yes", db=0) == "OK"
    # SIGKILL: no shutdown save, and no snapshot point is due yet, so only the AOF has it.
    server.stop(signal.SIGKILL)
    assert not (server.data / "dump.rdb").exists()
    assert any((server.data / "appendonlydir").iterdir())
    server.start()
    assert server.cli(*gitea, "get", "durable", db=0) == "yes"


def test_provisioning_twice_changes_nothing(running) -> None:
    server, secrets = running
    monitor = (MONITOR_USER, secrets[MONITOR_USER])
    gitea = ("gitea", secrets["gitea"])
    server.cli(*gitea, "set", "kept", "1", db=0)
    before_acl, before_conf = server.acl.read_text(), server.conf.read_text()
    users_before = server.cli(HEALTHCHECK_USER, secrets[HEALTHCHECK_USER], "acl", "whoami")

    server.stop()
    server.provision(secrets)
    assert server.acl.read_text() == before_acl and server.conf.read_text() == before_conf
    server.start()
    assert server.cli(HEALTHCHECK_USER, secrets[HEALTHCHECK_USER], "acl", "whoami") == users_before
    for consumer in SETTINGS.consumers:
        assert server.cli(consumer, secrets[consumer], "acl", "whoami") == consumer
    assert server.cli(*gitea, "get", "kept", db=0) == "1"
    assert "redis_version" in server.cli(*monitor, "info", "server")


def test_a_new_password_replaces_the_old_one(running) -> None:
    server, secrets = running
    rotated = dict(secrets, gitea=os.urandom(16).hex())
    server.stop()
    server.provision(rotated)
    server.start()
    assert server.cli("gitea", rotated["gitea"], "ping") == "PONG"
    assert "WRONGPASS" in server.cli("gitea", secrets["gitea"], "ping")
    assert server.cli("nextcloud", secrets["nextcloud"], "ping") == "PONG"


# --- rendering rules (no server) -------------------------------------------------------------


def test_rendering_refuses_unknown_or_reserved_consumers_and_missing_passwords() -> None:
    for bad in (("default",), ("healthcheck",), (MONITOR_USER,), ("wikijs",), ("Gitea",), ("gitea", "gitea")):
        with pytest.raises(ValueError):
            RedisSettings(memory_mb=256, consumers=bad)
    with pytest.raises(ValueError):
        RedisSettings(memory_mb=32, consumers=())
    with pytest.raises(ValueError, match="ceres_monitor"):
        acl_file(SETTINGS, {user: "x" for user in login_users(SETTINGS) if user != MONITOR_USER})


def test_the_url_quotes_what_a_url_cannot_carry() -> None:
    assert redis_url("gitea", "p@ss:w/rd", "redis", 6379, 0) == "redis://gitea:p%40ss%3Aw%2Frd@redis:6379/0"
