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

# kontron/redmine_oauth 3.0.2 (2025-01-09), the release for Redmine 6.0, pinned by the commit that
# sets that version (init.rb `version '3.0.2'`, CHANGELOG 3.0.2): a commit, unlike a tag, cannot move.
OAUTH_PLUGIN = "redmine_oauth"
OAUTH_PLUGIN_VERSION = "3.0.2"
OAUTH_PLUGIN_REPOSITORY = "https://github.com/kontron/redmine_oauth.git"
OAUTH_PLUGIN_COMMIT = "6ee334487e6b63ea0ce97a9dce9d68c23d52394d"
# The plugin's callback route (config/routes.rb: get 'oauth2callback').
OAUTH_CALLBACK = "/oauth2callback"
CLIENT_SECRET_VARIABLE = "CERES_OIDC_CLIENT_SECRET"
# The claim that lists the person's Redmine roles: the plugin lets in those with `user` or `admin`
# and sets Redmine's admin flag from `admin` at every sign-in (so leaving the group demotes).
ROLES_CLAIM = "redmine_roles"
ADMIN_ROLE = "admin"
USER_ROLE = "user"

_IMAGE = re.compile(r"[a-z0-9][a-z0-9._/:-]*(@sha256:[0-9a-f]{64})?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_GIT_URL = re.compile(r"https://[A-Za-z0-9./_-]+\.git")
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
class DerivedImage:
    """Redmine's pinned image with the OAuth plugin added at a pinned commit."""

    base_image: str
    plugin_repository: str = OAUTH_PLUGIN_REPOSITORY
    plugin_commit: str = OAUTH_PLUGIN_COMMIT

    def __post_init__(self) -> None:
        name, _, digest = self.base_image.partition("@")
        if not _IMAGE.fullmatch(self.base_image) or not (digest or ":" in name.rsplit("/", 1)[-1]):
            raise ValueError(f"base image {self.base_image!r} is not a pinned image reference (name:tag or @sha256)")
        if not _COMMIT.fullmatch(self.plugin_commit):
            raise ValueError(f"plugin commit {self.plugin_commit!r} is not a full 40-hex commit id")
        if not _GIT_URL.fullmatch(self.plugin_repository):
            raise ValueError(f"plugin repository {self.plugin_repository!r} is not an https git URL")

    def tag(self) -> str:
        """The base image's tag, the plugin's version and a digest of the Dockerfile: a new
        Dockerfile is a new tag, so the container is replaced when the image changes."""
        name, _, digest = self.base_image.partition("@")
        last = name.rsplit("/", 1)[-1]
        base_tag = last.split(":", 1)[1] if ":" in last else digest.removeprefix("sha256:")[:12]
        content = hashlib.sha256(dockerfile(self).encode()).hexdigest()[:12]
        return f"{base_tag}-oauth-{OAUTH_PLUGIN_VERSION}-{content}"


def dockerfile(image: DerivedImage) -> str:
    """FROM the pinned Redmine, plus the plugin and its gems, installed the way the base image
    installs Redmine's own (as `redmine`, with every database adapter listed), so the entrypoint's
    `bundle check` passes at start and nothing is fetched at run time. The compilers a native gem
    may need are removed in the same layer."""
    plugin = f"plugins/{OAUTH_PLUGIN}"
    return f"""\
# Redmine with {OAUTH_PLUGIN} {OAUTH_PLUGIN_VERSION}: sign-in through the platform's Keycloak realm.
FROM {image.base_image}

# Build tools only, purged in the same layer: their versions never reach the image.
# hadolint ignore=DL3008
RUN set -eux; \\
\tapt-get update; \\
\tapt-get install -y --no-install-recommends gcc make; \\
\trm -rf /var/lib/apt/lists/*; \\
\tgit init --quiet {plugin}; \\
\tgit -C {plugin} fetch --quiet --depth 1 {image.plugin_repository} {image.plugin_commit}; \\
\tgit -C {plugin} -c advice.detachedHead=false checkout --quiet FETCH_HEAD; \\
\trm -rf {plugin}/.git; \\
\tchown -R redmine:redmine {plugin}; \\
\tfor adapter in mysql2 postgresql sqlserver sqlite3; do \\
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
