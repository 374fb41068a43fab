"""The validated-token cache every worker shares: an LMDB environment of its own.

keystonemiddleware keeps validated tokens in memcached (or per process) for ``token_cache_time``.
fastnova keeps them in ``DATA_DIR/tokens``, one small LMDB environment all workers map, so a
token is validated once per API host, not once per worker.  An entry is trusted until
``min(validated + token_cache_time, expires_at)``: never past the token's own expiry, and a
revoked token stops working within token_cache_time, as keystonemiddleware promises.  Invalid
tokens are remembered for the same time (keystonemiddleware does too), so a client repeating a
bad token does not cost a keystone call per request.

Single flight across workers: the first worker to miss writes a *claim* (its deadline) in the
same environment; another worker that misses the same token while the claim holds waits for
the entry instead of asking keystone itself.  Keys are SHA-256 digests of the token: the
tokens themselves are never written to disk.
"""
from __future__ import annotations

import hashlib
import os
import time

import lmdb
import orjson

MAP_SIZE = 1 << 30          # sparse; a cached token is ~400 bytes
PURGE_EVERY = 1024          # writes between sweeps of expired entries


def digest(token: str, allow_expired: bool = False) -> bytes:
    h = hashlib.sha256(token.encode("utf-8", "surrogateescape"))
    if allow_expired:
        h.update(b"\0allow_expired")
    return h.digest()[:20]


class SharedTokenCache:
    def __init__(self, data_dir: str):
        self.path = os.path.join(data_dir, "tokens")
        self.env = None
        self.pid = None
        self.writes = 0

    def _open(self):
        # Opened lazily, in the process that uses it: an LMDB handle must not cross a fork.
        if self.env is None or self.pid != os.getpid():
            os.makedirs(self.path, exist_ok=True)
            self.env = lmdb.open(self.path, map_size=MAP_SIZE, max_dbs=0, sync=False,
                                 metasync=False, readahead=False, max_readers=1024)
            self.pid = os.getpid()
        return self.env

    def get(self, key: bytes, now: float | None = None):
        """(valid_until, identity dict or None for 'invalid'), or None when not cached."""
        env = self._open()
        with env.begin(buffers=True) as txn:
            raw = txn.get(b"t" + key)
            if raw is None:
                return None
            entry = orjson.loads(bytes(raw))
        if entry["until"] <= (time.time() if now is None else now):
            return None
        return entry["until"], entry["identity"]

    def put(self, key: bytes, until: float, identity) -> None:
        env = self._open()
        value = orjson.dumps({"until": until, "identity": identity})
        with env.begin(write=True) as txn:
            txn.put(b"t" + key, value)
            txn.delete(b"c" + key)
        self.writes += 1
        if self.writes % PURGE_EVERY == 0:
            self.purge()

    def claim(self, key: bytes, lease: float) -> bool:
        """True: this process asks keystone (no live claim by another).  False: wait."""
        env = self._open()
        now = time.time()
        with env.begin(write=True) as txn:
            held = txn.get(b"c" + key)
            if held is not None and float(held) > now:
                return False
            txn.put(b"c" + key, b"%.3f" % (now + lease))
            return True

    def release(self, key: bytes) -> None:
        with self._open().begin(write=True) as txn:
            txn.delete(b"c" + key)

    def purge(self, now: float | None = None) -> int:
        """Delete entries and claims past their time; the number deleted."""
        now = time.time() if now is None else now
        dead = []
        env = self._open()
        with env.begin() as txn:
            for k, v in txn.cursor():
                until = float(v) if k[:1] == b"c" else orjson.loads(v)["until"]
                if until <= now:
                    dead.append(k)
        if dead:
            with env.begin(write=True) as txn:
                for k in dead:
                    txn.delete(k)
        return len(dead)

    def clear(self) -> None:
        env = self._open()
        with env.begin(write=True) as txn:
            txn.drop(env.open_db(), delete=False)

    def close(self):
        if self.env is not None and self.pid == os.getpid():
            self.env.close()
        self.env = None
