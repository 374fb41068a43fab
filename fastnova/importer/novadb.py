"""The one door to nova's own PostgreSQL databases (read only).

Every big table is read through a psycopg2 *named* (server-side) cursor sorted by instance uuid,
so memory stays bounded whatever the size and the importer can merge-join the tables of every
cell and of the API database in one pass (fastnova.importer.stream).  All cursors of one database
run in one REPEATABLE READ, READ ONLY transaction: they see one snapshot.

Sorting is ``COLLATE "C"`` (byte order, what Python's str comparison does for uuids): under a
linguistic collation such as en_US the dashes are ignored and the orders would disagree.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


class NovaDBError(RuntimeError):
    """A nova database cannot be used (URL, connection or layout)."""


def libpq_url(url: str) -> str:
    """nova's SQLAlchemy URL (``postgresql+psycopg2://…``) as a libpq URI."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in ("postgresql", "postgres"):
        raise NovaDBError("only PostgreSQL nova databases can be imported, not %r" % scheme)
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k in _LIBPQ_PARAMS])
    return urlunsplit(("postgresql", parts.netloc, parts.path, query, ""))


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


class NovaDB:
    """One nova database, one snapshot transaction, any number of sorted streams."""

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

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def rows(self, sql: str, params=None) -> list[dict]:
        """A small query, read whole."""
        with self.conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute(sql, params)
            return [dict(r) for r in cur.fetchall()]

    def stream(self, sql: str, params=None):
        """A big query through a server-side cursor: dict rows, ITERSIZE per round trip."""
        self._cursors += 1
        cur = self.conn.cursor(name="fastnova_import_%d" % self._cursors,
                               cursor_factory=psycopg2.extras.RealDictCursor)
        cur.itersize = ITERSIZE
        try:
            cur.execute(sql, params)
            for row in cur:
                yield row
        finally:
            cur.close()

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


# -- the queries (nova's column names; see tests/nova_schema.sql) ---------------------------------

C = 'COLLATE "C"'

INSTANCES = """
SELECT uuid, id, created_at, updated_at, deleted_at, deleted, user_id, project_id, image_ref,
       kernel_id, ramdisk_id, launch_index, key_name, power_state, vm_state, task_state,
       hostname, host, node, user_data, reservation_id, launched_at, terminated_at,
       display_name, display_description, availability_zone, locked_by::text AS locked_by,
       root_device_name, host(access_ip_v4) AS access_ip_v4, host(access_ip_v6) AS access_ip_v6,
       config_drive, progress, auto_disk_config
  FROM instances
 WHERE hidden IS NOT TRUE AND (deleted = 0 OR %%(with_deleted)s)
 ORDER BY uuid %s""" % C

EXTRA = """
SELECT instance_uuid, deleted, flavor, trusted_certs FROM instance_extra
 ORDER BY instance_uuid %s, deleted, id DESC""" % C

INFO_CACHE = """
SELECT instance_uuid, deleted, network_info FROM instance_info_caches
 ORDER BY instance_uuid %s, deleted, id DESC""" % C

METADATA = """
SELECT instance_uuid, deleted, key, value FROM instance_metadata
 ORDER BY instance_uuid %s, id""" % C

SYSMETA = """
SELECT instance_uuid, deleted, key, value FROM instance_system_metadata
 WHERE key LIKE 'image\\_%%' OR key = 'locked_reason'
 ORDER BY instance_uuid %s, id""" % C

TAGS = """
SELECT resource_id AS instance_uuid, tag FROM tags
 ORDER BY resource_id %s, tag %s""" % (C, C)

# nova's InstanceFault.get_latest_for_instance: newest by created_at, then id.
FAULTS = """
SELECT DISTINCT ON (instance_uuid %s) instance_uuid, code, message, details, created_at
  FROM instance_faults WHERE deleted = 0
 ORDER BY instance_uuid %s, created_at DESC, id DESC""" % (C, C)

BDMS = """
SELECT instance_uuid, deleted, volume_id, delete_on_termination FROM block_device_mapping
 WHERE volume_id IS NOT NULL
 ORDER BY instance_uuid %s, id""" % C

COMPUTE_SERVICES = """
SELECT host, disabled, forced_down, last_seen_up, created_at FROM services
 WHERE "binary" = 'nova-compute' AND deleted = 0 ORDER BY id"""

# API database
REQUEST_SPECS = """
SELECT instance_uuid, spec FROM request_specs ORDER BY instance_uuid %s""" % C

GROUP_MEMBERS = """
SELECT m.instance_uuid, g.uuid AS group_uuid
  FROM instance_group_member m JOIN instance_groups g ON g.id = m.group_id
 ORDER BY m.instance_uuid %s, m.id""" % C

BUILD_REQUESTS = """
SELECT instance_uuid, project_id, instance, block_device_mappings, tags, created_at, updated_at
  FROM build_requests WHERE instance_uuid IS NOT NULL
 ORDER BY instance_uuid %s""" % C

HOST_AZ = """
SELECT ah.host, am.value FROM aggregate_hosts ah
  JOIN aggregate_metadata am ON am.aggregate_id = ah.aggregate_id AND am.key = 'availability_zone'
 ORDER BY ah.host, ah.aggregate_id"""

CELLS = "SELECT id, uuid, name, database_connection FROM cell_mappings ORDER BY id"

FLAVORS = """
SELECT id, flavorid, name, memory_mb, vcpus, root_gb, ephemeral_gb, swap, rxtx_factor, vcpu_weight,
       disabled, is_public, description, created_at, updated_at FROM flavors ORDER BY id"""
FLAVOR_SPECS = "SELECT flavor_id, key, value FROM flavor_extra_specs ORDER BY flavor_id, key"
FLAVOR_PROJECTS = "SELECT flavor_id, project_id FROM flavor_projects ORDER BY flavor_id"

