"""Commands that overlap their PostgreSQL commit with the store's (``--amqp`` and ``--database``):
the forwarder holds a cast until its row exists, writes the row itself for a command whose worker
died before its statement, and a command whose statement failed withdraws its store write."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
import uuid as uuidlib

import pika
import pytest

from fastnova.outbound import outbox
from fastnova.outbound.forwarder import DbGate, Options
from fastnova.store.writer import StoreWriter
from tests.commands_support import (AMQP_URL, PG_URL, Names, needs_broker, needs_pg,
                                         outbox_depth, pg_rows, pg_schema, serve)

pytestmark = needs_pg

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:1/%2F"


def _record(uuid, version, name="gated"):
    return {"id": uuid, "version": version, "seq": version, "name": name, "project_id": "p",
            "user_id": "u", "created_at": "2026-01-01T00:00:00.000000", "vm_state": "building",
            "task_state": "scheduling", "flavor": {"vcpus": 1, "ram": 512}}


def _queue(writer, rec, age=0.0):
    cast = outbox.make_cast("build_and_run_instance", rec, {}, "host-a")
    cast["db_version"] = rec["version"]
    cast["at"] -= age
    with writer.batch() as b:
        return outbox.key(outbox.append(b, cast))


@contextlib.contextmanager
def _gated(tmp_path):
    """A store with an outbox, a fresh PostgreSQL schema and the forwarder's DbGate on both."""
    writer = StoreWriter.open(str(tmp_path))
    outbox.ensure(writer)
    try:
        with pg_schema() as schema:
            gate = DbGate(Options(data_dir=str(tmp_path), database=PG_URL, db_schema=schema))
            try:
                yield writer, schema, gate
            finally:
                gate.close()
    finally:
        writer.close()


def test_gate_holds_a_cast_until_its_row_and_keeps_a_servers_order(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNOVA_RECOVER_SETTLE", "60")
    with _gated(tmp_path) as (writer, schema, gate):
        a, b = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        ka = _queue(writer, _record(a, 10))
        with writer.batch() as batch:      # a later, ungated cast of the same server
            kl = outbox.key(outbox.append(batch, outbox.make_cast("stop_instance",
                                                                  _record(a, 11))))
        kb = _queue(writer, _record(b, 20))
        _upsert(schema, [(_record(b, 20), None)])
        with writer.env.begin() as txn:
            entries = outbox.read(txn, writer.dbs, 100)
        assert [k for k, _ in gate.ready(writer, entries)] == [kb]     # a and its stop wait
        _upsert(schema, [(_record(a, 10), None)])
        assert [k for k, _ in gate.ready(writer, entries)] == [ka, kl, kb]


def test_gate_writes_the_row_of_a_stale_cast_and_claims_it(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNOVA_RECOVER_SETTLE", "0.5")
    with _gated(tmp_path) as (writer, schema, gate):
        fresh, old = str(uuidlib.uuid4()), str(uuidlib.uuid4())
        kf = _queue(writer, _record(fresh, 5))
        ko = _queue(writer, _record(old, 7, name="lost"), age=5.0)
        with writer.env.begin() as txn:
            entries = outbox.read(txn, writer.dbs, 100)
        assert [k for k, _ in gate.ready(writer, entries)] == [ko]
        assert pg_rows(schema, "SELECT uuid, version, record->>'name' FROM servers") == [
            (old, 7, "lost")]
        with writer.batch() as b:          # its command can no longer withdraw it
            assert not outbox.withdraw(b, [ko])
            assert outbox.withdraw(b, [kf])


def _upsert(schema, rows):
    from fastnova.db import aio
    _sql(schema, aio.upsert_sql(len(rows)),
         [v for rec, cast in rows for v in aio.upsert_params(rec, cast, "host-a")])


def _sql(schema, sql, params=()):
    import psycopg2
    conn = psycopg2.connect(PG_URL, options="-c search_path=" + schema)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql, params)
    conn.close()


def test_a_create_whose_insert_fails_is_withdrawn_from_the_store():
    with pg_schema() as schema, serve("--database", PG_URL, "--db-schema", schema, "--amqp",
                                      DEAD_BROKER) as srv:
        for i in range(2):                     # the second create takes a reserved seq
            assert srv.create(name="ok%d" % i)[0] == 202
        _sql(schema, "ALTER TABLE servers ADD CONSTRAINT no_doomed "
                     "CHECK (record->>'name' <> 'doomed')")
        depth = outbox_depth(srv)
        status, _, _ = srv.create(name="doomed")
        assert status == 500
        assert outbox_depth(srv) == depth            # the cast was withdrawn
        _, _, listed = srv.call("GET", "/v2.1/servers")
        shown = {s["name"] for s in listed["servers"]}
        assert {"ok0", "ok1"} <= shown and "doomed" not in shown
        assert srv.create(name="after")[0] == 202
        names = pg_rows(schema, "SELECT record->>'name', seq FROM servers ORDER BY seq")
        assert [n for n, _ in names] == ["ok0", "ok1", "after"]
        assert len({s for _, s in names}) == 3


@needs_broker
def test_kill_9_between_store_commit_and_statement_is_completed_by_the_forwarder():
    fault = tempfile.NamedTemporaryFile("w", delete=False, suffix=".fault")
    fault.write("after_store_commit")
    fault.close()
    env = {"FASTNOVA_FAULT_FILE": fault.name, "FASTNOVA_RECOVER_SETTLE": "0.5"}
    names = Names()
    try:
        with pg_schema() as schema, serve("--database", PG_URL, "--db-schema", schema,
                                          *names.serve_args(), env=env) as srv:
            status, _, body = srv.create(name="warm")       # fills the worker's seq reserve
            assert status == 202
            with pytest.raises(Exception):
                srv.create(name="doomed")      # the worker dies before its statement
            assert not os.path.exists(fault.name)
            deadline = time.monotonic() + 15
            while not pg_rows(schema, "SELECT 1 FROM servers WHERE record->>'name' = 'doomed'"):
                assert time.monotonic() < deadline, srv.log()[-3000:]
                time.sleep(0.1)
            (uuid, seq), = pg_rows(schema, "SELECT uuid, seq FROM servers "
                                           "WHERE record->>'name' = 'doomed'")
            assert srv.show(uuid, token="admin:admin")["OS-EXT-SRV-ATTR:instance_name"] == \
                "instance-%08x" % seq
            casts = _casts(names, want=2)
            assert sorted(c["instance"]["name"] for c in casts) == ["doomed", "warm"]
            assert "wrote the rows of 1 commands" in srv.log()
    finally:
        names.cleanup()
        if os.path.exists(fault.name):
            os.unlink(fault.name)


def _casts(names, want, timeout=15.0):
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    casts = []
    deadline = time.monotonic() + timeout
    while len(casts) < want and time.monotonic() < deadline:
        method, _props, body = ch.basic_get(names.cast_queue, auto_ack=True)
        if method is None:
            time.sleep(0.1)
            continue
        casts.extend(json.loads(body))
    conn.close()
    return casts


