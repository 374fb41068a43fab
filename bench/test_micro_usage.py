"""Quota usage lookup (GET /limits, every create's quota check) at 10 and at 100,000 servers in
one project: the counts the writer keeps (one get) against the walk they replaced.

    python -m pytest bench/test_micro_usage.py --benchmark-only
    FASTNOVA_BENCH_USAGE_SERVERS=1000000 python -m pytest bench/test_micro_usage.py ...

The stores are written in-process with sync off (what is measured is the read).
"""
from __future__ import annotations

import os
import types

import pytest

from fastnova.commands import quota
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter

PROJECT = "6f70656e737461636b20342065766572"
BIG = int(os.environ.get("FASTNOVA_BENCH_USAGE_SERVERS", "100000"))
BATCH = 5000


def _fill(path: str, count: int):
    writer = StoreWriter.open(path, sync=False)
    try:
        for start in range(0, count, BATCH):
            with writer.batch() as b:
                for i in range(start, min(count, start + BATCH)):
                    b.upsert_server({
                        "id": "00000000-0000-4000-8000-%012d" % i, "version": 1, "seq": 0,
                        "project_id": PROJECT, "user_id": "u%d" % (i % 7), "name": "s%d" % i,
                        "created_at": "2026-01-01T00:00:%02d.%06d" % (i // 1000000 % 60,
                                                                      i % 1000000),
                        "vm_state": "active", "flavor": {"id": "1", "vcpus": 1, "ram": 512}})
    finally:
        writer.close()


@pytest.fixture(scope="module", params=[10, BIG], ids=lambda n: "%d-servers" % n)
def store(request, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("usage-%d" % request.param))
    _fill(path, request.param)
    reader = StoreReader(path)
    yield request.param, types.SimpleNamespace(reader=reader)
    reader.close()


def test_usage_counts(benchmark, store):
    count, rt = store
    with rt.reader.env.begin() as txn:
        used = benchmark(quota.usage, rt, txn, PROJECT)
    assert used == {"instances": count, "cores": count, "ram": 512 * count}


def test_usage_walk_it_replaced(benchmark, store):
    count, rt = store
    with rt.reader.env.begin() as txn:
        used = benchmark.pedantic(quota.usage_by_walk, (rt, txn, PROJECT), rounds=3)
    assert used == {"instances": count, "cores": count, "ram": 512 * count}
