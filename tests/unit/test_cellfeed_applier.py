"""The applier against a real StoreWriter (LMDB in a temp dir): position, versions, bad entries."""
from __future__ import annotations

import pytest

from cellfeed import contract as C
from cellfeed.applier import META_POSITION, Applier, ApplyError
from tests.cellfeed_support import new_uuid, server


@pytest.fixture
def writer(tmp_path):
    from fastnova.store.writer import StoreWriter
    w = StoreWriter.open(str(tmp_path))
    yield w
    w.close()


def decoded(*updates):
    return C.decode(C.encode(list(updates)))


def test_batch_records_position_and_versions(writer):
    a = new_uuid()
    applier = Applier(writer)
    applier.apply([(1, decoded(C.server_upsert(server(a, 2)))),
                   (2, decoded(C.server_upsert(server(a, 1)))),        # stale
                   (3, decoded(C.server_patch(a, 3, {"name": "three"})))])
    assert (applier.stats.applied, applier.stats.ignored, applier.stats.batches) == (2, 1, 1)
    with writer.batch() as b:
        assert b.get_meta(META_POSITION) == b"3"
        assert (b.get_record(a)["version"], b.get_record(a)["name"]) == (3, "three")
    assert Applier(writer).stats.position == 3          # read back at start


def test_an_unappliable_entry_stops_the_feed_before_it(writer):
    good, bad = new_uuid(), new_uuid()
    broken = {"kind": C.SERVER_UPSERT, "id": bad, "version": 1, "server": {"id": bad}}
    applier = Applier(writer)
    with pytest.raises(ApplyError, match="journal entry 8"):
        applier.apply([(7, decoded(C.server_upsert(server(good, 1)))), (8, [broken]),
                       (9, decoded(C.server_delete(good, 2)))])
    with writer.batch() as b:
        assert b.get_meta(META_POSITION) == b"7"     # entry 8 and after will be replayed
        assert b.get_record(good)["version"] == 1
        assert b.get_record(bad) is None
