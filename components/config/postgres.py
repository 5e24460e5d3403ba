"""PostgreSQL config text: server settings, client authentication, per-consumer provisioning.

Pure functions of typed inputs; tests feed their output to a real PostgreSQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class PostgresSettings:
    memory_mb: int
    consumers: tuple[str, ...]

    def __post_init__(self) -> None:
        for name in self.consumers:
            if not _IDENTIFIER.match(name):
                raise ValueError(f"{name!r} is not a safe PostgreSQL identifier")


# Superuser sessions (docker exec, backups, exporters) and each app's pool, with room to spare.
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
    """Each consumer may reach only its own database, as its own role, with a password."""
    lines = [
        "# Rendered by CERES: who may connect to what.",
        "# TYPE  DATABASE  USER  ADDRESS  METHOD",
        "local   all       postgres          peer",
    ]
    lines += [f"host    {name}  {name}  all  scram-sha-256" for name in settings.consumers]
    lines += ["host    all       all       all      reject", ""]
    return "\n".join(lines)


def provision_sql(consumer: str) -> str:
    """Idempotent psql script: the consumer's role and database, its password from $CERES_ROLE_PASSWORD.

    The password never appears in the script (or in the process list): psql reads it from the
    environment and quotes it itself.
    """
    if not _IDENTIFIER.match(consumer):
        raise ValueError(f"{consumer!r} is not a safe PostgreSQL identifier")
    return "\n".join([
        "\\set ON_ERROR_STOP on",
        "\\getenv role_password CERES_ROLE_PASSWORD",
        f"SELECT 'CREATE ROLE {consumer} LOGIN' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{consumer}')\\gexec",
        f"ALTER ROLE {consumer} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'role_password';",
        f"SELECT 'CREATE DATABASE {consumer} OWNER {consumer}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '{consumer}')\\gexec",
        f"REVOKE ALL ON DATABASE {consumer} FROM PUBLIC;",
        f"GRANT ALL ON DATABASE {consumer} TO {consumer};",
        "",
    ])


def retire_sql(consumer: str) -> str:
    """When a consumer goes away its data stays: the role only loses the right to log in."""
    if not _IDENTIFIER.match(consumer):
        raise ValueError(f"{consumer!r} is not a safe PostgreSQL identifier")
    return f"ALTER ROLE {consumer} NOLOGIN;\n"
