"""Edge kind `database`: an app uses its own PostgreSQL database and role."""

from __future__ import annotations

import pulumi

from components.base import IntegrationEdge, Service
from components.services.postgres import Database, PostgreSQL


class DatabaseEdge(IntegrationEdge):
    """The consumer's side of its database: credentials for its container, ready once provisioned.

    The role and database themselves are created by PostgreSQL from its list of consumers.
    """

    kind = "database"

    def __init__(self, consumer: Service, postgres: PostgreSQL, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"db-{consumer.service}", consumer, postgres, opts)
        self.database: Database = postgres.database(consumer.service)
        self.register_outputs({"database": self.database.name, "user": self.database.user})

    def env(self, prefix: str, keys: dict[str, str]) -> list[pulumi.Input[str]]:
        """Environment entries `prefix+KEY=value` for the fields an app names its own way.

        `keys` maps the app's key to one of host, port, host_port, name, user, password.
        """
        db = self.database
        values: dict[str, pulumi.Input[str]] = {
            "host": db.host,
            "port": str(db.port),
            "host_port": f"{db.host}:{db.port}",
            "name": db.name,
            "user": db.user,
            "password": db.password,
        }
        return [pulumi.Output.concat(prefix, key, "=", values[field]) for key, field in keys.items()]
