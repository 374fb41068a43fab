"""The one door to nova's own databases (read only): PostgreSQL, MySQL and MariaDB.

Every big table is read through a server-side (streaming) cursor sorted by instance uuid, so
memory stays bounded whatever the size and the importer can merge-join the tables of every cell
and of the API database in one pass (fastnova.importer.stream).

* PostgreSQL (psycopg2): *named* cursors, ITERSIZE rows per round trip; all cursors of one
  database run in one REPEATABLE READ, READ ONLY transaction, so they see one snapshot.
* MySQL/MariaDB (PyMySQL): ``SSDictCursor`` streams rows as the server sends them.  A MySQL
  connection can carry only one unfinished result, so each stream has a connection of its own,
  each in a ``REPEATABLE READ`` transaction opened ``WITH CONSISTENT SNAPSHOT, READ ONLY`` as the
  stream starts.  The streams of one database start within milliseconds of each other, but their
  snapshots are not one: a change committed in between may be seen by one table's stream and not
  another's (e.g. a new instance without its info cache).  The next ``reconcile`` repairs it.

Sorting is byte order (what Python's str comparison does for uuids): ``COLLATE "C"`` on
PostgreSQL, ``BINARY`` on MySQL.  Under a linguistic collation such as en_US the dashes are
ignored and the orders would disagree.  The queries are written once, with ``{placeholders}`` for
what the two dialects spell differently (DIALECTS).
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg2
import psycopg2.extensions
import psycopg2.extras

LOG = logging.getLogger("fastnova.importer")

ITERSIZE = 2000
# libpq accepts these in a URI query; SQLAlchemy-only ones (charset, …) are dropped.
_LIBPQ_PARAMS = frozenset(("options", "sslmode", "sslrootcert", "sslcert", "sslkey",
                           "connect_timeout", "application_name", "host", "port", "user",
                           "password", "dbname", "target_session_attrs", "passfile",
                           "keepalives", "keepalives_idle"))
POSTGRESQL, MYSQL = "postgresql", "mysql"

# What the queries below spell differently.  MySQL: `key` and `binary` are reserved words; INET
# columns are VARCHAR(39) there; DISTINCT ON does not exist (the stream keeps every row, newest
# first, and the reader takes the first: stream.cell_bundles).
DIALECTS = {
    POSTGRESQL: {"C": ' COLLATE "C"', "B": "", "key": "key", "binary": '"binary"',
                 "locked_by": "locked_by::text", "ip4": "host(access_ip_v4)",
                 "ip6": "host(access_ip_v6)", "latest_fault": 'DISTINCT ON (instance_uuid '
                 'COLLATE "C")'},
    MYSQL: {"C": "", "B": "BINARY ", "key": "`key`", "binary": "`binary`",
            "locked_by": "locked_by", "ip4": "access_ip_v4", "ip6": "access_ip_v6",
            "latest_fault": ""},
}
# MySQL has no boolean type: nova's Boolean columns are TINYINT(1) and come back as 0/1.
BOOLEAN_COLUMNS = frozenset(("auto_disk_config", "disabled", "forced_down", "is_public",
                             "delete_on_termination", "hidden", "locked"))


class NovaDBError(RuntimeError):
    """A nova database cannot be used (URL, connection or layout)."""


def engine(url: str) -> str:
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    if scheme in ("postgresql", "postgres"):
        return POSTGRESQL
    if scheme in ("mysql", "mariadb"):
        return MYSQL
    raise NovaDBError("nova databases can be PostgreSQL, MySQL or MariaDB, not %r" % scheme)


def libpq_url(url: str) -> str:
    """nova's SQLAlchemy URL (``postgresql+psycopg2://…``) as a libpq URI."""
    parts = urlsplit(url)
    if engine(url) != POSTGRESQL:
        raise NovaDBError("not a PostgreSQL URL: %s" % redact(url))
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in _LIBPQ_PARAMS])
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))


def mysql_params(url: str) -> dict:
    """nova's SQLAlchemy URL (``mysql+pymysql://user:pw@host:port/nova?charset=utf8``) as
    PyMySQL's connect() arguments; a ``unix_socket`` query parameter is kept too."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    params = {"host": parts.hostname or "localhost", "port": parts.port or 3306,
              "user": unquote(parts.username or ""), "password": unquote(parts.password or ""),
              "database": unquote(parts.path.lstrip("/")) or None,
              "charset": query.get("charset", "utf8mb4")}
    if "unix_socket" in query:
        params["unix_socket"] = query["unix_socket"]
    return params


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def NovaDB(url: str):
    """One nova database: ``rows(sql)`` (small, read whole), ``stream(sql)`` and
    ``grouped(sql)`` (big, streamed), all in snapshot transactions; a context manager."""
    if engine(url) == MYSQL:
        from fastnova.importer.mysqldb import MySQLNovaDB
        return MySQLNovaDB(url)
    return PostgresNovaDB(url)


class _Streams:
    """What both engines share: the dialect's SQL, grouping a sorted stream."""

    dialect: dict = DIALECTS[POSTGRESQL]

    def sql(self, template: str) -> str:
        return template.format(**self.dialect)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def grouped(self, sql: str, key: str = "instance_uuid", params=None):
        """(uuid, [rows]) from a stream sorted by ``key``."""
        current, rows = None, []
        for row in self.stream(sql, params):
            uuid = row[key]
            if uuid != current:
                if rows:
                    yield current, rows
                current, rows = uuid, []
            rows.append(row)
        if rows:
            yield current, rows


class PostgresNovaDB(_Streams):
    """One PostgreSQL nova database, one snapshot transaction, any number of sorted streams."""

    def __init__(self, url: str):
        self.url = url
        try:
            self.conn = psycopg2.connect(libpq_url(url))
        except psycopg2.Error as exc:
            raise NovaDBError("cannot connect to %s: %s" % (redact(url), exc)) from None
        self.conn.set_session(isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ,
                              readonly=True)
        self._cursors = 0

    def close(self):
        try:
            self.conn.rollback()
        finally:
            self.conn.close()

    def rows(self, sql: str, params=None) -> list[dict]:
        """A small query, read whole."""
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(self.sql(sql), params)
            return [dict(r) for r in cur.fetchall()]

    def stream(self, sql: str, params=None):
        """A big query through a server-side cursor: dict rows, ITERSIZE per round trip."""
        self._cursors += 1
        cur = self.conn.cursor(name="fastnova_import_%d" % self._cursors,
                               cursor_factory=psycopg2.extras.RealDictCursor)
        cur.itersize = ITERSIZE
        try:
            cur.execute(self.sql(sql), params)
            for row in cur:
                yield row
        finally:
            cur.close()


# -- the queries (nova's column names; see tests/nova_schema.sql), as _Streams.sql() formats them

INSTANCES = """
SELECT uuid, id, created_at, updated_at, deleted_at, deleted, user_id, project_id, image_ref,
       kernel_id, ramdisk_id, launch_index, key_name, power_state, vm_state, task_state,
       hostname, host, node, user_data, reservation_id, launched_at, terminated_at,
       display_name, display_description, availability_zone, {locked_by} AS locked_by,
       root_device_name, {ip4} AS access_ip_v4, {ip6} AS access_ip_v6,
       config_drive, progress, auto_disk_config
  FROM instances
 WHERE hidden IS NOT TRUE AND (deleted = 0 OR %(with_deleted)s)
 ORDER BY {B}uuid{C}"""

COUNT_INSTANCES = """
SELECT COUNT(*) AS n FROM instances
 WHERE hidden IS NOT TRUE AND (deleted = 0 OR %(with_deleted)s)"""

COUNT_BUILD_REQUESTS = """
SELECT COUNT(*) AS n FROM build_requests WHERE instance_uuid IS NOT NULL"""

EXTRA = """
SELECT instance_uuid, deleted, flavor, trusted_certs FROM instance_extra
 ORDER BY {B}instance_uuid{C}, deleted, id DESC"""

INFO_CACHE = """
SELECT instance_uuid, deleted, network_info FROM instance_info_caches
 ORDER BY {B}instance_uuid{C}, deleted, id DESC"""

METADATA = """
SELECT instance_uuid, deleted, {key} AS "key", value FROM instance_metadata
 ORDER BY {B}instance_uuid{C}, id"""

SYSMETA = """
SELECT instance_uuid, deleted, {key} AS "key", value FROM instance_system_metadata
 WHERE {key} LIKE 'image\\_%' OR {key} = 'locked_reason'
 ORDER BY {B}instance_uuid{C}, id"""

TAGS = """
SELECT resource_id AS instance_uuid, tag FROM tags
 ORDER BY {B}resource_id{C}, {B}tag{C}"""

# nova's InstanceFault.get_latest_for_instance: newest by created_at, then id.  On MySQL every
# live fault comes, newest first, and the reader takes the first of each instance.
FAULTS = """
SELECT {latest_fault} instance_uuid, code, message, details, created_at
  FROM instance_faults WHERE deleted = 0
 ORDER BY {B}instance_uuid{C}, created_at DESC, id DESC"""

BDMS = """
SELECT instance_uuid, deleted, volume_id, delete_on_termination FROM block_device_mapping
 WHERE volume_id IS NOT NULL
 ORDER BY {B}instance_uuid{C}, id"""

COMPUTE_SERVICES = """
SELECT host, disabled, forced_down, last_seen_up, created_at FROM services
 WHERE {binary} = 'nova-compute' AND deleted = 0 ORDER BY id"""

# API database
REQUEST_SPECS = """
SELECT instance_uuid, spec FROM request_specs ORDER BY {B}instance_uuid{C}"""

GROUP_MEMBERS = """
SELECT m.instance_uuid, g.uuid AS group_uuid
  FROM instance_group_member m JOIN instance_groups g ON g.id = m.group_id
 ORDER BY {B}m.instance_uuid{C}, m.id"""

BUILD_REQUESTS = """
SELECT instance_uuid, project_id, instance, block_device_mappings, tags, created_at, updated_at
  FROM build_requests WHERE instance_uuid IS NOT NULL
 ORDER BY {B}instance_uuid{C}"""

HOST_AZ = """
SELECT ah.host, am.value FROM aggregate_hosts ah
  JOIN aggregate_metadata am ON am.aggregate_id = ah.aggregate_id
                            AND am.{key} = 'availability_zone'
 ORDER BY ah.host, ah.aggregate_id"""

CELLS = "SELECT id, uuid, name, database_connection FROM cell_mappings ORDER BY id"

FLAVORS = """
SELECT id, flavorid, name, memory_mb, vcpus, root_gb, ephemeral_gb, swap, rxtx_factor,
       disabled, is_public, description, created_at, updated_at FROM flavors ORDER BY id"""
FLAVOR_SPECS = """
SELECT flavor_id, {key} AS "key", value FROM flavor_extra_specs ORDER BY flavor_id, {key}"""
FLAVOR_PROJECTS = "SELECT flavor_id, project_id FROM flavor_projects ORDER BY flavor_id"
