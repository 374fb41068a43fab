"""Fixtures of the micro suites (bench/test_micro_*.py): a small demo store built once per
session, a reader on it, and the two implementations of page assembly side by side.

    python -m pytest bench/test_micro_*.py --benchmark-only

The store is written in-process with sync off: durability is not what these suites measure.
"""
from __future__ import annotations

import importlib

import pytest

from fastnova import demo
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter

STORE_SERVERS = 2000      # enough for full 1000-server pages across projects
MEMBER = demo.PROJECTS[0][0]


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("micro-store"))
    writer = StoreWriter.open(path, sync=False)
    try:
        demo.fill(writer, STORE_SERVERS)
    finally:
        writer.close()
    return path


@pytest.fixture(scope="session")
def reader(store_dir):
    r = StoreReader.open(store_dir)
    yield r
    r.close()


@pytest.fixture(scope="session")
def member_ids():
    """Member-project server ids, as bytes (demo.server(i) belongs to PROJECTS[i % 5])."""
    return [demo.server(i)["id"].encode() for i in range(0, STORE_SERVERS, len(demo.PROJECTS))]


def _compiled():
    try:
        return importlib.import_module("fastnova._ext._speedups")
    except ImportError:
        return None


@pytest.fixture(params=["pure", "compiled"])
def assembly(request):
    """fastnova.store.assemble (the pure twin) or fastnova._ext._speedups, when it is built."""
    if request.param == "pure":
        return importlib.import_module("fastnova.store.assemble")
    module = _compiled()
    if module is None:
        pytest.skip("fastnova._ext._speedups is not built (python setup.py build_ext --inplace)")
    return module
