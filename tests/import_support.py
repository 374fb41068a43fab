"""Shared pieces of the import tests: a nova deployment in the real PostgreSQL, rows as nova writes.

Each test gets its own schemas (one API database, one or more cells) in the database named by
$FASTNOVA_PG_URL (default postgresql://postgres@127.0.0.1:5432/test), created from
tests/nova_schema.sql and dropped afterwards.  The importer reaches a schema through an ordinary
libpq URL (``options=-csearch_path=…``), exactly as it reaches a real nova database.
"""
from __future__ import annotations

import datetime as dt
import os
import uuid as uuidlib
from urllib.parse import quote

import orjson
import psycopg2
import psycopg2.extras
import pytest

from tests import mysql_support as nova_mysql
from tests.services import PG_URL, needs_pg  # noqa: F401

SCHEMA_SQL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nova_schema.sql")


def schema_sections() -> dict:
    out, name = {}, None
    for line in open(SCHEMA_SQL):
        if line.startswith("-- @"):
            name = line[4:].strip()
            out[name] = []
        elif name:
            out[name].append(line)
    return {k: "".join(v) for k, v in out.items()}


def nova_obj(name: str, data: dict, version: str = "1.0") -> dict:
    """An oslo.versionedobjects primitive, as nova serializes objects into its JSON columns."""
    return {"nova_object.name": name, "nova_object.namespace": "nova",
            "nova_object.version": version, "nova_object.data": data,
            "nova_object.changes": sorted(data)}


def flavor_primitive(flavorid="1", name="m1.tiny", memory_mb=512, vcpus=1, root_gb=1,
                     ephemeral_gb=0, swap=0, extra_specs=None) -> dict:
    return nova_obj("Flavor", {
        "id": 1, "flavorid": flavorid, "name": name, "memory_mb": memory_mb, "vcpus": vcpus,
        "root_gb": root_gb, "ephemeral_gb": ephemeral_gb, "swap": swap, "rxtx_factor": 1.0,
        "vcpu_weight": 0, "disabled": False, "is_public": True,
        "extra_specs": extra_specs or {}, "description": None,
        "created_at": "2013-09-03T04:00:00Z", "updated_at": None, "deleted_at": None,
        "deleted": False}, "1.2")


def network_info(vifs) -> str:
    """nova.network.model.NetworkInfo as instance_info_caches.network_info holds it.

    vifs: [(label, mac, [(fixed_addr, [floating_addr, ...]), ...]), ...]
    """
    out = []
    for label, mac, ips in vifs:
        subnet_ips = [{"address": addr, "type": "fixed", "version": 6 if ":" in addr else 4,
                       "meta": {}, "floating_ips": [
                           {"address": f, "type": "floating", "version": 4, "meta": {}}
                           for f in floats]}
                      for addr, floats in ips]
        out.append({
            "id": str(uuidlib.uuid4()), "address": mac, "type": "ovs", "devname": "tap" + mac[-5:],
            "ovs_interfaceid": None, "qbh_params": None, "qbg_params": None, "active": True,
            "vnic_type": "normal", "profile": {}, "preserve_on_delete": False,
            "delegate_create": True, "details": {"port_filter": True}, "meta": {},
            "network": {"id": str(uuidlib.uuid4()), "bridge": "br-int", "label": label,
                        "meta": {"injected": False, "tenant_id": "p", "mtu": 1450},
                        "subnets": [{"cidr": "192.168.1.0/24", "dns": [], "gateway": {
                            "address": "192.168.1.1", "type": "gateway", "version": 4,
                            "meta": {}}, "ips": subnet_ips, "routes": [], "version": 4,
                            "meta": {"dhcp_server": "192.168.1.2"}}]}})
    return orjson.dumps(out).decode()


def request_spec(uuid, az=None, hints=None, security_groups=("default",)) -> str:
    groups = nova_obj("SecurityGroupList", {"objects": [
        nova_obj("SecurityGroup", {"name": n}, "1.2") for n in security_groups]}, "1.1")
    return orjson.dumps(nova_obj("RequestSpec", {
        "instance_uuid": uuid, "availability_zone": az, "num_instances": 1,
        "scheduler_hints": hints if hints is not None else {}, "security_groups": groups,
        "project_id": "p", "ignore_hosts": None}, "1.14")).decode()


ENGINES = [pytest.param("postgresql", marks=needs_pg),
           pytest.param("mysql", marks=nova_mysql.needs_mysql)]


class NovaDeployment:
    """An API database and N cells, each a fresh schema (PostgreSQL) or database (MySQL/MariaDB);
    ``url(db)`` is what nova.conf holds."""

    def __init__(self, cells: int = 1, engine: str = "postgresql"):
        tag = uuidlib.uuid4().hex[:10]
        self.engine = engine
        self.schemas = {"api": "nova_api_" + tag}
        self.schemas.update({"cell%d" % n: "nova_cell%d_%s" % (n, tag) for n in range(1, cells + 1)})
        self._next_id = {}
        if engine == "mysql":
            self._create_mysql()
            return
        self.admin = psycopg2.connect(PG_URL)
        self.admin.autocommit = True
        sections = schema_sections()
        self.conns = {}
        for name, schema in self.schemas.items():
            with self.admin.cursor() as cur:
                cur.execute("CREATE SCHEMA %s" % schema)
            conn = psycopg2.connect(self.url(name))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(sections["api" if name == "api" else "cell"])
            self.conns[name] = conn

    def _create_mysql(self):
        import pymysql.cursors
        self.admin = nova_mysql.admin_connection()
        sections = schema_sections()
        self.conns = {}
        for name, database in self.schemas.items():
            with self.admin.cursor() as cur:
                cur.execute("CREATE DATABASE %s CHARACTER SET utf8" % database)
            conn = nova_mysql.admin_connection(database)
            conn.cursorclass = pymysql.cursors.DictCursor
            with conn.cursor() as cur:
                for stmt in nova_mysql.mysql_ddl(sections["api" if name == "api" else "cell"]):
                    cur.execute(stmt)
            self.conns[name] = conn

    def url(self, name: str) -> str:
        if self.engine == "mysql":
            return nova_mysql.url(self.schemas[name])
        sep = "&" if "?" in PG_URL else "?"
        return PG_URL + sep + "options=" + quote("-csearch_path=" + self.schemas[name])

    def cell_urls(self) -> list:
        return [self.url(n) for n in self.schemas if n != "api"]

    def drop(self):
        for conn in self.conns.values():
            conn.close()
        with self.admin.cursor() as cur:
            for schema in self.schemas.values():
                cur.execute(("DROP DATABASE IF EXISTS %s" if self.engine == "mysql"
                             else "DROP SCHEMA IF EXISTS %s CASCADE") % schema)
        self.admin.close()

    def insert(self, db: str, table: str, **cols):
        quote = "`" if self.engine == "mysql" else '"'
        names = ", ".join("%s%s%s" % (quote, k, quote) for k in cols)
        marks = ", ".join(["%s"] * len(cols))
        if self.engine == "mysql":          # MariaDB >= 10.5 has RETURNING too
            with self.conns[db].cursor() as cur:
                cur.execute("INSERT INTO %s (%s) VALUES (%s) RETURNING *" % (table, names, marks),
                            list(cols.values()))
                return dict(cur.fetchone())
        with self.conns[db].cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
            cur.execute("INSERT INTO %s (%s) VALUES (%s) RETURNING *" % (table, names, marks),
                        list(cols.values()))
            return dict(cur.fetchone())

    def execute(self, db: str, sql: str, params=None):
        with self.conns[db].cursor() as cur:
            cur.execute(sql, params)

    # -- nova writes ----------------------------------------------------------------------------

    def add_instance(self, cell: str = "cell1", *, flavor=None, network=None, metadata=None,
                     sysmeta=None, tags=(), volumes=(), fault=None, trusted_certs=None,
                     spec=None, **cols) -> dict:
        """One server as nova's compute and conductor leave it in a cell database."""
        uuid = cols.setdefault("uuid", str(uuidlib.uuid4()))
        now = dt.datetime(2013, 9, 3, 4, 1, 32)
        defaults = dict(created_at=now, updated_at=now + dt.timedelta(seconds=1),
                        user_id="fake", project_id="6f70656e737461636b20342065766572",
                        image_ref="70a599e0-31e7-49b7-b260-868f441e862b", kernel_id="",
                        ramdisk_id="", launch_index=0, power_state=1, vm_state="active",
                        hostname="new-server-test", host="compute", node="fake-mini",
                        reservation_id="r-abcdefgh", launched_at=now,
                        display_name="new-server-test", display_description=None,
                        availability_zone="nova", root_device_name="/dev/sda",
                        config_drive="", progress=0, auto_disk_config=False, deleted=0,
                        memory_mb=512, vcpus=1, root_gb=1, ephemeral_gb=0)
        for k, v in defaults.items():
            cols.setdefault(k, v)
        row = self.insert(cell, "instances", **cols)
        self.insert(cell, "instance_extra", instance_uuid=uuid, created_at=now,
                    flavor=orjson.dumps({"cur": flavor or flavor_primitive(), "old": None,
                                         "new": None}).decode(),
                    trusted_certs=(orjson.dumps(nova_obj("TrustedCerts", {"ids": trusted_certs}))
                                   .decode() if trusted_certs else None))
        self.insert(cell, "instance_info_caches", instance_uuid=uuid, created_at=now,
                    network_info=network if network is not None else network_info(
                        [("private", "00:0c:29:0d:11:74", [("192.168.1.30", [])])]))
        for k, v in (metadata or {}).items():
            self.insert(cell, "instance_metadata", instance_uuid=uuid, key=k, value=v,
                        created_at=now)
        for k, v in (sysmeta or {}).items():
            self.insert(cell, "instance_system_metadata", instance_uuid=uuid, key=k, value=v,
                        created_at=now)
        for t in tags:
            self.insert(cell, "tags", resource_id=uuid, tag=t)
        for vol, dot in volumes:
            self.insert(cell, "block_device_mapping", instance_uuid=uuid, created_at=now,
                        uuid=str(uuidlib.uuid4()), source_type="volume",
                        destination_type="volume", volume_id=vol, delete_on_termination=dot,
                        boot_index=None, device_name="/dev/sdb")
        if fault:
            self.insert(cell, "instance_faults", instance_uuid=uuid, **fault)
        self.insert("api", "instance_mappings", instance_uuid=uuid, cell_id=None,
                    project_id=cols["project_id"], user_id=cols["user_id"])
        self.insert("api", "request_specs", instance_uuid=uuid,
                    spec=spec if spec is not None else request_spec(uuid))
        return row

    def add_service(self, cell="cell1", host="compute", **cols):
        cols.setdefault("last_seen_up", dt.datetime.utcnow())
        cols.setdefault("created_at", dt.datetime(2013, 9, 1))
        return self.insert(cell, "services", host=host, binary="nova-compute",
                           topic="compute", **cols)

    def add_aggregate_az(self, host: str, az: str):
        agg = self.insert("api", "aggregates", uuid=str(uuidlib.uuid4()), name="agg-" + az)
        self.insert("api", "aggregate_hosts", host=host, aggregate_id=agg["id"])
        self.insert("api", "aggregate_metadata", key="availability_zone", value=az,
                    aggregate_id=agg["id"])
