"""The API database schema, created and migrated by ``fastnova db sync``.

One table, no joins: a server's row holds the whole canonical record (jsonb) beside the columns
the database itself needs (identity, ownership, state for operators' queries, the version that
orders writes, and the command's pending cast for recovery).  Migrations are numbered and applied
in order, each in its own transaction, and recorded in ``fastnova_migrations``.
"""
from __future__ import annotations

import logging

from fastnova.db.connect import connect

LOG = logging.getLogger("fastnova.db")

MIGRATIONS = [
    (1, "servers: one denormalized row per server", """
        CREATE TABLE servers (
            uuid         varchar(36)  PRIMARY KEY,
            seq          bigserial    UNIQUE,        -- nova's instances.id: order tie-break
            project_id   varchar(255) NOT NULL,
            user_id      varchar(255) NOT NULL,
            version      bigint       NOT NULL,      -- grows with every write (microseconds)
            vm_state     varchar(255),
            task_state   varchar(255),
            deleted      boolean      NOT NULL DEFAULT false,
            record       jsonb        NOT NULL,      -- fastnova.record, as the command left it
            pending_cast jsonb,                      -- the command's cast (recovery)
            api_host     varchar(255),               -- the API host that wrote it last
            created_at   timestamp    NOT NULL,
            changed_at   timestamptz  NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX servers_project_live ON servers (project_id) WHERE NOT deleted;
        CREATE INDEX servers_host_changed ON servers (api_host, changed_at);
    """),
]


def sync(dsn: str, schema: str | None = None) -> int:
    """Create the schema (and the PostgreSQL schema itself, if named) and apply migrations."""
    conn = connect(dsn, schema)
    try:
        with conn, conn.cursor() as cur:
            if schema:
                cur.execute('CREATE SCHEMA IF NOT EXISTS "%s"' % schema.replace('"', '""'))
            cur.execute("CREATE TABLE IF NOT EXISTS fastnova_migrations ("
                        " version int PRIMARY KEY, description text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())")
            cur.execute("SELECT coalesce(max(version), 0) FROM fastnova_migrations")
            have = cur.fetchone()[0]
        for version, description, sql in MIGRATIONS:
            if version <= have:
                continue
            with conn, conn.cursor() as cur:
                cur.execute("LOCK TABLE fastnova_migrations IN EXCLUSIVE MODE")
                cur.execute("SELECT 1 FROM fastnova_migrations WHERE version = %s", (version,))
                if cur.fetchone():
                    continue
                cur.execute(sql)
                cur.execute("INSERT INTO fastnova_migrations (version, description) "
                            "VALUES (%s, %s)", (version, description))
            LOG.info("db sync: applied migration %d (%s)", version, description)
    finally:
        conn.close()
    return 0
