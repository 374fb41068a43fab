"""The feed's status, for /healthcheck and metrics: one small file in the data dir.

``cellfeed run`` rewrites ``<data-dir>/feed-status.json`` about once a second (the consumer's
housekeeping) and once more when it stops or fails.  Anyone may read it with ``read(data_dir)``;
nothing else is shared between the feed and the API workers.

    {"state": "running", "pid": 1234, "updated_at": 1733456789.12, "reason": "",
     "journal_lsn": 812, "applied_lsn": 805, "lag_seconds": 0.004, "consuming": true}

state: ``starting`` (opening the store and journal, replaying), ``running`` (connected or
reconnecting to the broker: see ``consuming``), ``stopped`` (SIGTERM), ``failed`` (a fatal
error; ``reason`` says which, e.g. "store: no space left on /var/lib/fastnova/store").
lag_seconds: how long the oldest journaled (acknowledged) entry that the store has not applied
yet has waited; 0 when the store has everything the feed acknowledged.

The feed is **up** when the state is ``starting`` or ``running`` and the file was rewritten in the
last ``STALE_SECONDS``: a feed killed or wedged stops rewriting it, and the master restarts a
failed one with backoff, so a full disk reads as down the whole time.

The file is preallocated (one page) and rewritten in place, never replaced: on a full disk a
rename-into-place would need a new block, which is exactly what is missing, and then the last
word would be a stale "running".
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

FILENAME = "feed-status.json"
SIZE = 4096
STALE_SECONDS = 5.0
UP_STATES = ("starting", "running")


@dataclass
class FeedStatus:
    state: str = "absent"           # absent: no feed ever wrote here
    pid: int = 0
    updated_at: float = 0.0
    reason: str = ""
    journal_lsn: int = 0
    applied_lsn: int = 0
    lag_seconds: float = 0.0
    consuming: bool = False
    extra: dict = field(default_factory=dict)

    def age(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.updated_at

    def up(self, now: float | None = None, stale_after: float = STALE_SECONDS) -> bool:
        """The feed runs (or starts) and said so recently."""
        return self.state in UP_STATES and self.age(now) <= stale_after

    @property
    def journal_depth(self) -> int:
        """Journaled (acknowledged) entries the store has not applied yet."""
        return max(0, self.journal_lsn - self.applied_lsn)


def path(data_dir: str) -> str:
    return os.path.join(data_dir, FILENAME)


def read(data_dir: str) -> FeedStatus:
    """The feed's last word; ``state == "absent"`` when there is none (or it cannot be read)."""
    for _ in range(3):             # a read can meet a rewrite half done: read again
        try:
            with open(path(data_dir), "rb") as f:
                raw = f.read(SIZE).rstrip(b"\0 \n")
        except OSError:
            return FeedStatus()
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        known = {k: data.pop(k) for k in list(data) if k in FeedStatus.__dataclass_fields__}
        known.pop("extra", None)
        return FeedStatus(**known, extra=data)
    return FeedStatus(state="unreadable")


class StatusWriter:
    """The feed's side: the file stays open; every write overwrites the same page."""

    def __init__(self, data_dir: str):
        self._path = path(data_dir)
        self._fd = -1
        self.last: dict = {}
        try:
            os.makedirs(data_dir, exist_ok=True)      # cellfeed run on a new data dir
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            if os.fstat(self._fd).st_size < SIZE:
                os.posix_fallocate(self._fd, 0, SIZE)
        except OSError:
            # A full disk at start: without the page the file cannot say much, and the
            # stale or absent file reads as down, which is true.
            self.close()

    def write(self, state: str, **values) -> None:
        doc = dict(self.last, state=state, pid=os.getpid(), updated_at=time.time(), **values)
        self.last = doc
        if self._fd < 0:
            return
        raw = json.dumps(doc, sort_keys=True).encode()[:SIZE - 1]
        try:
            os.pwrite(self._fd, raw.ljust(SIZE, b" "), 0)
        except OSError:
            pass                   # advisory: the feed's own work must not fail on it

    def close(self):
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
