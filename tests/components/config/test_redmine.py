"""Redmine's rendered bootstrap, run for real: `sh -s` as in the container, and its Ruby part with
Debian's real `ruby` (apt-get install ruby).

No Redmine runs here: a stub `bundle` on PATH checks it is called as `bundle exec rails runner -`
and hands the Ruby on stdin to `ruby`, preloaded with minimal stand-ins for the Redmine 6.0 API the
script uses (`User.find_by`, `#check_password?`, `#password=`, `#password_confirmation=`,
`#must_change_passwd=`, `#save!`, `#api_key`, `Setting[]`, `Setting[]=`) that keep their state in
a JSON file and count every write.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.config import redmine as config
from tests.components.config.stubs import bin_dir, executable, path_with, require, with_overrides

TIMEOUT = 30
PASSWORD = "n3w-'admin'\"pass\\word $HOME"
SYS_KEY = "sys-key-0123456789"
BOOTSTRAP = config.RedmineBootstrap.for_url("https://redmine.ceres.example.com")

BUNDLE = """#!/bin/sh
printf '%s\\n' "$*" >> "$STUB_LOG"
[ "$*" = "exec rails runner -" ] || { echo "stub bundle: unexpected $*" >&2; exit 97; }
# What Rails would log to stdout must stay off it: the script unsets this first.
[ -z "${RAILS_LOG_TO_STDOUT:-}" ] || { echo "stub bundle: RAILS_LOG_TO_STDOUT is still set" >&2; exit 98; }
env > "$STUB_ENV"
exec ruby -r "$STUB_RAILS" -
"""

RAILS = r"""
require 'json'
require 'securerandom'

STATE_PATH = ENV.fetch('STUB_STATE')
$state = if File.exist?(STATE_PATH)
  JSON.parse(File.read(STATE_PATH))
else
  { 'users' => { 'admin' => { 'password' => 'admin', 'must_change_passwd' => true, 'api_key' => nil } },
    'settings' => { 'rest_api_enabled' => '0', 'sys_api_enabled' => '0', 'sys_api_key' => '',
                    'host_name' => 'localhost:3000', 'protocol' => 'http' },
    'writes' => [] }
end
at_exit { File.write(STATE_PATH, JSON.dump($state)) }

class User
  def self.find_by(login:)
    data = $state['users'][login]
    data && new(login, data)
  end

  def initialize(login, data)
    @login, @data = login, data
  end

  attr_writer :password_confirmation

  def check_password?(clear) = @data['password'] == clear
  def password=(clear)
    @new_password = clear
  end
  def must_change_passwd=(value)
    @must_change = value
  end

  def save!
    if @new_password
      raise 'password confirmation does not match' unless @new_password == @password_confirmation
      $state['writes'] << 'password' if @data['password'] != @new_password
      @data['password'] = @new_password
    end
    @data['must_change_passwd'] = @must_change unless @must_change.nil?
    true
  end

  def api_key
    @data['api_key'] ||= begin
      $state['writes'] << 'api_token'
      SecureRandom.hex(20)
    end
  end
end

class Setting
  def self.[](name) = $state['settings'].fetch(name)
  def self.[]=(name, value)
    $state['writes'] << "setting:#{name}"
    $state['settings'][name] = value
  end
end
"""


@pytest.fixture
def rails(tmp_path: Path) -> Path:
    require("ruby", "run `apt-get install -y ruby` (Debian's Ruby runs the bootstrap's Ruby)")
    executable(bin_dir(tmp_path) / "bundle", BUNDLE)
    (tmp_path / "rails_stub.rb").write_text(RAILS)
    return tmp_path


def run_script(rails: Path, script: str, **overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path_with(rails),
        "STUB_STATE": str(rails / "state.json"),
        "STUB_LOG": str(rails / "calls.log"),
        "STUB_ENV": str(rails / "env.txt"),
        "STUB_RAILS": str(rails / "rails_stub.rb"),
        "RAILS_LOG_TO_STDOUT": "true",  # as the image sets it
        "REDMINE_SECRET_KEY_BASE": "key-base-from-the-container",
        config.ADMIN_PASSWORD_VARIABLE: PASSWORD,
        config.SYS_API_KEY_VARIABLE: SYS_KEY,
    }
    # The image is Debian bookworm: `sh -s` there is dash.
    return subprocess.run(["dash", "-s"], input=script, env=with_overrides(env, overrides), capture_output=True, text=True, timeout=TIMEOUT)


def state(rails: Path) -> dict:
    return json.loads((rails / "state.json").read_text())


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"bootstrap failed ({result.returncode}):\n{result.stderr}"
    return result


def test_script_is_valid_sh_and_its_ruby_is_valid_ruby():
    script = config.bootstrap_script(BOOTSTRAP)
    assert subprocess.run(["dash", "-n"], input=script, text=True, timeout=TIMEOUT).returncode == 0
    ruby = script.split("<<'CERES_RUBY'\n", 1)[1].rsplit("CERES_RUBY\n", 1)[0]
    result = subprocess.run(["ruby", "-c"], input=ruby, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr


def test_first_run_takes_over_the_admin_and_turns_on_the_apis(rails: Path):
    result = ok(run_script(rails, config.bootstrap_script(BOOTSTRAP)))
    after = state(rails)
    admin = after["users"]["admin"]
    assert admin["password"] == PASSWORD, "the password survives the trip byte for byte"
    assert admin["must_change_passwd"] is False
    assert after["settings"] == {
        "rest_api_enabled": "1",
        "sys_api_enabled": "1",
        "sys_api_key": SYS_KEY,
        "host_name": "redmine.ceres.example.com",
        "protocol": "https",
    }
    assert result.stdout.strip().splitlines()[-1] == admin["api_key"]
    assert result.stdout.strip() == admin["api_key"], "nothing but the key on stdout"
    assert (rails / "calls.log").read_text() == "exec rails runner -\n"


def test_second_run_changes_nothing_and_prints_the_same_key(rails: Path):
    first = ok(run_script(rails, config.bootstrap_script(BOOTSTRAP)))
    writes = len(state(rails)["writes"])
    second = ok(run_script(rails, config.bootstrap_script(BOOTSTRAP)))
    assert len(state(rails)["writes"]) == writes, state(rails)["writes"][writes:]
    assert second.stdout == first.stdout


def test_a_new_public_url_updates_only_the_host_name(rails: Path):
    ok(run_script(rails, config.bootstrap_script(BOOTSTRAP)))
    writes = len(state(rails)["writes"])
    ok(run_script(rails, config.bootstrap_script(config.RedmineBootstrap.for_url("https://pm.ceres.example.com"))))
    assert state(rails)["writes"][writes:] == ["setting:host_name"]


def test_a_changed_password_is_applied_again(rails: Path):
    ok(run_script(rails, config.bootstrap_script(BOOTSTRAP)))
    ok(run_script(rails, config.bootstrap_script(BOOTSTRAP), **{config.ADMIN_PASSWORD_VARIABLE: "rotated"}))
    assert state(rails)["users"]["admin"]["password"] == "rotated"


def test_secrets_stay_out_of_the_script_and_the_command_line(rails: Path):
    script = config.bootstrap_script(BOOTSTRAP)
    assert PASSWORD not in script and SYS_KEY not in script
    ok(run_script(rails, script))
    assert PASSWORD not in (rails / "calls.log").read_text()


def test_rails_gets_the_secret_key_base_the_server_uses(rails: Path):
    ok(run_script(rails, config.bootstrap_script(BOOTSTRAP)))
    env = dict(line.split("=", 1) for line in (rails / "env.txt").read_text().splitlines() if "=" in line)
    assert env["SECRET_KEY_BASE"] == "key-base-from-the-container"


@pytest.mark.parametrize("missing", [config.ADMIN_PASSWORD_VARIABLE, config.SYS_API_KEY_VARIABLE])
def test_without_a_secret_it_stops_before_rails(rails: Path, missing: str):
    result = run_script(rails, config.bootstrap_script(BOOTSTRAP), **{missing: None})
    assert result.returncode != 0 and f"{missing} is not set" in result.stderr
    assert not (rails / "calls.log").exists()


def test_without_the_default_admin_it_fails_clearly(rails: Path):
    (rails / "state.json").write_text(json.dumps({"users": {}, "settings": {}, "writes": []}))
    result = run_script(rails, config.bootstrap_script(BOOTSTRAP))
    assert result.returncode != 0 and 'no user "admin"' in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("url", ["https://redmine.example.com'; system('id'); '", "ftp://redmine.example.com"])
def test_rendering_refuses_urls_that_are_not_plain(url: str):
    with pytest.raises(ValueError):
        config.RedmineBootstrap.for_url(url)
