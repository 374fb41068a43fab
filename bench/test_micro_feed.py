"""The feed's hot steps: journal append (+ group commit) and applying a batch to the store.

cellfeed belongs to another engineer; these cases only import it.  The commit cases are run with
the fsync replaced by a no-op (the CPU cost of the journal) and with the real fdatasync (what
durability costs on this disk, noisy: REFERENCE-NUMBERS.md has ~0.34 ms p50, 4-8 ms slow mode).
"""
import itertools
import os

import pytest

from cellfeed import contract
from cellfeed.applier import Applier
from cellfeed.journal import Journal
from fastnova import demo
from fastnova.store.writer import StoreWriter

PAYLOAD = b"x" * 500


@pytest.fixture
def journal(tmp_path):
    j = Journal(str(tmp_path / "journal"), sync=lambda fd: None)
    yield j
    j.close()


def test_journal_append(benchmark, journal):
    benchmark(journal.append, PAYLOAD)
    journal.commit()


@pytest.mark.parametrize("sync", ["none", "fdatasync"])
def test_journal_group_of_100(benchmark, tmp_path, sync):
    j = Journal(str(tmp_path / "j"), sync=os.fdatasync if sync == "fdatasync" else
                (lambda fd: None))

    def group():
        for _ in range(100):
            j.append(PAYLOAD)
        return j.commit()

    try:
        assert benchmark(group) > 0
    finally:
        j.close()


@pytest.fixture
def applier(tmp_path):
    writer = StoreWriter.open(str(tmp_path / "store"), sync=False)
    demo.fill(writer, 500)
    yield Applier(writer)
    writer.close()


def test_apply_batch_of_100_patches(benchmark, applier):
    ids = [demo.server(i)["id"] for i in range(100)]
    versions = itertools.count(2)
    lsns = itertools.count(applier.stats.position + 1)

    def batch():
        v = next(versions)
        entries = [(next(lsns), [contract.server_patch(u, v, {"vm_state": "stopped"
                                                               if v % 2 else "active"})])
                   for u in ids]
        applier.apply(entries)

    benchmark(batch)
    assert applier.stats.applied >= 100
