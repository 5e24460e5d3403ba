"""PostgreSQL config text: server settings, client authentication, per-consumer provisioning.

Pure functions of typed inputs; `tests/components/config/test_postgres_real.py` feeds their
output to a real PostgreSQL.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

POSTGRES_PORT = 5432
# A PostgreSQL shutdown writes a checkpoint of everything dirty in shared_buffers, and a Patroni
# leader hands over its leader key; killed instead, the next start runs crash recovery.
STOP_GRACE_SECONDS = 120

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Names that mean something else to PostgreSQL or pg_hba.conf: a consumer called `postgres` would
# take over the superuser, one called `all` would open every database to every role.
_RESERVED_NAMES = frozenset("""
    postgres template0 template1 all sameuser samerole samegroup replication public none
    current_user session_user current_role system_user user analyse analyze and any array as asc
    asymmetric authorization binary both case cast check collate collation column concurrently
    constraint create cross current_catalog current_date current_schema current_time
    current_timestamp default deferrable desc distinct do else end except false fetch for foreign
    freeze from full grant group having ilike in initially inner intersect into is isnull join
    lateral leading left like limit localtime localtimestamp natural not notnull null offset on only
    or order outer overlaps placing primary references returning right select similar some
    symmetric table tablesample then to trailing true union unique using variadic verbose when
    where window with
""".split())


def consumer_name(name: str) -> str:
    """A consumer's role and database name, refused unless it is plain and means nothing special."""
    if not _IDENTIFIER.match(name) or name in _RESERVED_NAMES or name.startswith("pg_"):
        raise ValueError(f"{name!r} cannot name a PostgreSQL consumer: use lowercase letters, digits and '_', not a reserved name")
    return name


# The exporter's role: reads the statistics views (pg_monitor), owns nothing, reaches only `postgres`.
MONITOR_ROLE = "ceres_monitor"
MONITOR_DATABASE = "postgres"
MONITOR_CONNECTION_LIMIT = 5
# The backup's login. A superuser: pg_dumpall copies role password hashes, and a restore
# recreates roles and databases; no app ever gets it.
BACKUP_ROLE = "ceres_backup"


@dataclass(frozen=True)
class PostgresSettings:
    memory_mb: int
    consumers: tuple[str, ...]
    # Adds the monitoring role and its hba line.
    monitoring: bool = False
    # Adds the backup role's hba line (a password login over the data network).
    backup: bool = False

    def __post_init__(self) -> None:
        if self.memory_mb < 64:
            raise ValueError(f"memory_mb={self.memory_mb}: PostgreSQL needs at least 64")
        for name in self.consumers:
            consumer_name(name)
            if name in (MONITOR_ROLE, BACKUP_ROLE):
                raise ValueError(f"{name!r} is a role CERES reserves; it cannot name a consumer")


# Superuser sessions over `docker exec`, plus each app's connection pool with room to spare.
CONNECTIONS_PER_CONSUMER = 40
RESERVED_CONNECTIONS = 20


def postgresql_conf(settings: PostgresSettings) -> str:
    shared_buffers_mb = max(32, settings.memory_mb // 4)
    max_connections = RESERVED_CONNECTIONS + CONNECTIONS_PER_CONSUMER * max(1, len(settings.consumers))
    return "\n".join([
        "# Rendered by CERES: server settings for the platform's PostgreSQL.",
        "listen_addresses = '*'",
        f"max_connections = {max_connections}",
        f"shared_buffers = {shared_buffers_mb}MB",
        f"effective_cache_size = {settings.memory_mb // 2}MB",
        "password_encryption = 'scram-sha-256'",
        "hba_file = '/etc/postgresql/pg_hba.conf'",
        "log_connections = on",
        "log_disconnections = on",
        "log_min_duration_statement = 1000",
        "log_line_prefix = '%m [%p] %q%u@%d '",
        "",
    ])


def pg_hba_conf(settings: PostgresSettings) -> str:
    """Each consumer may reach only its own database, as its own role, with a password.

    The superuser is local only (`docker exec -u postgres`); everything else is refused.
    """
    lines = [
        "# Rendered by CERES: who may connect to what.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "local   all       postgres          peer",
    ]
    lines += [f"host    {name}  {name}  all  scram-sha-256" for name in settings.consumers]
    if settings.monitoring:
        lines.append(f"host    {MONITOR_DATABASE}  {MONITOR_ROLE}  all  scram-sha-256")
    if settings.backup:
        lines.append(f"host    all  {BACKUP_ROLE}  all  scram-sha-256")
    lines += ["host    all       all       all      reject", ""]
    return "\n".join(lines)


# Keeps the statement that carries the password out of the server log, even if it is slow or fails.
_QUIET_SESSION = [
    "SET log_min_duration_statement = -1;",
    "SET log_statement = 'none';",
    "SET log_min_error_statement = panic;",
]


# Stops before changing anything unless $CERES_ROLE_PASSWORD is set; psql quotes it itself.
_PASSWORD_FROM_ENVIRONMENT = [
    "\\set ON_ERROR_STOP on",
    *_QUIET_SESSION,
    "\\getenv role_password CERES_ROLE_PASSWORD",
    "\\if :{?role_password}",
    "\\else",
    "DO $$BEGIN RAISE EXCEPTION 'CERES_ROLE_PASSWORD is not set'; END$$;",
    "\\endif",
]


def provision_sql(consumer: str) -> str:
    """Idempotent psql script: the consumer's role and database, its password from $CERES_ROLE_PASSWORD.

    The password never appears in the script (or in the process list): psql reads it from the
    environment and quotes it itself. Without the variable the script stops before changing anything.
    """
    name = consumer_name(consumer)
    return "\n".join([
        *_PASSWORD_FROM_ENVIRONMENT,
        f"SELECT 'CREATE ROLE {name} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec",
        f"ALTER ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'role_password';",
        f"SELECT 'CREATE DATABASE {name} OWNER {name}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')\\gexec",
        f"REVOKE ALL ON DATABASE {name} FROM PUBLIC;",
        f"GRANT ALL ON DATABASE {name} TO {name};",
        "",
    ])


def monitoring_sql() -> str:
    """Idempotent psql script: the monitoring role, its password from $CERES_ROLE_PASSWORD.

    pg_monitor lets it read every statistics view and setting; it owns no database, its
    sessions are read-only by default, and pg_hba lets it reach only the `postgres` database.
    """
    name = MONITOR_ROLE
    return "\n".join([
        *_PASSWORD_FROM_ENVIRONMENT,
        f"SELECT 'CREATE ROLE {name} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{name}')\\gexec",
        f"ALTER ROLE {name} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        f" CONNECTION LIMIT {MONITOR_CONNECTION_LIMIT} PASSWORD :'role_password';",
        f"ALTER ROLE {name} SET default_transaction_read_only = on;",
        f"GRANT pg_monitor TO {name};",
        "",
    ])


def backup_role_sql() -> str:
    """Idempotent psql script: the backup's superuser login, its password from $CERES_ROLE_PASSWORD."""
    return "\n".join([
        *_PASSWORD_FROM_ENVIRONMENT,
        f"SELECT 'CREATE ROLE {BACKUP_ROLE} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{BACKUP_ROLE}')\\gexec",
        f"ALTER ROLE {BACKUP_ROLE} WITH LOGIN SUPERUSER PASSWORD :'role_password';",
        "",
    ])


def retire_sql(consumer: str) -> str:
    """When a consumer goes away its data stays: the role loses the right to log in, and its
    open sessions end."""
    name = consumer_name(consumer)
    return "\n".join([
        "\\set ON_ERROR_STOP on",
        f"ALTER ROLE {name} NOLOGIN;",
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{name}';",
        "",
    ])


def psql_over_docker_exec(container: str, env: tuple[str, ...] = ()) -> str:
    """The shell command that runs a psql script (on stdin) as the superuser inside `container`."""
    passed = "".join(f" -e {variable}" for variable in env)
    return f"docker exec -i -u postgres{passed} {shlex.quote(container)} psql -q -d postgres"
