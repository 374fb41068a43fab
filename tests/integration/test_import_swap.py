"""Import edge cases, the live swap and reconcile, in the real PostgreSQL and LMDB."""
from __future__ import annotations

import datetime as dt
import os

import orjson
import pytest

from fastnova.api.app import App, Request
from fastnova.importer import swap
from fastnova.importer.reconcile import reconcile_once
from fastnova.importer.run import import_nova
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter
from tests.import_support import (ENGINES, NovaDeployment, flavor_primitive, needs_pg, nova_obj,
                                       request_spec)

PROJECT = "6f70656e737461636b20342065766572"
QUIET = open(os.devnull, "w")


@pytest.fixture(params=ENGINES)
def nova(request):
    dep = NovaDeployment(cells=2, engine=request.param)
    yield dep
    dep.drop()


def show(app, uuid, mv="2.100"):
    raw = app.handle(Request(method="GET", path="/v2.1/servers/" + uuid, token="admin:admin",
                             mv_header="compute " + mv))
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(body)


def listing(app, query="all_tenants=1"):
    raw = app.handle(Request(method="GET", path="/v2.1/servers/detail", query=query,
                             token="admin:admin", mv_header="compute 2.100"))
    return orjson.loads(raw.partition(b"\r\n\r\n")[2])["servers"]


def test_cells_build_requests_deleted_hidden(nova, tmp_path):
    a = nova.add_instance("cell1", display_name="a")
    b = nova.add_instance("cell2", display_name="b", host="compute2", vm_state="error",
                          fault=dict(code=500, message="boom", details="Traceback",
                                     created_at=dt.datetime(2013, 9, 3, 4, 5, 6)))
    nova.add_instance("cell1", display_name="gone", deleted=1,
                      deleted_at=dt.datetime(2013, 9, 4))
    nova.add_instance("cell2", display_name="hidden", hidden=True)
    uuid = "11111111-2222-3333-4444-555555555555"
    inst = nova_obj("Instance", {
        "uuid": uuid, "display_name": "building", "project_id": PROJECT, "user_id": "fake",
        "vm_state": "building", "task_state": "scheduling", "power_state": 0,
        "flavor": flavor_primitive(), "image_ref": "70a599e0-31e7-49b7-b260-868f441e862b",
        "metadata": {"k": "v"}, "system_metadata": {"image_os_distro": "cirros"},
        "key_name": "key", "availability_zone": None, "locked_by": None}, "2.8")
    nova.insert("api", "build_requests", instance_uuid=uuid, project_id=PROJECT,
                instance=orjson.dumps(inst).decode(), created_at=dt.datetime(2013, 9, 5),
                tags=orjson.dumps(nova_obj("TagList", {"objects": [
                    nova_obj("Tag", {"tag": "t1", "resource_id": uuid})]})).decode())
    nova.insert("api", "request_specs", instance_uuid=uuid, spec=request_spec(uuid, az="az9"))
    stats = import_nova(nova.url("api"), nova.cell_urls(), str(tmp_path), out=QUIET)
    assert (stats.servers, stats.deleted, stats.build_requests) == (4, 1, 1)
    app = App(StoreReader.open(str(tmp_path)))
    names = sorted(s["name"] for s in listing(app))
    assert names == ["a", "b", "building"]
    status, doc = show(app, b["uuid"])
    assert doc["server"]["fault"] == {"code": 500, "created": "2013-09-03T04:05:06Z",
                                      "message": "boom", "details": "Traceback"}
    assert doc["server"]["host_status"] == ""         # no nova-compute service for compute2
    br = show(app, uuid)[1]["server"]
    assert br["status"] == "BUILD" and br["addresses"] == {} and br["tags"] == ["t1"]
    assert br["pinned_availability_zone"] == "az9" and br["image"]["properties"] == {
        "os_distro": "cirros"}
    assert show(app, a["uuid"])[0] == 200
    app.reader.close()


def _old_worker(data, uuid_b, go, report):
    """A worker process with the store open before the swap (LMDB: one open per process)."""
    reader = StoreReader.open(data)
    os.write(report, b"r")
    os.read(go, 1)
    with reader.begin() as txn:
        ok = (reader.record(txn, uuid_b.encode()) is None
              and txn.get(swap.META_SUPERSEDED, db=reader.dbs[b"meta"]) is not None)
    os.write(report, b"1" if ok else b"0")
    os._exit(0)


def test_reimport_swaps_under_open_reader_and_keeps_newer_feed_writes(nova, tmp_path):
    data = str(tmp_path)
    a = nova.add_instance(display_name="a")
    import_nova(nova.url("api"), nova.cell_urls(), data, out=QUIET)
    # cellfeed applies a notification newer than the row while the next import runs
    with _writer(data) as w, w.batch() as bt:
        rec = bt.get_record(a["uuid"])
        assert bt.patch_server(a["uuid"], rec["version"] + 5, {"name": "renamed by feed"})
    b = nova.add_instance(display_name="b")
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _old_worker(data, b["uuid"], go_r, rep_w)
    assert os.read(rep_r, 1) == b"r"
    stats = import_nova(nova.url("api"), nova.cell_urls(), data, out=QUIET)
    os.write(go_w, b"g")
    # the old worker still answers, from the old (superseded) store, consistently
    assert os.read(rep_r, 1) == b"1"
    os.waitpid(pid, 0)
    assert stats.carried == 1
    assert os.path.isdir(os.path.join(data, swap.PREVIOUS))
    app = App(StoreReader.open(data))
    assert sorted(s["name"] for s in listing(app)) == ["b", "renamed by feed"]
    app.reader.close()


class _writer:
    def __init__(self, data):
        self.w = StoreWriter.open(data)

    def __enter__(self):
        return self.w

    def __exit__(self, *exc):
        self.w.close()


def test_reconcile_repairs_drift(nova, tmp_path):
    data = str(tmp_path)
    keep = nova.add_instance(display_name="keep")
    edit = nova.add_instance(display_name="before")
    drop = nova.add_instance(display_name="drop")
    nova.add_service()
    import_nova(nova.url("api"), nova.cell_urls(), data, out=QUIET)
    # nova changes behind fastnova's back (lost notifications)
    nova.execute("cell1", "UPDATE instances SET display_name = 'after', updated_at = %s "
                 "WHERE uuid = %s", (dt.datetime(2013, 9, 6), edit["uuid"]))
    nova.execute("cell1", "DELETE FROM instance_info_caches WHERE instance_uuid = %s",
                 (drop["uuid"],))
    for table in ("instance_extra", "instances"):
        col = "uuid" if table == "instances" else "instance_uuid"
        nova.execute("cell1", "DELETE FROM %s WHERE %s = %%s" % (table, col), (drop["uuid"],))
    new = nova.add_instance(display_name="new")
    # and the store drifts: a notification stripped the floating IP-less addresses of "keep"
    with _writer(data) as w, w.batch() as bt:
        rec = bt.get_record(keep["uuid"])
        bt.patch_server(keep["uuid"], rec["version"] + 1, {"addresses": {}})
    stats = reconcile_once(nova.url("api"), nova.cell_urls(), data)
    assert (stats.added, stats.updated, stats.deleted) == (1, 2, 1)
    app = App(StoreReader.open(data))
    assert sorted(s["name"] for s in listing(app)) == ["after", "keep", "new"]
    assert show(app, keep["uuid"])[1]["server"]["addresses"]["private"][0]["addr"] == \
        "192.168.1.30"
    assert show(app, drop["uuid"])[0] == 404
    app.reader.close()
    again = reconcile_once(nova.url("api"), nova.cell_urls(), data)
    assert (again.added, again.updated, again.deleted) == (0, 0, 0)


def test_writer_refuses_a_superseded_store(tmp_path):
    from fastnova.store import layout as L
    data = str(tmp_path)
    w = StoreWriter.open(data)
    with w.env.begin(write=True) as txn:
        txn.put(L.META_SUPERSEDED, b"gen-2", db=w.dbs[L.DB_META])
    with pytest.raises(L.StoreSuperseded, match="gen-2"):
        with w.batch() as b:
            b.set_meta(b"x", b"1")
    with w.env.begin() as txn:
        assert txn.get(b"x", db=w.dbs[L.DB_META]) is None       # nothing was written
    w.close()


def test_cellfeed_follows_an_import_swap(nova, tmp_path):
    """cellfeed's applier, writing while an import swaps the store out, reopens the new store
    and applies there: nothing it applies after the swap is lost in the superseded one."""
    from cellfeed import contract
    from cellfeed.applier import Applier
    data = str(tmp_path)
    a = nova.add_instance(display_name="a")
    import_nova(nova.url("api"), nova.cell_urls(), data, out=QUIET)
    go_r, go_w = os.pipe()
    rep_r, rep_w = os.pipe()
    pid = os.fork()
    if pid == 0:                       # the cellfeed process
        code = 1
        try:
            applier = Applier(StoreWriter.open(data))
            first = applier.writer
            with first.batch() as b:
                version = b.get_record(a["uuid"])["version"]
            applier.apply([(1, [contract.server_patch(a["uuid"], version + 10,
                                                      {"name": "before swap"})])])
            os.write(rep_w, b"1")
            os.read(go_r, 1)
            applier.apply([(2, [contract.server_patch(a["uuid"], version + 20,
                                                      {"name": "after swap"})])])
            code = 0 if applier.writer is not first and applier.stats.position == 2 else 2
            applier.writer.close()
        finally:
            os._exit(code)
    assert os.read(rep_r, 1) == b"1"
    stats = import_nova(nova.url("api"), nova.cell_urls(), data, out=QUIET)
    assert stats.carried == 1          # "before swap", newer than nova's row, carried over
    os.write(go_w, b"g")
    _pid, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    app = App(StoreReader.open(data))
    status, body = show(app, a["uuid"])
    assert status == 200 and body["server"]["name"] == "after swap"
    app.reader.close()
