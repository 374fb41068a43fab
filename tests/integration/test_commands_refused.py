"""A command refused by its store recheck after its row committed (the serial path: the row
first, then the store write, whose recheck finds the server moved on) leaves nothing behind that
the recovery pass (fastnova.db.recover) would carry out, and its row shows the server as the
store has it.  The race is made exact by a proxy that holds the statement's answer while the
test moves the server on in the store, as cellfeed's applier would."""
from __future__ import annotations

import threading
import time

import orjson
import pytest

from fastnova.outbound import outbox
from fastnova.db.recover import recover
from fastnova.store.writer import StoreWriter
from tests.commands_support import PG_URL, HoldingProxy, needs_pg, pg_rows, pg_schema, serve

pytestmark = needs_pg


@pytest.mark.parametrize("moved", ["error", "deleted"])
def test_a_command_refused_by_its_recheck_leaves_nothing_for_recovery(moved):
    """The serial path commits the row before the store's recheck.  Here the recheck fails: a
    cell update made before the command's version (the server went to ERROR, or was deleted)
    lands between the command's read and its store write (the proxy holds the statement's answer
    meanwhile).  The 409/404 must leave nothing the recovery pass would carry out, and the row
    must show the server as the store has it."""
    proxy = HoldingProxy()
    with pg_schema() as schema, serve("--database", proxy.dsn(), "--db-schema", schema,
                                      "--sim-step", "60") as srv:     # the cell stays still
        status, _, body = srv.create(name="raced")
        assert status == 202
        uuid = body["server"]["id"]
        writer = StoreWriter.open(srv.data_dir)
        try:
            with writer.batch() as b:         # built (as cellfeed's applier writes a patch)
                assert b.patch_server(uuid, _micros(), {
                    "vm_state": "active", "task_state": None, "power_state": 1,
                    "host": "cell1-compute-1", "launched_at": "2026-01-01T00:00:00.000000"})
            made = _micros()                  # the cell's next update, made now...
            proxy.arm()
            answers = []
            pause = threading.Thread(target=lambda: answers.append(srv.call(
                "POST", "/v2.1/servers/%s/action" % uuid, {"pause": None})))
            pause.start()
            proxy.wait_held()                 # the pause's row has committed
            with writer.batch() as b:         # ...and arrives now
                if moved == "deleted":
                    assert b.delete_server(uuid, made)
                else:
                    assert b.patch_server(uuid, made, {"vm_state": "error"})
            proxy.release()
            pause.join(15)
            status, _, body = answers[0]
            if moved == "deleted":
                assert status == 404, body
            else:
                assert status == 409, body
                assert body["conflictingRequest"]["message"] == (
                    "Conflict updating instance %s. Expected: {'vm_state': 'active'}. "
                    "Actual: {'vm_state': 'error'}" % uuid)
            (host,), = pg_rows(schema, "SELECT api_host FROM servers WHERE uuid = %s", (uuid,))
            assert recover(PG_URL, writer, host, schema=schema, settle=0) == 0
            with writer.env.begin() as txn:
                held = orjson.loads(txn.get(uuid.encode(), db=writer.dbs[b"records"]))
                casts = [orjson.loads(raw)["cast"]
                         for _, raw in outbox.read(txn, writer.dbs, 100)]
            assert "pause_instance" not in casts
            assert (held["vm_state"], held["task_state"]) == (moved, None)
            row = pg_rows(schema, "SELECT version, vm_state, task_state, deleted,"
                                  " record->>'vm_state', pending_cast FROM servers"
                                  " WHERE uuid = %s", (uuid,))[0]
            assert row == (held["version"], moved, None, moved == "deleted", moved, None)
            if moved == "deleted":
                assert srv.show(uuid) == 404
                return
            shown = srv.show(uuid)
            assert shown["status"] == "ERROR" and shown["OS-EXT-STS:task_state"] is None
            assert srv.call("PUT", "/v2.1/servers/" + uuid, {"server": {"name": "after"}})[0] \
                == 200                        # the next command outranks the row as usual
            assert pg_rows(schema, "SELECT record->>'name' FROM servers WHERE uuid = %s",
                           (uuid,)) == [("after",)]
        finally:
            writer.close()


def test_a_command_the_recovery_pass_carried_out_meanwhile_succeeds():
    """A serial command whose store write comes after the recovery pass has already completed
    it from its row (a write slower than the settle time) is not refused by its own recheck."""
    proxy = HoldingProxy()
    with pg_schema() as schema, serve("--database", proxy.dsn(), "--db-schema", schema,
                                      "--sim-step", "60") as srv:
        status, _, body = srv.create(name="slow")
        assert status == 202
        uuid = body["server"]["id"]
        writer = StoreWriter.open(srv.data_dir)
        try:
            with writer.batch() as b:
                assert b.patch_server(uuid, _micros(), {
                    "vm_state": "active", "task_state": None, "power_state": 1,
                    "host": "cell1-compute-1", "launched_at": "2026-01-01T00:00:00.000000"})
            proxy.arm()
            answers = []
            pause = threading.Thread(target=lambda: answers.append(srv.call(
                "POST", "/v2.1/servers/%s/action" % uuid, {"pause": None})))
            pause.start()
            proxy.wait_held()
            (host, committed), = pg_rows(
                schema, "SELECT api_host, version FROM servers WHERE uuid = %s", (uuid,))
            # This pass carries the command out from its row, unless the worker's own periodic
            # pass (5 s settle) already did while a loaded machine kept the answer held: either
            # way the store has the row's version before the command's own write comes.
            recover(PG_URL, writer, host, schema=schema, settle=0)
            with writer.env.begin() as txn:
                done = orjson.loads(txn.get(uuid.encode(), db=writer.dbs[b"records"]))
            assert done["version"] == committed and done["task_state"] == "pausing"
            proxy.release()
            pause.join(15)
            assert answers[0][0] == 202, answers[0]
            with writer.env.begin() as txn:
                held = orjson.loads(txn.get(uuid.encode(), db=writer.dbs[b"records"]))
                casts = [orjson.loads(raw)["cast"]
                         for _, raw in outbox.read(txn, writer.dbs, 100)]
            assert held["task_state"] == "pausing"
            assert casts.count("pause_instance") == 1
            row = pg_rows(schema, "SELECT version, task_state, pending_cast->>'cast'"
                                  " FROM servers WHERE uuid = %s", (uuid,))[0]
            assert row == (held["version"], "pausing", "pause_instance")
        finally:
            writer.close()


def _micros() -> int:
    return time.time_ns() // 1000
