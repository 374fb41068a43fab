"""Commands with the real PostgreSQL API database: one statement and one network round trip per
command (counted at the socket by a proxy), rows as the commands leave them, and recovery after
a kill -9 between the database commit and the store write."""
from __future__ import annotations

import os
import tempfile
import time

import pytest

from tests.commands_support import RoundTripProxy, needs_pg, pg_rows, pg_schema, serve

pytestmark = needs_pg


def test_each_command_costs_one_statement_and_one_round_trip():
    proxy = RoundTripProxy()
    with pg_schema() as schema, serve("--database", proxy.dsn(), "--db-schema", schema,
                                      "--sim-step", "0.03") as srv:
        status, _, body = srv.create(name="warm")              # opens the connection
        assert status == 202
        uuid = body["server"]["id"]
        srv.wait_status(uuid, "ACTIVE")
        commands = [
            lambda: srv.create(name="counted"),
            lambda: srv.call("POST", "/v2.1/servers/%s/action" % uuid,
                             {"reboot": {"type": "HARD"}}),
            lambda: srv.call("PUT", "/v2.1/servers/" + uuid, {"server": {"name": "n"}}),
            lambda: srv.call("PUT", "/v2.1/servers/%s/metadata/k" % uuid, {"meta": {"k": "v"}}),
            lambda: srv.call("DELETE", "/v2.1/servers/" + uuid),
        ]
        # Each command's cost is counted up to the next command (the last one up to a fence
        # create): anything else reaching the database meanwhile lands in a count.
        fence = [lambda: srv.create(name="fence")]
        before = None
        for command in commands + fence:
            now = (proxy.statements, proxy.turns)
            if before is not None:
                spent = (now[0] - before[0], now[1] - before[1])
                assert spent[0] <= 2 and spent[1] <= 1, spent
                assert spent == (1, 1), spent
            before = now
            status = command()[0]
            assert status in (200, 202, 204)
            if command is commands[1]:
                srv.wait_status(uuid, "ACTIVE")
        rows = pg_rows(schema, "SELECT record->>'name', task_state, version FROM servers "
                               "WHERE uuid = %s", (uuid,))
        assert rows[0][:2] == ("n", "deleting")


def test_rows_hold_the_denormalized_record():
    with pg_schema() as schema, serve("--database", _dsn(), "--db-schema", schema) as srv:
        status, _, body = srv.call("POST", "/v2.1/servers", {"server": {
            "name": "two", "flavorRef": "2", "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b",
            "min_count": 2}}, mv="2.1")
        assert status == 202
        rows = pg_rows(schema, "SELECT uuid, seq, record, pending_cast->>'cast' FROM servers "
                               "ORDER BY seq")
        assert len(rows) == 2
        assert [r[2]["name"] for r in rows] == ["two-1", "two-2"]
        assert {r[3] for r in rows} == {"build_and_run_instance"}
        shown = srv.show(rows[0][0], token="admin:admin")
        assert shown["OS-EXT-SRV-ATTR:instance_name"] == "instance-%08x" % rows[0][1]


def test_lock_and_unlock_reach_the_row_and_the_read_path():
    with pg_schema() as schema, serve("--database", _dsn(), "--db-schema", schema,
                                      "--sim-step", "0.03") as srv:
        status, _, body = srv.create(name="lockable")
        assert status == 202
        uuid = body["server"]["id"]
        srv.wait_status(uuid, "ACTIVE")
        act = lambda body, **kw: srv.call("POST", "/v2.1/servers/%s/action" % uuid, body, **kw)  # noqa
        rename = lambda name: srv.call("PUT", "/v2.1/servers/" + uuid,  # noqa
                                       {"server": {"name": name}})[0]
        row = lambda: pg_rows(schema, "SELECT version, (record->>'version')::bigint,"  # noqa
                                      " record->'locked', record->>'locked_reason'"
                                      " FROM servers WHERE uuid = %s", (uuid,))[0]
        # After a command the row and the store hold the same version (no cell update since):
        # the one a lock reads, and which its row must outrank.
        assert rename("a") == 200
        before = row()
        assert act({"lock": {"locked_reason": "maintenance"}}, mv="2.73")[0] == 202
        locked = row()
        assert locked[0] > before[0] and locked[1] == locked[0]
        assert locked[2:] == (True, "maintenance")
        shown = srv.show(uuid, mv="2.73")
        assert shown["locked"] is True and shown["locked_reason"] == "maintenance"
        shown = srv.show(uuid, mv="2.9")
        assert shown["locked"] is True and "locked_reason" not in shown
        assert "locked" not in srv.show(uuid, mv="2.8")
        assert rename("b") == 200
        before = row()
        assert act({"unlock": None}, mv="2.73")[0] == 202
        unlocked = row()
        assert unlocked[0] > before[0] and unlocked[2:] == (False, None)
        shown = srv.show(uuid, mv="2.73")
        assert shown["locked"] is False and shown["locked_reason"] is None
        assert srv.show(uuid, mv="2.9")["locked"] is False
        # locked twice in a row (the second a no-op for the owner), then by an admin
        assert act({"lock": None})[0] == 202
        first = row()
        assert first[2] is True
        assert act({"lock": None}, token="admin:admin")[0] == 202
        assert row()[0] > first[0] and row()[2] is True


def test_kill_9_between_commit_and_store_write_is_recovered():
    fault = tempfile.NamedTemporaryFile("w", delete=False, suffix=".fault")
    fault.write("after_db_commit")
    fault.close()
    env = {"FASTNOVA_FAULT_FILE": fault.name, "FASTNOVA_RECOVER_SETTLE": "0.5"}
    try:
        with pg_schema() as schema, serve("--database", _dsn(), "--db-schema", schema,
                                          "--sim-step", "0.03", env=env) as srv:
            with pytest.raises(Exception):
                srv.create(name="doomed")          # the worker dies after the commit
            assert not os.path.exists(fault.name)
            (lost,) = pg_rows(schema, "SELECT uuid FROM servers")[0]
            deadline = time.monotonic() + 15
            while srv.show(lost) == 404:
                # the replacement worker recovers on its first command, after SETTLE
                time.sleep(0.6)
                srv.call("POST", "/v2.1/servers", {"server": {"name": "x", "flavorRef": "1",
                         "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"}}, mv="2.1")
                assert time.monotonic() < deadline, srv.log()[-3000:]
            # record and cast both came back: the cell builds it
            srv.wait_status(lost, "ACTIVE")
            assert "recovery: completed 1 commands" in srv.log()
    finally:
        if os.path.exists(fault.name):
            os.unlink(fault.name)


def _dsn():
    from tests.commands_support import PG_URL
    return PG_URL
