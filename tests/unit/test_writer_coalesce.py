"""A coalescing batch stores what applying its writes one by one stores.

``StoreWriter.batch(coalesce=True)`` (the feed's applier) renders, indexes and puts each server
once, from its last state in the transaction.  Random histories of upserts, patches and deletes
(tests/unit/test_writer_incremental.py's, with redelivered and reordered versions) are applied to two
stores: one write per transaction without coalescing, and several writes per coalescing
transaction; every database of the two stores must hold the same bytes, meta included.
"""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnova.store import layout as L
from fastnova.store.writer import StoreWriter
from tests.unit.test_writer_incremental import (UUIDS, apply_ops, changes, feed_changes, op, records,
                                          times)


# Pools of payloads drawn by hypothesis; long histories are then made from them with a seeded
# random.Random (hypothesis cannot draw hundreds of whole records in one example: it overruns
# its buffer and silently runs only the short ones).
pools = st.tuples(
    st.lists(records(st.just("x"), st.just(False)), min_size=1, max_size=3),
    st.lists(st.one_of(changes(), feed_changes(), feed_changes()), min_size=2, max_size=8),
    st.lists(times, min_size=1, max_size=2))


def _history(pool, seed, length):
    """Operations as a feed sends them: versions growing per server, with a stale or
    duplicate one now and then (redelivery, reordering)."""
    upserts, patches, deleted_at = pool
    rng, versions, ops = random.Random(seed), {}, []
    for _ in range(length):
        uuid = rng.choice(UUIDS[:4])
        kind = rng.choice(["upsert"] * 2 + ["patch"] * 8 + ["delete"])
        if rng.random() < 0.8:
            versions[uuid] = versions.get(uuid, 0) + 1
            version = versions[uuid]
        else:
            version = rng.randint(1, versions.get(uuid, 0) + 1)
        payload = {"upsert": upserts, "patch": patches, "delete": deleted_at}[kind]
        ops.append((kind, uuid, version, rng.choice(payload)))
    return ops


def _dump(writer):
    with writer.env.begin() as txn:
        return {name: list(txn.cursor(db=writer.dbs[name])) for name in L.ALL_DBS}


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(op, min_size=2, max_size=30), st.sampled_from([0, 1, 3, 100]),
       st.sampled_from([2, 5, 1000]), st.sampled_from([1, 3, 7]))
def test_coalesced_batches_store_the_bytes_of_one_by_one(tmp_path_factory, ops, cache,
                                                         per_batch, reorder):
    ops = ops[::reorder] + ops[1::reorder] if reorder > 1 else ops   # late and early versions
    _compare(tmp_path_factory, ops, cache, per_batch)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(pools, st.integers(0, 2**32), st.sampled_from([0, 1, 3, 100]),
       st.sampled_from([3, 10, 1000]))
def test_coalesced_feed_histories_store_the_bytes_of_one_by_one(tmp_path_factory, pool, seed,
                                                                cache, per_batch):
    _compare(tmp_path_factory, _history(pool, seed, 120), cache, per_batch)


def _compare(tmp_path_factory, ops, cache, per_batch):
    one = StoreWriter.open(str(tmp_path_factory.mktemp("one")), sync=False, render_cache=cache)
    many = StoreWriter.open(str(tmp_path_factory.mktemp("many")), sync=False, render_cache=cache)
    try:
        apply_ops(one, ops, 1, coalesce=False)
        apply_ops(many, ops, per_batch, coalesce=True)
        assert _dump(many) == _dump(one)
    finally:
        one.close()
        many.close()


def test_reads_in_a_coalescing_batch_see_its_pending_writes(tmp_path):
    writer = StoreWriter.open(str(tmp_path), sync=False, render_cache=10)
    rec = {"id": UUIDS[0], "project_id": "p", "user_id": "u", "flavor": {"id": 1},
           "created_at": "2026-01-01T00:00:00.000000", "version": 1, "seq": 0}
    try:
        with writer.batch(coalesce=True) as b:
            assert b.upsert_server(rec)
            assert b.get_record(UUIDS[0])["version"] == 1
            assert b.patch_server(UUIDS[0], 2, {"vm_state": "active"})
            assert not b.patch_server(UUIDS[0], 2, {"vm_state": "error"})    # not newer
            got = b.get_record(UUIDS[0])
            assert (got["version"], got["vm_state"]) == (2, "active")
            assert b.delete_server(UUIDS[0], 3)
            assert not b.patch_server(UUIDS[0], 4, {"vm_state": "active"})   # deleted
        with writer.batch() as b:
            got = b.get_record(UUIDS[0])
        assert (got["version"], got["deleted"]) == (3, True)
    finally:
        writer.close()
