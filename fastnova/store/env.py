"""The one door to LMDB: every environment of the store is opened here.

This is fastnova's only ``import lmdb`` outside the compiled reader (fastnova/_ext/_mapped.pyx
reads the pages of an environment it is handed).  ``StoreReader`` and ``StoreWriter`` are handed
the environment they use: a process that reads and writes (a worker serving commands) opens its
store once and both share it.  LMDB must not be opened twice by one process: closing either copy
would drop the locks the other relies on.
"""
from __future__ import annotations

import os

import lmdb

from fastnova.store import layout as L

# A sparse mapping: the file grows only with the data.  1,000,000 servers take about 5 GB.
DEFAULT_MAP_SIZE = 64 << 30
MAX_READERS = 1024

Environment = lmdb.Environment


def store_path(data_dir: str) -> str:
    return os.path.join(data_dir, "store")


def data_dir_of(env) -> str:
    """The data dir whose store ``env`` is."""
    return os.path.dirname(env.path().rstrip("/"))


def open_env(data_dir: str, map_size: int = DEFAULT_MAP_SIZE, readonly: bool = False,
             sync: bool = True, create: bool | None = None) -> lmdb.Environment:
    """Open the store's environment.  A writable one is created when missing unless ``create``
    is False (a worker's store must already exist: ``fastnova serve`` prepares it); a read-only
    one never is."""
    create = (not readonly) if create is None else create
    path = store_path(data_dir)
    if create:
        os.makedirs(path, exist_ok=True)
    return lmdb.open(path, map_size=map_size, max_dbs=len(L.ALL_DBS) + 2, readonly=readonly,
                     max_readers=MAX_READERS, sync=sync, metasync=sync, readahead=False,
                     create=create, subdir=True)
