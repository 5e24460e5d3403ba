"""Redmine config: the bootstrap that takes over the default admin and turns on the APIs CERES uses.

Pure functions of typed inputs. The script is `sh` wrapping Ruby run by `rails runner` (Ruby on
stdin through a heredoc); tests run it with the real `ruby` against minimal stand-ins for
Redmine's `User` and `Setting`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# The official image drops to this user (uid 999) before running Rails; so does the bootstrap.
CONTAINER_USER = "redmine"
FILES_DIR = "/usr/src/redmine/files"
# Where the image's entrypoint puts its SQLite database when no server database is named.
SQLITE_DIR = "/usr/src/redmine/sqlite"
ADMIN_PASSWORD_VARIABLE = "REDMINE_ADMIN_PASSWORD"
SYS_API_KEY_VARIABLE = "REDMINE_SYS_API_KEY"

_HOST_NAME = re.compile(r"^[a-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._/-]*)?$")


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
