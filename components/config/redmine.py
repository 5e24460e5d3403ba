"""Redmine config: the bootstrap that takes over the default admin and turns on the APIs CERES uses,
and single sign-on: the derived image with an OAuth plugin, and the script that configures it.

Pure functions of typed inputs. The scripts are `sh` wrapping Ruby run by `rails runner` (Ruby on
stdin through a heredoc); tests run them with the real `ruby` against minimal stand-ins for
Redmine's `User`, `Setting` and `Redmine::Ciphering`.

Redmine has no OpenID Connect of its own. Neither plugin INTEGRATION_FACTS names supports the
pinned Redmine 6.0 (Rails 7.2): devopskube/redmine_openid_connect has no Redmine 5/6 release (its
issue #98: the httparty 0.14 pin breaks `bundle install`, and it fails on 6.0.2);
Contargo/redmine_oidc was tested up to Redmine 4.1 (its Redmine 5 fix is an unmerged PR) and needs
a Redis session store. kontron/redmine_oauth is maintained and requires Redmine 6.0 from 3.0.0
(`requires_redmine version_or_higher: '6.0.0'`); its generic OIDC provider takes separate browser
and server endpoints, uses PKCE, and sets Redmine's admin flag from a role claim.

Task changes reach the chat through alphanodes/redmine_messenger, which posts Slack-format messages
straight to a Mattermost incoming webhook. It needs no other plugin (no `additionals`): its Gemfile
asks for the gems `redmine_plugin_kit` (its loader) and `slim-rails`, installed with the image.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import urlencode

# The official image drops to this user (uid 999) before running Rails; so does the bootstrap.
CONTAINER_USER = "redmine"
FILES_DIR = "/usr/src/redmine/files"
# Where the image's entrypoint puts its SQLite database when no server database is named.
SQLITE_DIR = "/usr/src/redmine/sqlite"
ADMIN_PASSWORD_VARIABLE = "REDMINE_ADMIN_PASSWORD"
SYS_API_KEY_VARIABLE = "REDMINE_SYS_API_KEY"

_HOST_NAME = re.compile(r"^[a-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._/-]*)?$")

OAUTH_PLUGIN = "redmine_oauth"
MESSENGER_PLUGIN = "redmine_messenger"
# The plugin's callback route (config/routes.rb: get 'oauth2callback').
OAUTH_CALLBACK = "/oauth2callback"
CLIENT_SECRET_VARIABLE = "CERES_OIDC_CLIENT_SECRET"
# The claim that lists the person's Redmine roles: the plugin lets in those with `user` or `admin`
# and sets Redmine's admin flag from `admin` at every sign-in (so leaving the group demotes).
ROLES_CLAIM = "redmine_roles"
ADMIN_ROLE = "admin"
USER_ROLE = "user"

# What the messenger posts as: the hook URL is a secret from the environment, the rest is plain.
CHAT_HOOK_VARIABLE = "CERES_CHAT_HOOK_URL"

_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?")
# A plugin is pinned by a full commit id or by a release tag (fetched as refs/tags/<tag>).
_GIT_REF = re.compile(r"[0-9a-f]{40}|refs/tags/[0-9A-Za-z][0-9A-Za-z._-]*")
_GIT_URL = re.compile(r"https://[A-Za-z0-9./_-]+\.git")
_PLUGIN_NAME = re.compile(r"redmine_[a-z0-9_]+")
_LABEL = re.compile(r"[a-z0-9]+")
_VERSION = re.compile(r"[0-9A-Za-z._-]+")
_CHANNEL = re.compile(r"[a-z0-9_-]{1,64}")
_USERNAME = re.compile(r"[A-Za-z0-9 ._-]{1,64}")
_URL = re.compile(r"https?://[^\s'\\]+")
_CLIENT_ID = re.compile(r"[a-z0-9-]+")


@dataclass(frozen=True)
class RedmineBootstrap:
    """Redmine's `host_name` setting is the public URL without its scheme; `protocol` is the scheme."""

    host_name: str
    protocol: str = "https"

    def __post_init__(self) -> None:
        if not _HOST_NAME.match(self.host_name):
            raise ValueError(f"host name {self.host_name!r} is not a host[:port][/path] Redmine can use")
        if self.protocol not in ("http", "https"):
            raise ValueError(f"protocol {self.protocol!r} must be http or https")

    @classmethod
    def for_url(cls, url: str) -> RedmineBootstrap:
        protocol, _, rest = url.partition("://")
        return cls(host_name=rest.rstrip("/"), protocol=protocol)


def _ruby_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def bootstrap_script(bootstrap: RedmineBootstrap) -> str:
    """Idempotent: the password is set only when it differs, settings only when they differ, and
    the admin's API key is made once (`User#api_key` returns the existing one). Prints the key last.

    Secrets come from $REDMINE_ADMIN_PASSWORD and $REDMINE_SYS_API_KEY, never from the text.
    """
    settings = {
        "rest_api_enabled": "'1'",
        # The repository web service: Gitea's push hook asks Redmine to fetch changesets with this key.
        "sys_api_enabled": "'1'",
        "sys_api_key": f"ENV.fetch('{SYS_API_KEY_VARIABLE}')",
        "host_name": _ruby_string(bootstrap.host_name),
        "protocol": _ruby_string(bootstrap.protocol),
    }
    settings_ruby = "\n".join(f"  '{name}' => {value}," for name, value in settings.items())
    return f"""\
set -eu
: "${{{ADMIN_PASSWORD_VARIABLE}:?{ADMIN_PASSWORD_VARIABLE} is not set}}"
: "${{{SYS_API_KEY_VARIABLE}:?{SYS_API_KEY_VARIABLE} is not set}}"
# The entrypoint derives SECRET_KEY_BASE for the server only; `docker exec` starts without it.
export SECRET_KEY_BASE="${{SECRET_KEY_BASE:-${{REDMINE_SECRET_KEY_BASE:-}}}}"
# Rails would log to stdout, where only the API key may appear.
unset RAILS_LOG_TO_STDOUT
exec bundle exec rails runner - <<'CERES_RUBY'
admin = User.find_by(login: 'admin') or abort('ceres: Redmine has no user "admin" to take over')
password = ENV.fetch('{ADMIN_PASSWORD_VARIABLE}')
unless admin.check_password?(password)
  admin.password = password
  admin.password_confirmation = password
  $stderr.puts 'ceres: replaced the default admin password'
end
admin.must_change_passwd = false
admin.save!

{{
{settings_ruby}
}}.each do |name, value|
  next if Setting[name] == value
  Setting[name] = value
  $stderr.puts "ceres: set #{{name}}"
end

puts admin.api_key
CERES_RUBY
"""


@dataclass(frozen=True)
class RedminePlugin:
    """A plugin added to the image: its directory under plugins/ (the name Redmine registers it
    by), the version the pin is, and where and at which commit or release tag to fetch it."""

    name: str
    label: str
    version: str
    repository: str
    ref: str

    def __post_init__(self) -> None:
        if not _PLUGIN_NAME.fullmatch(self.name) or not _LABEL.fullmatch(self.label):
            raise ValueError(f"plugin name {self.name!r} or label {self.label!r} is not allowed")
        if not _VERSION.fullmatch(self.version):
            raise ValueError(f"plugin version {self.version!r} is not allowed")
        if not _GIT_REF.fullmatch(self.ref):
            raise ValueError(f"plugin ref {self.ref!r} is neither a full 40-hex commit id nor refs/tags/<tag>")
        if not _GIT_URL.fullmatch(self.repository):
            raise ValueError(f"plugin repository {self.repository!r} is not an https git URL")


# kontron/redmine_oauth 3.0.2 (2025-01-09), the release for Redmine 6.0, pinned by the commit that
# sets that version (init.rb `version '3.0.2'`, CHANGELOG 3.0.2): a commit, unlike a tag, cannot move.
OAUTH = RedminePlugin(
    name=OAUTH_PLUGIN,
    label="oauth",
    version="3.0.2",
    repository="https://github.com/kontron/redmine_oauth.git",
    ref="6ee334487e6b63ea0ce97a9dce9d68c23d52394d",
)
# alphanodes/redmine_messenger 1.0.15, its newest release tag found (CHANGELOG 1.0.15: "Redmine 5.0
# is required", Ruby 3.2 support; init.rb `requires_redmine version_or_higher: '5.0'`, so Redmine
# 6.0 loads it). Pinned by the tag: no commit id for it could be checked from here.
MESSENGER = RedminePlugin(
    name=MESSENGER_PLUGIN,
    label="messenger",
    version="1.0.15",
    repository="https://github.com/alphanodes/redmine_messenger.git",
    ref="refs/tags/1.0.15",
)


@dataclass(frozen=True)
class DerivedImage:
    """Redmine's pinned image with pinned plugins added (the OAuth one for sign-on, the messenger
    for chat), in a stable order."""

    base_image: str
    plugins: tuple[RedminePlugin, ...]

    def __post_init__(self) -> None:
        name, _, digest = self.base_image.partition("@")
        if not _IMAGE.fullmatch(self.base_image) or not (digest or ":" in name.rsplit("/", 1)[-1]):
            raise ValueError(f"base image {self.base_image!r} is not a pinned image reference (name:tag or @sha256)")
        names = [plugin.name for plugin in self.plugins]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"a derived image adds one or more distinct plugins, not {names}")

    def tag(self) -> str:
        """The base image's tag, each plugin's version and a digest of the Dockerfile: a new
        Dockerfile is a new tag, so the container is replaced when the image changes."""
        name, _, digest = self.base_image.partition("@")
        last = name.rsplit("/", 1)[-1]
        base_tag = last.split(":", 1)[1] if ":" in last else digest.removeprefix("sha256:")[:12]
        plugins = "-".join(f"{plugin.label}-{plugin.version}" for plugin in self.plugins)
        content = hashlib.sha256(dockerfile(self).encode()).hexdigest()[:12]
        return f"{base_tag}-{plugins}-{content}"


def _fetch_plugin(plugin: RedminePlugin) -> str:
    directory = f"plugins/{plugin.name}"
    return f"""\
\tgit init --quiet {directory}; \\
\tgit -C {directory} fetch --quiet --depth 1 {plugin.repository} {plugin.ref}; \\
\tgit -C {directory} -c advice.detachedHead=false checkout --quiet FETCH_HEAD; \\
\trm -rf {directory}/.git; \\
\tchown -R redmine:redmine {directory}; \\
"""


def dockerfile(image: DerivedImage) -> str:
    """FROM the pinned Redmine, plus the plugins and their gems, installed the way the base image
    installs Redmine's own (as `redmine`, with every database adapter listed), so the entrypoint's
    `bundle check` passes at start and nothing is fetched at run time. The compilers a native gem
    may need are removed in the same layer."""
    names = ", ".join(f"{plugin.name} {plugin.version}" for plugin in image.plugins)
    fetches = "".join(_fetch_plugin(plugin) for plugin in image.plugins)
    return f"""\
# Redmine with {names}.
FROM {image.base_image}

# Build tools only, purged in the same layer: their versions never reach the image.
# hadolint ignore=DL3008
RUN set -eux; \\
\tapt-get update; \\
\tapt-get install -y --no-install-recommends gcc make; \\
\trm -rf /var/lib/apt/lists/*; \\
{fetches}\tfor adapter in mysql2 postgresql sqlserver sqlite3; do \\
\t\techo "$adapter:"; \\
\t\techo "  adapter: $adapter"; \\
\tdone > config/database.yml; \\
\tgosu redmine bundle install --jobs "$(nproc)"; \\
\trm config/database.yml; \\
\tchmod -R ugo=rwX Gemfile.lock "$GEM_HOME"; \\
\trm -rf ~redmine/.bundle; \\
\tapt-get purge -y --auto-remove gcc make
"""


@dataclass(frozen=True)
class OauthPlugin:
    """The plugin's settings (its `Custom` OIDC provider): the browser goes to the public
    authorization and logout endpoints, Redmine calls the token and userinfo endpoints on the
    internal network. The client secret comes from the environment."""

    client_id: str
    site: str
    auth_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    logout_endpoint: str

    def __post_init__(self) -> None:
        for url in (self.site, self.auth_endpoint, self.token_endpoint, self.userinfo_endpoint, self.logout_endpoint):
            if not _URL.fullmatch(url):
                raise ValueError(f"{url!r} is not a plain http(s) URL")
        if not _CLIENT_ID.fullmatch(self.client_id):
            raise ValueError(f"client id {self.client_id!r} is not allowed")

    def settings(self) -> dict[str, str]:
        """Every setting CERES owns (init.rb defaults of 3.0.2), as the plugin stores them: strings."""
        return {
            "oauth_name": "Custom",
            "custom_name": "Keycloak",
            "site": self.site,
            "client_id": self.client_id,
            "custom_auth_endpoint": self.auth_endpoint,
            "custom_token_endpoint": self.token_endpoint,
            "custom_profile_endpoint": self.userinfo_endpoint,
            "custom_scope": "openid profile email",
            "custom_uid_field": "preferred_username",
            "custom_email_field": "email",
            "custom_firstname_field": "given_name",
            "custom_lastname_field": "family_name",
            "validate_user_roles": ROLES_CLAIM,
            # Redmine's self-registration values: 3 = automatic account activation.
            "self_registration": "3",
            "update_login": "0",
            "oauth_login": "0",
            "oauth_logout": "1",
            "custom_logout_endpoint": self.logout_endpoint,
            # The local admin stays as a break-glass login.
            "hide_login_form": "0",
        }


def logout_endpoint(logout_url: str, client_id: str, back_to: str) -> str:
    """Keycloak's end-session endpoint with where to go afterwards (it needs the client id for that)."""
    return f"{logout_url}?{urlencode({'client_id': client_id, 'post_logout_redirect_uri': back_to})}"


def sso_script(plugin: OauthPlugin) -> str:
    """Idempotent: the plugin's settings are written only when one differs, the secret only when
    the stored one (decrypted) is not the one in $CERES_OIDC_CLIENT_SECRET. Stored encrypted with
    Redmine's cipher, as the plugin's settings page stores it (it decrypts with the same)."""
    wanted = "\n".join(f"  {_ruby_string(name)} => {_ruby_string(value)}," for name, value in plugin.settings().items())
    return f"""\
set -eu
: "${{{CLIENT_SECRET_VARIABLE}:?{CLIENT_SECRET_VARIABLE} is not set}}"
# The entrypoint derives SECRET_KEY_BASE for the server only; `docker exec` starts without it.
export SECRET_KEY_BASE="${{SECRET_KEY_BASE:-${{REDMINE_SECRET_KEY_BASE:-}}}}"
unset RAILS_LOG_TO_STDOUT
exec bundle exec rails runner - <<'CERES_RUBY'
secret = ENV.fetch('{CLIENT_SECRET_VARIABLE}')
wanted = {{
{wanted}
}}
current = (Setting.plugin_{OAUTH_PLUGIN} || {{}}).to_h.transform_keys(&:to_s)
changed = wanted.keys.reject {{ |name| current[name] == wanted[name] }}
stored = current['client_secret'].to_s
changed << 'client_secret' if stored.empty? || Redmine::Ciphering.decrypt_text(stored) != secret
if changed.empty?
  $stderr.puts 'ceres: OAuth plugin settings unchanged'
else
  Setting.plugin_{OAUTH_PLUGIN} = current.merge(wanted).merge('client_secret' => Redmine::Ciphering.encrypt_text(secret))
  $stderr.puts "ceres: set #{{changed.join(', ')}}"
end
CERES_RUBY
"""


@dataclass(frozen=True)
class MessengerSettings:
    """What redmine_messenger posts as and where: the channel's name and the name shown on posts.
    The hook URL is a secret and comes from the environment."""

    channel: str
    username: str

    def __post_init__(self) -> None:
        if not _CHANNEL.fullmatch(self.channel):
            raise ValueError(f"channel {self.channel!r} is not a Mattermost channel name")
        if not _USERNAME.fullmatch(self.username):
            raise ValueError(f"username {self.username!r} is not allowed")

    def settings(self) -> dict[str, str]:
        """The plugin's keys CERES owns (init.rb defaults / config/settings.yml); the hook URL is
        added from the environment. Everything else (post_updates, new_include_description,
        updated_include_description, post_private_issues, ...) stays as the plugin ships it."""
        return {"messenger_channel": self.channel, "messenger_username": self.username}


def messenger_script(messenger: MessengerSettings) -> str:
    """Idempotent: the plugin's settings are written only when one of CERES's keys differs; the
    others keep their values (the plugin's defaults until someone changes them). Written as the
    plugin's settings page writes them, with indifferent keys: the plugin reads them by symbol."""
    wanted = "\n".join(
        f"  {_ruby_string(name)} => {_ruby_string(value)}," for name, value in messenger.settings().items()
    )
    return f"""\
set -eu
: "${{{CHAT_HOOK_VARIABLE}:?{CHAT_HOOK_VARIABLE} is not set}}"
# The entrypoint derives SECRET_KEY_BASE for the server only; `docker exec` starts without it.
export SECRET_KEY_BASE="${{SECRET_KEY_BASE:-${{REDMINE_SECRET_KEY_BASE:-}}}}"
unset RAILS_LOG_TO_STDOUT
exec bundle exec rails runner - <<'CERES_RUBY'
wanted = {{
  'messenger_url' => ENV.fetch('{CHAT_HOOK_VARIABLE}'),
{wanted}
}}
current = (Setting.plugin_{MESSENGER_PLUGIN} || {{}}).to_h.transform_keys(&:to_s)
changed = wanted.keys.reject {{ |name| current[name].to_s == wanted[name] }}
if changed.empty?
  $stderr.puts 'ceres: messenger settings unchanged'
else
  Setting.plugin_{MESSENGER_PLUGIN} = ActiveSupport::HashWithIndifferentAccess.new(current.merge(wanted))
  $stderr.puts "ceres: set #{{changed.join(', ')}}"
end
CERES_RUBY
"""


# Commits (commits-redmine): Redmine reads Git only from a local path. The repo-sync worker keeps a
# bare mirror of each project repository on a volume Redmine mounts read-only, and asks Redmine to
# fetch after each push (GET /sys/fetch_changesets), so Redmine never fetches on page views.
# Setting names and the commit_update_keywords shape are Redmine 6.0's (config/settings.yml,
# Setting.commit_update_keywords_array, Changeset#scan_comment_for_issue_ids and #fix_issue: each
# rule is a hash of strings, 'keywords' comma-separated, the rest Issue attributes to assign).
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")
_STATUS = re.compile(r"[A-Za-z][A-Za-z0-9 _-]{0,63}")


@dataclass(frozen=True)
class CommitLinks:
    """How commit messages act on issues: `refs #N` links the commit, `fixes #N` (and the other
    fix keywords) also moves the issue to `fix_status`, found by name when the step runs."""

    ref_keywords: tuple[str, ...] = ("refs", "references", "IssueID")
    fix_keywords: tuple[str, ...] = ("fixes", "closes", "resolves")
    fix_status: str = "Resolved"

    def __post_init__(self) -> None:
        for keyword in (*self.ref_keywords, *self.fix_keywords):
            if not _KEYWORD.fullmatch(keyword):
                raise ValueError(f"commit keyword {keyword!r}: a letter, then letters, digits, '_' or '-'")
        if not self.ref_keywords or not self.fix_keywords:
            raise ValueError("give at least one reference keyword and one fix keyword")
        if not _STATUS.fullmatch(self.fix_status):
            raise ValueError(f"issue status {self.fix_status!r}: letters, digits, ' ', '_' and '-' only")


_RUNNER = """\
set -eu
# The entrypoint derives SECRET_KEY_BASE for the server only; `docker exec` starts without it.
export SECRET_KEY_BASE="${SECRET_KEY_BASE:-${REDMINE_SECRET_KEY_BASE:-}}"
unset RAILS_LOG_TO_STDOUT
exec bundle exec rails runner - <<'CERES_RUBY'
"""

# Writes each setting that differs, says which on stderr; shared by the steps below.
_APPLY_SETTINGS = """\
wanted.each do |name, value|
  next if Setting[name] == value
  Setting[name] = value
  $stderr.puts "ceres: set #{name}"
end
"""


def commits_script(links: CommitLinks) -> str:
    """Idempotent: each setting is written only when it differs. The fix rule is CERES's one rule
    for its keywords; rules an administrator added for other keywords stay after it.

    A fresh Redmine has no issue statuses until its default configuration is loaded (the
    administration page's button, `Redmine::DefaultData::Loader`): the step loads it (English)
    only when Redmine has none of it at all, then fails, naming the status, if the fix status is
    still missing (renamed or deleted by an administrator)."""
    fix_words = ",".join(word.lower() for word in links.fix_keywords)
    return _RUNNER + f"""\
if Redmine::DefaultData::Loader.no_data?
  Redmine::DefaultData::Loader.load('en')
  $stderr.puts 'ceres: loaded the default configuration (trackers, statuses, roles)'
end
status = IssueStatus.find_by(name: {_ruby_string(links.fix_status)}) or
  abort('ceres: Redmine has no issue status named "{links.fix_status}" for commits that fix an issue: ' \\
        'create it (Administration > Issue statuses) or rename yours')
ours = {{ 'keywords' => '{fix_words}', 'status_id' => status.id.to_s }}
words = ours['keywords'].split(',')
others = Array(Setting['commit_update_keywords']).select {{ |rule| rule.is_a?(Hash) }}.reject do |rule|
  (rule['keywords'].to_s.downcase.split(',').map(&:strip) & words).any?
end
scm = Array(Setting['enabled_scm'])
wanted = {{
  'enabled_scm' => scm.include?('Git') ? scm : scm + ['Git'],
  # The worker's fetch request (/sys/fetch_changesets) needs the repository web service.
  'sys_api_enabled' => '1',
  'commit_ref_keywords' => {_ruby_string(",".join(links.ref_keywords))},
  'commit_update_keywords' => [ours] + others,
  'commit_logtime_enabled' => '0',
  # The worker triggers fetches after each push; fetching on page views would only slow them.
  'autofetch_changesets' => '0',
  # One Git repository per project, but a commit may fix an issue of another project.
  'commit_cross_project_ref' => '1',
}}
{_APPLY_SETTINGS}CERES_RUBY
"""


# Wiki (wiki-redmine): the wiki lives in Wiki.js, so Redmine's own wiki module is off for new
# projects (projects made before keep theirs: it may hold pages), and every project's overview
# shows a link to its space in Wiki.js. Redmine has no per-project link setting of its own; a
# project custom field of format `link` whose URL pattern uses `%project_identifier%`
# (Redmine::FieldFormat::Base#url_from_pattern; Project#project is the project itself) links each
# project to `<wiki>/<identifier>` with no per-project value to keep in sync. The value is only the
# link's text: new projects get the default, the step gives it to projects made before; clearing
# it on a project hides that project's link.
WIKI_FIELD_NAME = "Wiki"
_WIKI_URL = re.compile(r"https?://[a-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._/-]*)?")


@dataclass(frozen=True)
class WikiLinks:
    """Where the wiki is (its public URL) and the name and text of the project field linking to it."""

    wiki_url: str
    field_name: str = WIKI_FIELD_NAME
    link_text: str = "Wiki"

    def __post_init__(self) -> None:
        if not _WIKI_URL.fullmatch(self.wiki_url):
            raise ValueError(f"wiki URL {self.wiki_url!r} is not a plain http(s) URL")
        for value in (self.field_name, self.link_text):
            if not _STATUS.fullmatch(value):
                raise ValueError(f"{value!r}: letters, digits, ' ', '_' and '-' only")

    @property
    def url_pattern(self) -> str:
        return f"{self.wiki_url.rstrip('/')}/%project_identifier%"


def wiki_script(links: WikiLinks) -> str:
    """Idempotent: the module list is written only while it holds `wiki`, the field only when one of
    its attributes differs, and a project gets the link text only when it has no value yet."""
    return _RUNNER + f"""\
modules = Array(Setting['default_projects_modules'])
wanted = {{ 'default_projects_modules' => modules - ['wiki'] }}
{_APPLY_SETTINGS}
field = ProjectCustomField.find_by(name: {_ruby_string(links.field_name)}) ||
  ProjectCustomField.new(name: {_ruby_string(links.field_name)}, field_format: 'link')
field.field_format == 'link' or
  abort('ceres: the project field "{links.field_name}" exists with format ' + field.field_format.to_s + ', not link: rename it')
field.url_pattern = {_ruby_string(links.url_pattern)}
field.default_value = {_ruby_string(links.link_text)}
field.description = 'The project\\'s space in the wiki (Wiki.js)'
field.visible = true
if field.new_record? || field.changed?
  field.save!
  $stderr.puts "ceres: saved the project field #{{field.name}}"
end
linked = CustomValue.where(custom_field_id: field.id, customized_type: 'Project').pluck(:customized_id)
Project.where.not(id: linked).find_each do |project|
  CustomValue.create!(custom_field: field, customized: project, value: field.default_value)
  $stderr.puts "ceres: linked project #{{project.identifier}} to the wiki"
end
CERES_RUBY
"""
