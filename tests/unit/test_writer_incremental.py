"""Incremental writes give the bytes of a full render.

The writer re-renders only the view parts a patch touches, reuses the parts and index entries of
the record it last wrote (tests: ``render_cache``), and merges a patch without normalizing the
whole record again.  Each shortcut is checked here against the long way round: random sequences
of upserts, patches and deletes are applied to a store with the shortcuts and the store's every
byte is compared with records rendered whole (hypothesis).
"""
from __future__ import annotations

import os
import struct

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnova.query import row as qrow
from fastnova.record import DEFAULTS, normalize
from fastnova.store import layout as L
from fastnova.views import servers as V
from fastnova.views.status import STATE_MAP

UUIDS = ["%08x-aaaa-4bbb-8ccc-%012x" % (i, i) for i in range(6)]
PROJECTS = ["p1", "p2", "p3"]
TASKS = sorted({t for m in STATE_MAP.values() for t in m if t != "default"})

times = st.one_of(
    st.none(),
    st.builds("2026-0{}-1{}T0{}:1{}:2{}.00000{}".format, *[st.integers(1, 9)] * 6))
req_times = times.filter(lambda t: t is not None)
short = st.text(alphabet="abcXYZ é-_ ", max_size=6)
label = st.sampled_from(["net", "public", "priv"])
address = st.fixed_dictionaries({
    "version": st.sampled_from([4, 6]),
    "addr": st.sampled_from(["10.0.0.1", "10.0.0.2", "fe80::1", "", "192.168.1.5"]),
    "type": st.sampled_from(["fixed", "floating", None]),
    "mac": st.sampled_from(["fa:16:3e:00:00:01", None]),
})
image = st.one_of(
    st.none(), st.just({}),
    st.fixed_dictionaries({"id": st.sampled_from(["img-1", "img-2"]),
                           "properties": st.dictionaries(st.sampled_from(["os_type", "hw_x"]),
                                                         st.one_of(st.none(), short))}))
fault = st.one_of(st.none(), st.fixed_dictionaries({
    "code": st.sampled_from([500, 404]), "message": short,
    "details": st.sampled_from(["", "Traceback ..."]), "created": req_times}))
flavor = st.fixed_dictionaries({
    "id": st.sampled_from(["1", "2", 3]), "name": short, "vcpus": st.integers(1, 4),
    "ram": st.integers(64, 4096), "disk": st.integers(0, 20),
    "extra_specs": st.dictionaries(st.sampled_from(["hw:cpu", "a"]), short, max_size=2)})

# Values of every patchable field (cellfeed.contract.PATCHABLE) that the views or indexes read.
FIELDS = {
    "name": short,
    "project_id": st.sampled_from(PROJECTS),
    "user_id": st.sampled_from(["u1", "u2"]),
    "created_at": req_times,
    "updated_at": times,
    "launched_at": times,
    "terminated_at": times,
    "vm_state": st.sampled_from(sorted(STATE_MAP) + ["bogus"]),
    "task_state": st.one_of(st.none(), st.sampled_from(TASKS)),
    "power_state": st.integers(0, 7),
    "host": st.sampled_from([None, "", "compute-1", "compute-2"]),
    "node": st.sampled_from([None, "node-1"]),
    "hostname": short,
    "instance_name": short,
    "reservation_id": short,
    "launch_index": st.integers(0, 3),
    "root_device_name": st.sampled_from([None, "/dev/vda"]),
    "user_data": st.sampled_from([None, "aGk="]),
    "availability_zone": st.sampled_from([None, "nova", "az2"]),
    "pinned_availability_zone": st.sampled_from([None, "az2"]),
    "access_ip_v4": st.sampled_from(["", "1.2.3.4"]),
    "access_ip_v6": st.sampled_from(["", "::1"]),
    "config_drive": st.sampled_from(["", "True"]),
    "disk_config": st.sampled_from(["MANUAL", "AUTO"]),
    "key_name": st.sampled_from([None, "key"]),
    "description": st.one_of(st.none(), short),
    "locked": st.booleans(),
    "locked_reason": st.one_of(st.none(), short),
    "progress": st.integers(0, 100),
    "metadata": st.dictionaries(short, short, max_size=3),
    "tags": st.lists(st.sampled_from(["Prod", "prod", "blue", "x y"]), max_size=3),
    "addresses": st.dictionaries(label, st.lists(address, max_size=3), max_size=2),
    "image": image,
    "flavor": flavor,
    "security_groups": st.lists(st.sampled_from(["default", "web"]), max_size=2),
    "volumes_attached": st.lists(st.fixed_dictionaries(
        {"id": st.sampled_from(["v1", "v2", ""]), "delete_on_termination": st.booleans()}),
        max_size=2),
    "host_status": st.sampled_from(["", "UP", "DOWN"]),
    "fault": fault,
    "server_groups": st.lists(st.sampled_from(["g1"]), max_size=1),
    "trusted_image_certificates": st.one_of(st.none(), st.lists(st.just("c"), max_size=1)),
    "scheduler_hints": st.dictionaries(st.sampled_from(["group"]), short, max_size=1),
}


def changes(min_size=1, max_size=5):
    """A patch: some fields (cellfeed.contract.PATCHABLE) with new values."""
    return st.sets(st.sampled_from(sorted(FIELDS)), min_size=min_size, max_size=max_size).flatmap(
        lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in sorted(keys)}))


# What a cell's feed mostly sends: states, progress and times.
FEED_FIELDS = ["vm_state", "task_state", "power_state", "progress", "updated_at", "host", "node",
               "launched_at"]


def feed_changes():
    return st.sets(st.sampled_from(FEED_FIELDS), min_size=1, max_size=4).flatmap(
        lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in sorted(keys)}))


def records(uuid=st.sampled_from(UUIDS), deleted=st.booleans()):
    return st.tuples(uuid, st.sampled_from(PROJECTS), req_times, flavor,
                     changes(0, len(FIELDS)), deleted).map(
        lambda t: normalize(dict(t[4], id=t[0], project_id=t[1], user_id="u1",
                                 created_at=t[2], flavor=t[3], deleted=t[5])))


class Tracing(dict):
    """A record that notes every field read."""

    def __init__(self, *args):
        super().__init__(*args)
        self.read = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_each_part_reads_only_the_fields_it_names(rec):
    for fn, fields in V.PARTS:
        traced = Tracing(rec)
        fn(traced)
        assert traced.read <= set(fields), fn.__name__


try:
    from fastnova._ext import _pack, _render, _rows
except ImportError:  # pragma: no cover - exercised when the build is missing
    _pack = _render = _rows = None
    if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
        raise


def _twins(name):
    return [pytest.param(getattr(V, name + "_pure"), id="pure"),
            pytest.param(getattr(_render, name, None), id="compiled",
                         marks=pytest.mark.skipif(_render is None, reason="not built"))]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records(), changes())
def test_rerendered_parts_equal_a_full_render(rec, patch):
    new = normalize(dict(rec, **patch))
    parts = V.rerender_parts(V.render_parts(rec), new, set(patch))
    assert parts == V.render_parts(new)
    assert V.assemble(parts) == V.render_server(new)


# Strings the compiled renderer writes itself (printable ASCII) next to those it leaves to
# orjson (escapes, control characters, non-ASCII), and numbers it leaves to orjson.
odd_text = st.one_of(st.sampled_from(['a"b', "a\\b", "x\ny", "\x7f", "\x1f", "é", "\u2028", ""]),
                     st.text(max_size=4))
odd_values = {
    "name": odd_text, "host": st.one_of(st.none(), odd_text), "key_name": odd_text,
    "description": st.one_of(st.none(), odd_text),
    "power_state": st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=False)),
    "progress": st.one_of(st.integers(-2**64, 2**64), st.booleans(), st.just(1.5)),
    "security_groups": st.lists(odd_text, max_size=2),
    "metadata": st.dictionaries(odd_text, odd_text, max_size=2),
}


@pytest.mark.parametrize("render", _twins("render_parts"))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(records(), st.fixed_dictionaries({}, optional=odd_values))
def test_render_parts_twins_agree(render, rec, odd):
    rec.update(odd)
    rec["id"] = odd.get("name", rec["id"])
    assert _outcome(render, rec) == _outcome(V.render_parts_pure, rec)


def _outcome(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - the twins must fail alike (orjson: ints > 64 bits)
        return type(exc)


@pytest.mark.parametrize("render_some", _twins("render_some"))
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(records(), changes())
def test_render_some_twins_agree(render_some, rec, patch):
    new = normalize(dict(rec, **patch))
    stale = tuple(i for i, (_fn, fields) in enumerate(V.PARTS) if set(fields) & set(patch))
    parts = V.render_parts_pure(rec)
    assert render_some(parts, new, stale) == V.render_parts_pure(new)
    assert render_some(parts, new, ()) == parts


@pytest.mark.parametrize("render", _twins("render_parts"))
def test_render_parts_twins_fail_alike(render):
    rec = normalize({"id": UUIDS[0], "project_id": "p", "user_id": "u", "flavor": {"id": 1},
                     "created_at": "2026-01-01T00:00:00.000000"})
    for field, bad in (("vm_state", ["unhashable"]), ("name", object()), ("flavor", {}),
                       ("metadata", {1: "not a str key"}), ("power_state", 2**65)):
        with pytest.raises((TypeError, KeyError, ValueError)):
            render(dict(rec, **{field: bad}))

PACKERS = [pytest.param(V.pack_parts_pure, id="pure"),
           pytest.param(getattr(_pack, "pack_parts", None), id="compiled",
                        marks=pytest.mark.skipif(_render is None, reason="not built"))]


@pytest.mark.parametrize("pack", PACKERS)
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(records())
def test_packed_parts_are_the_blob_of_the_pieces(pack, rec):
    parts = V.render_parts(rec)
    want = L.pack_blob(rec["project_id"], V.render_server(rec), deleted=rec["deleted"])
    assert pack(rec["project_id"], parts, rec["deleted"]) == want


@pytest.mark.parametrize("pack", PACKERS)
def test_packing_odd_parts(pack):
    g1, g2 = (0, 255, 3), (5, 9, 12)
    parts = ((), ((g2, False, b'"a":1'), ((0, 255, 3), True, b'"r":2')),
             ((g1, False, b'"b":3'), (g2, True, b'"s":4'), (g2, False, b'')))
    assert pack("p", parts, True) == V.pack_parts_pure("p", parts, True)
    assert pack("", (), False) == L.pack_blob("", [])
    with pytest.raises((TypeError, ValueError, struct.error)):
        pack("p", (((256, 255, 3), True, b"x"),), False)
    with pytest.raises((TypeError, ValueError, struct.error)):
        pack("p", (((0, 255, 3), True, "not bytes"),), False)


# -- the writer: random histories against the long way round -------------------------------------

def _op(kind):
    uuid, version = st.sampled_from(UUIDS[:4]), st.integers(1, 12)
    if kind == "upsert":
        return st.tuples(st.just(kind), uuid, version, records(st.just("x"), st.just(False)))
    if kind == "patch":
        return st.tuples(st.just(kind), uuid, version,
                         st.one_of(changes(), feed_changes(), feed_changes()))
    return st.tuples(st.just(kind), uuid, version, times)


# Histories as a feed makes them: mostly patches, some creates and deletes.
op = st.sampled_from(["upsert"] * 2 + ["patch"] * 4 + ["delete"]).flatmap(_op)


def _model(ops):
    """The store's records after ``ops``, computed as the writer did before any shortcut:
    normalize the whole merged record, render it whole."""
    recs, seq = {}, 0
    for kind, uuid, version, payload in ops:
        old = recs.get(uuid)
        if old is not None and version <= old["version"]:
            continue
        if kind == "upsert":
            rec = normalize(dict(payload, id=uuid, version=version, seq=0))
            if old and old.get("seq"):
                rec["seq"] = old["seq"]
            else:
                seq += 1
                rec["seq"] = seq
            recs[uuid] = rec
        elif kind == "patch":
            if old is None or old["deleted"]:
                continue
            recs[uuid] = normalize(dict(old, **payload, version=version))
        elif old is None or "project_id" not in old:
            recs[uuid] = {"id": uuid, "version": version, "deleted": True}
        else:
            when = payload or old["updated_at"] or old["created_at"]
            recs[uuid] = normalize(dict(old, version=version, deleted=True, vm_state="deleted",
                                        task_state=None, deleted_at=when, updated_at=when,
                                        terminated_at=old["terminated_at"] or when))
    return recs


def apply_ops(writer, ops, per_batch, **batch_args):
    """Apply (kind, uuid, version, payload) ops, per_batch of them a store transaction."""
    for start in range(0, len(ops), per_batch):
        with writer.batch(**batch_args) as b:
            for kind, uuid, version, payload in ops[start:start + per_batch]:
                if kind == "upsert":
                    b.upsert_server(dict(payload, id=uuid, version=version, seq=0),
                                    normalized=True)
                elif kind == "patch":
                    b.patch_server(uuid, version, payload)
                else:
                    b.delete_server(uuid, version, payload)


def _dump(writer, names):
    with writer.env.begin() as txn:
        return {n: list(txn.cursor(db=writer.dbs[n])) for n in names}


INDEXES = (L.DB_INDEX, L.DB_COUNTS, L.DB_BY_CHANGED, L.DB_BY_NAME)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(op, min_size=2, max_size=40), st.sampled_from([1, 2, 100]),
       st.integers(1, 6), st.sampled_from([1, 3, 7]))
def test_histories_store_the_bytes_of_a_full_render(tmp_path_factory, ops, cache, per_batch,
                                                    reorder):
    from fastnova.store.writer import StoreWriter
    ops = ops[::reorder] + ops[1::reorder] if reorder > 1 else ops   # late and early versions
    recs = _model(ops)
    writer = StoreWriter.open(str(tmp_path_factory.mktemp("inc")), sync=False, render_cache=cache)
    full = StoreWriter.open(str(tmp_path_factory.mktemp("full")), sync=False)
    try:
        apply_ops(writer, ops, per_batch)
        with full.batch() as b:      # the same final records, written once each
            for rec in recs.values():
                if "project_id" in rec:
                    b.upsert_server(rec)
                else:
                    b.delete_server(rec["id"], rec["version"])
        got = _dump(writer, (L.DB_RECORDS, L.DB_QROWS, L.DB_SERVERS) + INDEXES)
        assert got[L.DB_RECORDS] == sorted((u.encode(), orjson.dumps(r)) for u, r in recs.items())
        live = sorted((u.encode(), r) for u, r in recs.items() if "project_id" in r)
        assert got[L.DB_QROWS] == [(k, qrow.dumps(qrow.build(r))) for k, r in live]
        assert got[L.DB_SERVERS] == [
            (k, L.pack_blob(r["project_id"], V.render_server(r), deleted=r["deleted"]))
            for k, r in live]
        assert {n: got[n] for n in INDEXES} == _dump(full, INDEXES)
    finally:
        writer.close()
        full.close()


def _index_impls():
    from fastnova.store import writer
    return [pytest.param(writer.index_entries_pure, id="pure"),
            pytest.param(getattr(_rows, "index_entries", None), id="compiled",
                         marks=pytest.mark.skipif(_render is None, reason="not built"))]


@pytest.mark.parametrize("entries", _index_impls())
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(records(), st.datetimes(min_value=__import__("datetime").datetime(1970, 1, 1)))
def test_index_entries_twins_agree(entries, rec, when):
    from fastnova.store.writer import index_entries_pure
    rec["updated_at"] = when.strftime("%Y-%m-%dT%H:%M:%S.%f")
    assert entries(rec) == index_entries_pure(rec)


@pytest.mark.parametrize("entries", _index_impls())
@pytest.mark.parametrize("created", [
    "2024-02-29T23:59:59.999999", "1970-01-01T00:00:00.000000", "2026-01-02T03:04:05",
    "2100-12-31T00:00:00.000001", "2023-02-29T00:00:00.000000", "1969-12-31T23:59:59.000000",
    "2026-13-01T00:00:00.000000", "2026-01-01T24:00:00.000000", "2026-01-01 00:00:00.000000",
    "２026-01-01T00:00:00.000000"])
def test_index_entries_twins_agree_on_odd_times(entries, created):
    from fastnova.store.writer import index_entries_pure
    rec = normalize({"id": UUIDS[0], "project_id": "p", "user_id": "u", "flavor": {"id": 1},
                     "created_at": "2026-01-01T00:00:00.000000"})
    rec["created_at"] = created
    try:
        want = index_entries_pure(rec)
    except Exception as exc:  # the compiled one must fail the same way
        with pytest.raises(type(exc)):
            entries(rec)
    else:
        assert entries(rec) == want


def _row_impls():
    return [pytest.param(qrow.build_pure, id="pure"),
            pytest.param(getattr(_rows, "build_row", None), id="compiled",
                         marks=pytest.mark.skipif(_render is None, reason="not built"))]


@pytest.mark.parametrize("build", _row_impls())
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(records(), st.datetimes(), st.booleans())
def test_query_row_twins_agree(build, rec, when, early):
    if early:     # before 1970 and other times the compiled reader leaves to Python
        rec["created_at"] = when.strftime("%Y-%m-%dT%H:%M:%S.%f")
    want = _outcome(qrow.build_pure, rec)
    row = _outcome(build, rec)
    if isinstance(want, dict):
        assert list(row.items()) == list(want.items())       # key order too
        assert qrow.dumps(row) == qrow.dumps(want)
    else:                   # a year before 1000 is no ISO time ("999-01-01T...")
        assert row is want


@pytest.mark.skipif(_render is None, reason="not built")
@pytest.mark.parametrize("value", [
    None, "", "2024-02-29T23:59:59.999999", "1970-01-01T00:00:00.000000", "2026-01-02T03:04:05",
    "1969-12-31T23:59:59.000000", "2026-01-01 00:00:00.000000", "2023-02-29T00:00:00.000000",
    "２026-01-01T00:00:00.000000", "9999-12-31T23:59:59.999999"])
def test_micros_twins_agree(value):
    assert _outcome(_rows.micros, value) == _outcome(qrow.micros_pure, value)


@pytest.mark.skipif(_render is None, reason="not built")
def test_compiled_parts_and_index_entries_are_off_the_cycle_collector():
    import gc
    rec = normalize({"id": UUIDS[0], "project_id": "p", "user_id": "u", "flavor": {"id": 1},
                     "created_at": "2026-01-01T00:00:00.000000", "tags": ["a"]})
    parts = _render.render_parts(rec)
    again = _render.render_some(parts, dict(rec, name="x"), (0,))
    for made in (parts, again):
        assert not gc.is_tracked(made)
        assert not any(gc.is_tracked(p) or any(map(gc.is_tracked, p)) for p in made)
    entries = _rows.index_entries(rec)
    assert not gc.is_tracked(entries)
    assert not any(gc.is_tracked(k) or gc.is_tracked(v) for k, v in entries.items())
