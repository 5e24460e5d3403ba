"""The chat-redmine edge's settings script for redmine_messenger, run for real.

As in the container, `sh -s` (dash) runs the script; a stub `bundle` checks it is called as
`bundle exec rails runner -` and hands the Ruby on stdin to Debian's `ruby`, preloaded with a
stand-in for Redmine 6.0's `Setting` that behaves as Redmine's does for plugin settings:

- until saved, `Setting.plugin_redmine_messenger` is the plugin's registered default, which
  redmine_plugin_kit's loader makes from the plugin's config/settings.yml with symbol keys;
- a saved value is serialized to YAML and read back with `YAML.safe_load` and the classes Redmine
  permits (Symbol, ActiveSupport::HashWithIndifferentAccess), as Setting#value= / #value do;
- other settings (another plugin's, `host_name`) live next to it and count their writes too.

The plugin reads its settings as redmine_plugin_kit's `PluginBase.setting(:key)` does
(`settings.key?(key) ? settings[key] : default`), with a symbol: the test asks that question too,
so a value stored under a key the plugin cannot see would fail. Real ActiveSupport comes from
Debian's `ruby-activesupport`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.config import redmine as config
from tests.components.config.stubs import RAILS_RUNNER_BUNDLE, bin_dir, executable, path_with, require

TIMEOUT = 30
HOOK = "http://mattermost:8065/hooks/offline-hook-id-'quoted'\"$HOME"
ROTATED = "http://mattermost:8065/hooks/rotated0123456789"
MESSENGER = config.MessengerSettings(channel="projects", username="Redmine")

# alphanodes/redmine_messenger config/settings.yml: what its loader registers as the default.
RAILS = r"""
require 'json'
require 'yaml'
require 'active_support'
require 'active_support/hash_with_indifferent_access'

MESSENGER_DEFAULTS = YAML.safe_load(<<~DEFAULTS).transform_keys(&:to_sym)
  messenger_url: ''
  messenger_icon: 'https://raw.githubusercontent.com/alphanodes/redmine_messenger/master/assets/images/icon.png'
  messenger_channel: 'redmine'
  messenger_username: 'robot'
  filter_status: ''
  messenger_verify_ssl: 1
  messenger_direct_users_messages: 0
  auto_mentions: 0
  default_mentions: ''
  display_watchers: 0
  post_updates: 1
  new_include_description: 1
  updated_include_description: 1
  post_private_issues: 0
  post_private_notes: 0
  post_wiki: 0
  post_wiki_updates: 0
DEFAULTS

STATE_PATH = ENV.fetch('STUB_STATE')
$state = if File.exist?(STATE_PATH)
  JSON.parse(File.read(STATE_PATH))
else
  { 'stored' => {
      'host_name' => 'redmine.ceres.example.com',
      'plugin_redmine_oauth' => ActiveSupport::HashWithIndifferentAccess.new(
        'client_id' => 'redmine', 'site' => 'http://keycloak:8080'
      ).to_yaml,
    },
    'writes' => [] }
end
at_exit { File.write(STATE_PATH, JSON.dump($state)) }

class Setting
  DEFAULTS = { 'plugin_redmine_messenger' => MESSENGER_DEFAULTS, 'plugin_redmine_oauth' => {} }.freeze
  PERMITTED = [Symbol, ActiveSupport::HashWithIndifferentAccess].freeze

  def self.[](name)
    name = name.to_s
    stored = $state['stored'][name]
    return DEFAULTS.fetch(name) { raise "There's no setting named #{name}" } if stored.nil?
    DEFAULTS.key?(name) ? YAML.safe_load(stored, permitted_classes: PERMITTED) : stored
  end

  def self.[]=(name, value)
    name = name.to_s
    $state['writes'] << name
    $state['stored'][name] = DEFAULTS.key?(name) ? value.to_yaml : value
  end

  DEFAULTS.each_key do |name|
    define_singleton_method(name) { self[name] }
    define_singleton_method("#{name}=") { |value| self[name] = value }
  end
end

# What redmine_plugin_kit's PluginBase.setting(:key) returns to the plugin.
def plugin_setting(key)
  settings = Setting.plugin_redmine_messenger
  settings.key?(key) ? settings[key] : MESSENGER_DEFAULTS[key]
end
"""


@pytest.fixture
def rails(tmp_path: Path) -> Path:
    require("ruby", "run `apt-get install -y ruby` (Debian's Ruby runs the script's Ruby)")
    check = subprocess.run(["ruby", "-e", "require 'active_support'"], capture_output=True, text=True, timeout=TIMEOUT)
    if check.returncode != 0:
        pytest.fail("ActiveSupport is missing: apt-get install -y ruby-activesupport")
    executable(bin_dir(tmp_path) / "bundle", RAILS_RUNNER_BUNDLE)
    (tmp_path / "rails_stub.rb").write_text(RAILS)
    return tmp_path


def environment(rails: Path) -> dict[str, str]:
    return {
        "PATH": path_with(rails),
        "STUB_STATE": str(rails / "state.json"),
        "STUB_LOG": str(rails / "calls.log"),
        "STUB_RAILS": str(rails / "rails_stub.rb"),
        "RAILS_LOG_TO_STDOUT": "true",  # as the image sets it
    }


def run_script(rails: Path, script: str, hook: str | None = HOOK) -> subprocess.CompletedProcess[str]:
    env = environment(rails)
    if hook is not None:
        env[config.CHAT_HOOK_VARIABLE] = hook
    return subprocess.run(["dash", "-s"], input=script, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"script failed ({result.returncode}):\n{result.stderr}"
    return result


def state(rails: Path) -> dict:
    return json.loads((rails / "state.json").read_text())


def plugin_reads(rails: Path) -> dict:
    """Every setting as the plugin reads it (by symbol, with its defaults behind)."""
    program = "puts JSON.dump(MESSENGER_DEFAULTS.keys.to_h { |key| [key, plugin_setting(key)] })"
    result = subprocess.run(["ruby", "-r", str(rails / "rails_stub.rb"), "-e", program], env=environment(rails),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def stored_messenger(rails: Path) -> str:
    return state(rails)["stored"]["plugin_redmine_messenger"]


def test_script_is_valid_sh_and_its_ruby_is_valid_ruby():
    script = config.messenger_script(MESSENGER)
    assert subprocess.run(["dash", "-n"], input=script, text=True, timeout=TIMEOUT).returncode == 0
    ruby = script.split("<<'CERES_RUBY'\n", 1)[1].rsplit("CERES_RUBY\n", 1)[0]
    result = subprocess.run(["ruby", "-c"], input=ruby, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr


def test_first_run_points_the_plugin_at_the_hook_and_channel_and_keeps_its_defaults(rails: Path):
    ok(run_script(rails, config.messenger_script(MESSENGER)))
    reads = plugin_reads(rails)
    assert reads["messenger_url"] == HOOK, "the URL from the environment, byte for byte, readable by symbol"
    assert reads["messenger_channel"] == "projects"
    assert reads["messenger_username"] == "Redmine"
    # Everything else is what the plugin ships: new and updated tasks are posted with their
    # description, private ones are not.
    assert {key: reads[key] for key in ("post_updates", "new_include_description", "updated_include_description",
                                        "post_private_issues", "post_private_notes", "post_wiki")} == {
        "post_updates": 1, "new_include_description": 1, "updated_include_description": 1,
        "post_private_issues": 0, "post_private_notes": 0, "post_wiki": 0}
    assert reads["messenger_icon"].endswith("/assets/images/icon.png")
    assert stored_messenger(rails).startswith("--- !ruby/hash:ActiveSupport::HashWithIndifferentAccess"), \
        "stored as the plugin's settings page stores it"
    assert state(rails)["writes"] == ["plugin_redmine_messenger"]


def test_other_settings_and_other_plugins_are_untouched(rails: Path):
    ok(run_script(rails, config.messenger_script(MESSENGER)))
    stored = state(rails)["stored"]
    assert stored["host_name"] == "redmine.ceres.example.com"
    oauth = stored["plugin_redmine_oauth"]
    assert "client_id: redmine" in oauth and "site: http://keycloak:8080" in oauth
    assert "redmine_oauth" not in stored_messenger(rails)


def test_second_run_changes_nothing(rails: Path):
    ok(run_script(rails, config.messenger_script(MESSENGER)))
    before = state(rails)
    result = ok(run_script(rails, config.messenger_script(MESSENGER)))
    assert state(rails) == before
    assert "unchanged" in result.stderr


def test_a_new_hook_url_is_written_and_only_it(rails: Path):
    ok(run_script(rails, config.messenger_script(MESSENGER)))
    result = ok(run_script(rails, config.messenger_script(MESSENGER), hook=ROTATED))
    assert plugin_reads(rails)["messenger_url"] == ROTATED
    assert state(rails)["writes"] == ["plugin_redmine_messenger"] * 2
    assert result.stderr.strip().endswith("set messenger_url")


def test_a_change_made_in_redmine_to_another_key_survives(rails: Path):
    ok(run_script(rails, config.messenger_script(MESSENGER)))
    # An administrator turns on wiki posts in the settings page (values arrive as strings).
    tweak = ("s = Setting.plugin_redmine_messenger; s['post_wiki'] = '1'; Setting.plugin_redmine_messenger = s")
    subprocess.run(["ruby", "-r", str(rails / "rails_stub.rb"), "-e", tweak], env=environment(rails), check=True,
                   timeout=TIMEOUT)
    ok(run_script(rails, config.messenger_script(config.MessengerSettings(channel="tasks", username="Redmine"))))
    reads = plugin_reads(rails)
    assert reads["post_wiki"] == "1" and reads["messenger_channel"] == "tasks"


def test_the_hook_url_stays_out_of_the_script_the_command_line_and_the_output(rails: Path):
    script = config.messenger_script(MESSENGER)
    assert "hooks/" not in script
    result = ok(run_script(rails, script))
    assert HOOK not in (rails / "calls.log").read_text()
    assert "hooks/" not in result.stdout + result.stderr
    assert result.stdout == ""


def test_without_the_hook_url_it_stops_before_rails(rails: Path):
    result = run_script(rails, config.messenger_script(MESSENGER), hook=None)
    assert result.returncode != 0 and f"{config.CHAT_HOOK_VARIABLE} is not set" in result.stderr
    assert not (rails / "calls.log").exists()


@pytest.mark.parametrize("field, value", [
    ("channel", "Projects"), ("channel", "projects'; system('id'); '"), ("channel", ""),
    ("username", "Red'mine"), ("username", "Redmine\n"),
])
def test_rendering_refuses_values_that_could_break_the_script(field, value):
    with pytest.raises(ValueError):
        config.MessengerSettings(**{"channel": "projects", "username": "Redmine", field: value})
