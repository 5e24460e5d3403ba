"""The commits-redmine and wiki-redmine settings steps, run for real.

As in the container, `sh -s` (dash) runs each script; a stub `bundle` checks it is called as
`bundle exec rails runner -` and hands the Ruby on stdin to Debian's `ruby`, preloaded with
stand-ins for the Redmine 6.0 API the scripts use, kept in a JSON file between runs:

- `Setting[]`/`Setting[]=` as Redmine's: unsaved settings read as config/settings.yml's defaults
  (as strings, the way `Setting#value=` stores them), serialized ones (`enabled_scm`,
  `commit_update_keywords`, `default_projects_modules`) round-trip through YAML; every write counts.
- `Redmine::DefaultData::Loader.no_data?`/`.load` (lib/redmine/default_data/loader.rb: `load`
  refuses when any data exists), `IssueStatus.find_by(name:)`.
- `ProjectCustomField` (find_by, new, the attributes set, `new_record?`, `changed?`, `save!`),
  `CustomValue.where(...).pluck`, `CustomValue.create!`, `Project.where.not(id:).find_each`.

What Redmine then does with the settings is checked against its own rule: the stand-in
`fix_rule_for(keyword)` is `Setting.commit_update_keywords_array` + `Changeset#fix_issue`'s lookup.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from components.config import redmine as config
from tests.components.config.stubs import RAILS_RUNNER_BUNDLE, bin_dir, executable, path_with, require

TIMEOUT = 30
WIKI = "https://wikijs.ceres.localhost"

RAILS = r"""
require 'json'
require 'yaml'

STATE_PATH = ENV.fetch('STUB_STATE')
$state = JSON.parse(File.exist?(STATE_PATH) ? File.read(STATE_PATH) : ENV.fetch('STUB_INITIAL'))
$state['writes'] ||= []
at_exit { File.write(STATE_PATH, JSON.dump($state)) }

class Setting
  SERIALIZED = %w(enabled_scm commit_update_keywords default_projects_modules).freeze
  # Redmine 6.0 config/settings.yml, for the settings these steps touch.
  DEFAULTS = {
    'enabled_scm' => %w(Subversion Mercurial Cvs Bazaar Git),
    'autofetch_changesets' => '1', 'sys_api_enabled' => '0', 'commit_cross_project_ref' => '0',
    'commit_ref_keywords' => 'refs,references,IssueID', 'commit_update_keywords' => [],
    'commit_logtime_enabled' => '0',
    'default_projects_modules' => %w(issue_tracking time_tracking news documents files wiki repository boards calendar gantt),
  }.freeze

  def self.[](name)
    name = name.to_s
    raise "There's no setting named #{name}" unless DEFAULTS.key?(name)
    stored = $state['settings'][name]
    return DEFAULTS[name] if stored.nil?
    SERIALIZED.include?(name) ? YAML.safe_load(stored) : stored
  end

  def self.[]=(name, value)
    name = name.to_s
    raise "There's no setting named #{name}" unless DEFAULTS.key?(name)
    $state['writes'] << name
    $state['settings'][name] = SERIALIZED.include?(name) ? value.to_yaml : value.to_s
  end

  def self.commit_update_keywords_array
    Array(self['commit_update_keywords']).select { |rule| rule.is_a?(Hash) }.map do |rule|
      rule.reject { |_, v| v.to_s.empty? }.merge('keywords' => rule['keywords'].to_s.downcase.split(',').map(&:strip))
    end
  end
end

IssueStatusRecord = Struct.new(:id, :name)
class IssueStatus
  def self.find_by(name:)
    found = $state['statuses'].find { |s| s['name'] == name }
    found && IssueStatusRecord.new(found['id'], found['name'])
  end
end

module Redmine
  module DefaultData
    module Loader
      def self.no_data? = $state['statuses'].empty? && !$state['other_default_data']

      def self.load(lang)
        raise 'Some configuration data is already loaded.' unless no_data?
        $state['loaded'] = lang
        %w(New In\ Progress Resolved Feedback Closed Rejected).each_with_index do |name, i|
          $state['statuses'] << { 'id' => i + 1, 'name' => name }
        end
      end
    end
  end
end

class ProjectCustomField
  ATTRIBUTES = %w(name field_format url_pattern default_value description visible).freeze
  attr_accessor(*ATTRIBUTES)
  attr_reader :id

  def self.find_by(name:)
    data = $state['fields'].find { |f| f['name'] == name }
    data && new(data)
  end

  def initialize(attributes = {})
    attributes.each { |k, v| instance_variable_set("@#{k}", v) }
    @saved = attributes.key?('id') ? attributes.dup : nil
  end

  def new_record? = @saved.nil?
  def snapshot = ATTRIBUTES.to_h { |a| [a, send(a)] }
  def changed? = !new_record? && ATTRIBUTES.any? { |a| @saved[a] != send(a) }

  def save!
    $state['writes'] << "field:#{name}"
    @id ||= $state['fields'].size + 1
    $state['fields'].reject! { |f| f['id'] == @id }
    $state['fields'] << snapshot.merge('id' => @id)
    @saved = snapshot.merge('id' => @id)
    true
  end
end

class CustomValue
  Scope = Struct.new(:rows) do
    def pluck(column) = rows.map { |row| row[column.to_s] }
  end

  def self.where(custom_field_id:, customized_type:)
    Scope.new($state['values'].select { |v| v['custom_field_id'] == custom_field_id && v['customized_type'] == customized_type })
  end

  def self.create!(custom_field:, customized:, value:)
    $state['writes'] << "value:#{customized.identifier}"
    $state['values'] << { 'custom_field_id' => custom_field.id, 'customized_type' => 'Project',
                          'customized_id' => customized.id, 'value' => value }
  end
end

ProjectRecord = Struct.new(:id, :identifier)
class Project
  Where = Struct.new(:rows) do
    def not(id:) = Where.new(rows.reject { |p| id.include?(p['id']) })
    def find_each(&block) = rows.map { |p| ProjectRecord.new(p['id'], p['identifier']) }.each(&block)
  end

  def self.where = Where.new($state['projects'])
end

# Changeset#fix_issue: the first rule holding the keyword (no tracker condition here) gives the status.
def fix_rule_for(keyword)
  Setting.commit_update_keywords_array.detect { |rule| rule['keywords'].include?(keyword) }
end
"""

FRESH = {"settings": {}, "statuses": [], "fields": [], "values": [], "projects": []}


@pytest.fixture
def rails(tmp_path: Path) -> Path:
    require("ruby", "run `apt-get install -y ruby` (Debian's Ruby runs the script's Ruby)")
    executable(bin_dir(tmp_path) / "bundle", RAILS_RUNNER_BUNDLE)
    (tmp_path / "rails_stub.rb").write_text(RAILS)
    return tmp_path


def run_script(rails: Path, script: str, initial: dict = FRESH) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": path_with(rails),
        "STUB_STATE": str(rails / "state.json"),
        "STUB_LOG": str(rails / "calls.log"),
        "STUB_RAILS": str(rails / "rails_stub.rb"),
        "STUB_INITIAL": json.dumps(initial),
        "RAILS_LOG_TO_STDOUT": "true",  # as the image sets it
    }
    return subprocess.run(["dash", "-s"], input=script, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"script failed ({result.returncode}):\n{result.stderr}"
    return result


def state(rails: Path) -> dict:
    return json.loads((rails / "state.json").read_text())


def ruby(rails: Path, program: str):
    """What the stand-in Redmine answers `program` (Ruby printing JSON) with, on the saved state."""
    result = subprocess.run(["ruby", "-r", str(rails / "rails_stub.rb"), "-e", program],
                            env={"STUB_STATE": str(rails / "state.json"), "STUB_INITIAL": "{}", "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def setting(rails: Path, name: str):
    return ruby(rails, f"puts JSON.dump(Setting['{name}'])")


COMMITS = config.commits_script(config.CommitLinks())
WIKI_STEP = config.wiki_script(config.WikiLinks(wiki_url=WIKI))


@pytest.mark.parametrize("script", [COMMITS, WIKI_STEP], ids=["commits", "wiki"])
def test_scripts_are_valid_sh_and_their_ruby_is_valid_ruby(script):
    assert subprocess.run(["dash", "-n"], input=script, text=True, timeout=TIMEOUT).returncode == 0
    body = script.split("<<'CERES_RUBY'\n", 1)[1].rsplit("CERES_RUBY\n", 1)[0]
    result = subprocess.run(["ruby", "-c"], input=body, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0 and "Syntax OK" in result.stdout, result.stderr


# --- commits-redmine ---------------------------------------------------------------------------------

def test_on_a_fresh_redmine_it_loads_the_default_statuses_and_sets_what_commits_need(rails):
    result = ok(run_script(rails, COMMITS))
    saved = state(rails)
    assert saved["loaded"] == "en", "the default configuration, as the administration page loads it"
    resolved = next(s["id"] for s in saved["statuses"] if s["name"] == "Resolved")
    assert "Git" in setting(rails, "enabled_scm")
    assert setting(rails, "sys_api_enabled") == "1"
    assert setting(rails, "commit_ref_keywords") == "refs,references,IssueID"
    assert setting(rails, "commit_logtime_enabled") == "0"
    assert setting(rails, "autofetch_changesets") == "0"
    assert setting(rails, "commit_cross_project_ref") == "1"
    # What Redmine does with `fixes #N`, `closes #N`, `resolves #N`: assigns the Resolved status.
    for keyword in ("fixes", "closes", "resolves"):
        rule = ruby(rails, f"puts JSON.dump(fix_rule_for('{keyword}'))")
        assert rule["status_id"] == str(resolved), keyword
    assert ruby(rails, "puts JSON.dump(fix_rule_for('refs'))") is None, "refs only links"
    assert result.stdout == ""


def test_second_run_changes_nothing(rails):
    ok(run_script(rails, COMMITS))
    before = state(rails)
    ok(run_script(rails, COMMITS))
    assert state(rails) == before


def test_git_is_added_to_the_enabled_scms_an_administrator_chose(rails):
    ok(run_script(rails, COMMITS, {**FRESH, "settings": {"enabled_scm": "---\n- Subversion\n"}}))
    assert setting(rails, "enabled_scm") == ["Subversion", "Git"]


def test_the_status_is_found_by_name_where_the_data_already_exists(rails):
    initial = {**FRESH, "statuses": [{"id": 7, "name": "New"}, {"id": 12, "name": "Resolved"}]}
    ok(run_script(rails, COMMITS, initial))
    assert "loaded" not in state(rails), "existing data is never reloaded"
    assert ruby(rails, "puts JSON.dump(fix_rule_for('fixes'))")["status_id"] == "12"


def test_rules_for_other_keywords_stay_and_a_stale_rule_for_ours_is_replaced(rails):
    rules = [{"keywords": "Fixes", "status_id": "5"}, {"keywords": "wontfix", "status_id": "6", "done_ratio": "0"}]
    initial = {**FRESH, "statuses": [{"id": 3, "name": "Resolved"}],
               "settings": {"commit_update_keywords": json.dumps(rules)}}  # JSON is YAML
    ok(run_script(rails, COMMITS, initial))
    assert setting(rails, "commit_update_keywords") == [
        {"keywords": "fixes,closes,resolves", "status_id": "3"},
        {"keywords": "wontfix", "status_id": "6", "done_ratio": "0"},
    ]


def test_it_fails_naming_the_status_when_redmine_has_data_but_no_such_status(rails):
    initial = {**FRESH, "statuses": [{"id": 1, "name": "New"}, {"id": 5, "name": "Closed"}]}
    result = run_script(rails, COMMITS, initial)
    assert result.returncode != 0
    assert 'no issue status named "Resolved"' in result.stderr
    assert state(rails)["writes"] == [], "nothing is half-configured"


def test_the_fix_status_and_keywords_come_from_the_typed_input(rails):
    links = config.CommitLinks(fix_keywords=("fixes",), fix_status="Closed")
    ok(run_script(rails, config.commits_script(links)))
    closed = next(s["id"] for s in state(rails)["statuses"] if s["name"] == "Closed")
    assert ruby(rails, "puts JSON.dump(fix_rule_for('fixes'))")["status_id"] == str(closed)
    assert ruby(rails, "puts JSON.dump(fix_rule_for('closes'))") is None


@pytest.mark.parametrize("field, value", [
    ("fix_status", "Resolved'); system('id'); ('"), ("fix_status", ""), ("fix_keywords", ("fix es",)),
    ("ref_keywords", ()), ("fix_keywords", ("fixes,closes",)),
])
def test_commit_links_refuse_values_that_could_break_the_script(field, value):
    with pytest.raises(ValueError):
        config.CommitLinks(**{field: value})


# --- wiki-redmine ------------------------------------------------------------------------------------

PROJECTS = [{"id": 1, "identifier": "apollo"}, {"id": 2, "identifier": "gemini"}]


def test_the_wiki_module_is_off_for_new_projects_and_the_rest_of_the_list_stays(rails):
    ok(run_script(rails, WIKI_STEP))
    assert setting(rails, "default_projects_modules") == [
        "issue_tracking", "time_tracking", "news", "documents", "files", "repository", "boards", "calendar", "gantt"]


def test_every_project_gets_a_link_field_to_its_wiki_space(rails):
    ok(run_script(rails, WIKI_STEP, {**FRESH, "projects": PROJECTS}))
    saved = state(rails)
    [field] = saved["fields"]
    assert field["field_format"] == "link" and field["visible"] is True
    assert field["url_pattern"] == "https://wikijs.ceres.localhost/%project_identifier%"
    assert field["default_value"] == "Wiki", "new projects get the link from the default"
    assert sorted(v["customized_id"] for v in saved["values"]) == [1, 2], "projects made before get it too"
    assert all(v["value"] == "Wiki" and v["custom_field_id"] == field["id"] for v in saved["values"])


def test_second_run_changes_nothing_and_a_new_project_is_linked_on_the_next(rails):
    ok(run_script(rails, WIKI_STEP, {**FRESH, "projects": PROJECTS}))
    before = state(rails)
    ok(run_script(rails, WIKI_STEP))
    assert state(rails) == before
    grown = {**before, "projects": [*PROJECTS, {"id": 3, "identifier": "mercury"}], "writes": []}
    (rails / "state.json").write_text(json.dumps(grown))
    ok(run_script(rails, WIKI_STEP))
    assert state(rails)["writes"] == ["value:mercury"]


def test_a_new_wiki_url_updates_the_field_in_place(rails):
    ok(run_script(rails, WIKI_STEP, {**FRESH, "projects": PROJECTS}))
    ok(run_script(rails, config.wiki_script(config.WikiLinks(wiki_url="https://wiki.example.com/"))))
    [field] = state(rails)["fields"]
    assert field["url_pattern"] == "https://wiki.example.com/%project_identifier%"
    assert len(state(rails)["values"]) == 2


def test_a_field_of_that_name_with_another_format_stops_it(rails):
    initial = {**FRESH, "fields": [{"id": 1, "name": "Wiki", "field_format": "string"}]}
    result = run_script(rails, WIKI_STEP, initial)
    assert result.returncode != 0 and "format string, not link" in result.stderr


@pytest.mark.parametrize("url", ["wikijs.ceres.localhost", "https://wiki/'; system('id')", "javascript:alert(1)"])
def test_wiki_links_refuse_urls_that_are_not_plain(url):
    with pytest.raises(ValueError):
        config.WikiLinks(wiki_url=url)
