"""Quota usage counts (fastnova.store.usage) equal a full recount after any history.

Random histories as a cell's feed sends them (creates, patches that resize, move states into and
out of soft-delete and change owners, deletes, tombstones of servers never seen, redeliveries,
versions out of order), in batches of several sizes, coalescing or not: the counts the writer
kept in each transaction must equal the counts computed from the final records alone, and those
of nova's rule applied to the model of the history.  A schema-2 store (no counts) is recounted
once when a writer opens it.
"""
from __future__ import annotations

import lmdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnova.store import layout as L
from fastnova.store import usage
from fastnova.store.writer import StoreWriter
from tests.unit.test_writer_incremental import _model, apply_ops, op


def _nova_counts(recs: dict) -> dict:
    """nova's _get_counts_in_db over the model's records: not deleted, not soft-deleted."""
    out = {}
    for rec in recs.values():
        if "project_id" not in rec or rec["deleted"] or rec.get("vm_state") == "soft-delete":
            continue
        flavor = rec.get("flavor") or {}
        add = (1, flavor.get("vcpus") or 0, flavor.get("ram") or 0)
        for key in (usage.project_key(rec["project_id"]),
                    usage.user_key(rec["project_id"], rec.get("user_id") or "")):
            acc = out.setdefault(key, [0, 0, 0])
            for i in range(3):
                acc[i] += add[i]
    return {k: tuple(v) for k, v in out.items() if any(v)}


def _kept(writer):
    with writer.env.begin() as txn:
        return usage.kept(txn, writer.dbs[L.DB_USAGE]), usage.full_count(
            txn, writer.dbs[L.DB_RECORDS])


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(op, min_size=1, max_size=40), st.sampled_from([1, 3, 7]),
       st.sampled_from([1, 2, 5, 100]), st.booleans(), st.lists(st.integers(0, 39), max_size=6))
def test_counts_equal_a_full_recount_after_any_history(tmp_path_factory, ops, reorder,
                                                      per_batch, coalesce, redeliver):
    ops = ops[::reorder] + ops[1::reorder] if reorder > 1 else ops   # late and early versions
    for i in redeliver:                                              # the same message again
        if i < len(ops):
            ops.insert(i + 1, ops[i])
    writer = StoreWriter.open(str(tmp_path_factory.mktemp("usage")), sync=False)
    try:
        apply_ops(writer, ops, per_batch, coalesce=coalesce)
        kept, recount = _kept(writer)
        assert kept == recount
        assert kept == _nova_counts(_model(ops))
    finally:
        writer.close()


def test_lookup_reads_the_project_and_the_user(tmp_path):
    writer = StoreWriter.open(str(tmp_path), sync=False)
    base = {"created_at": "2026-01-01T00:00:00.000000", "vm_state": "active", "seq": 0}
    with writer.batch() as b:
        for i, (user, vcpus, ram) in enumerate([("u1", 2, 2048), ("u1", 1, 512),
                                                ("u2", 4, 8192)]):
            b.upsert_server(dict(base, id="%036d" % i, version=1, project_id="p", user_id=user,
                                 flavor={"id": "1", "vcpus": vcpus, "ram": ram}))
    with writer.batch() as b:                                   # soft-delete leaves the count
        b.patch_server("%036d" % 1, 2, {"vm_state": "soft-delete"})
    with writer.env.begin() as txn:
        db = writer.dbs[L.DB_USAGE]
        assert usage.read(txn, db, "p") == {"instances": 2, "cores": 6, "ram": 10240}
        assert usage.read(txn, db, "p", "u1") == {"instances": 1, "cores": 2, "ram": 2048}
        assert usage.read(txn, db, "other") == {"instances": 0, "cores": 0, "ram": 0}
        assert usage.read(txn, db, "") == {"instances": 0, "cores": 0, "ram": 0}
    writer.close()


def test_a_schema_2_store_is_recounted_once_when_a_writer_opens_it(tmp_path):
    writer = StoreWriter.open(str(tmp_path), sync=False)
    with writer.batch() as b:
        for i in range(5):
            b.upsert_server({"id": "%036d" % i, "version": 1, "project_id": "p", "seq": 0,
                             "user_id": "u", "created_at": "2026-01-01T00:00:00.000000",
                             "flavor": {"id": "1", "vcpus": 1, "ram": 100}})
    # Make it the store an older fastnova wrote: schema 2, no usage database.
    with writer.env.begin(write=True) as txn:
        txn.drop(writer.dbs[L.DB_USAGE], delete=True)
        txn.put(L.META_SCHEMA, b"2", db=writer.dbs[L.DB_META])
    writer.close()
    env = lmdb.open(str(tmp_path / "store"), max_dbs=20, readonly=True)
    try:
        try:
            env.open_db(L.DB_USAGE, create=False)
            raise AssertionError("the usage database should be gone")
        except lmdb.NotFoundError:
            pass
    finally:
        env.close()
    writer = StoreWriter.open(str(tmp_path), sync=False)
    try:
        with writer.env.begin() as txn:
            assert txn.get(L.META_SCHEMA, db=writer.dbs[L.DB_META]) == b"3"
            assert usage.read(txn, writer.dbs[L.DB_USAGE], "p") == {
                "instances": 5, "cores": 5, "ram": 500}
    finally:
        writer.close()
