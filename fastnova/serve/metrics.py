"""Per-worker counters in shared memory, summed when Prometheus scrapes.

The master maps one anonymous shared region before it forks anything, so every worker and the
metrics process see the same pages.  Each live worker owns one *slot* (given by the master, freed
when it exits: a worker that replaces it carries the counts on, so counters never go back).  A
worker adds to its own slot's plain 64-bit words, with no lock and no system call (the compiled
recorder, fastnova/_ext/_observe.pyx, costs tens of nanoseconds a request); the metrics process
(``--metrics-bind``, a port of its own: nova has no /metrics and tenants must not see it) reads
every slot and sums at scrape time.  Master-side module: no lmdb, uvloop, pika or psycopg2 here.

Slot layout (uint64 words):
  requests[ROUTES][STATUSES]   answered requests by route kind and status
  buckets[ROUTES][BUCKETS+1]   latency histogram per route (cumulated at scrape time)
  sum_us[ROUTES]               latency sum, microseconds
  named[NAMED]                 named counters (token cache hits, ...): ``count(name)``
The header (slot -1) holds the master's counters (worker restarts).
"""
from __future__ import annotations

import mmap

ROUTES = 128                   # fastnova.api.router kinds are < 100; HEALTH is 100
HEALTH_ROUTE = 100
STATUSES = (200, 201, 202, 204, 300, 302, 304, 400, 401, 403, 404, 405, 406, 408, 409, 410,
            411, 413, 414, 415, 422, 429, 431, 500, 501, 502, 503, 504)
OTHER_STATUS = len(STATUSES)   # anything else
NSTATUS = 32
BOUNDS_US = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
             1000000, 2500000, 5000000, 10000000)
BUCKETS = len(BOUNDS_US)       # + 1 for +Inf
NAMED = ("token_cache_hits", "token_cache_misses", "access_log_lines", "access_log_dropped")
N_NAMED = 16

REQ_OFF = 0
HIST_OFF = REQ_OFF + ROUTES * NSTATUS
SUM_OFF = HIST_OFF + ROUTES * (BUCKETS + 1)
NAMED_OFF = SUM_OFF + ROUTES
SLOT_WORDS = NAMED_OFF + N_NAMED
HEADER_WORDS = 64
H_RESTARTS, H_SLOTS_FULL = 0, 1
SLOTS = 64

STATUS_INDEX = {code: i for i, code in enumerate(STATUSES)}


class Area:
    """The shared region: a header and SLOTS worker slots."""

    def __init__(self, slots: int = SLOTS):
        self.slots = slots
        self.map = mmap.mmap(-1, 8 * (HEADER_WORDS + slots * SLOT_WORDS),
                             flags=mmap.MAP_SHARED | mmap.MAP_ANONYMOUS)
        self.words = memoryview(self.map).cast("Q")
        self.free = list(range(slots))

    # -- master side ------------------------------------------------------------------------

    def take(self) -> int | None:
        """A slot for a worker about to start (None when all are taken: it counts nowhere)."""
        if not self.free:
            self.words[H_SLOTS_FULL] += 1
            return None
        return self.free.pop(0)

    def give_back(self, slot: int | None):
        if slot is not None and slot not in self.free:
            self.free.append(slot)

    def restarted(self):
        self.words[H_RESTARTS] += 1

    # -- worker side ------------------------------------------------------------------------

    def slot(self, index: int) -> memoryview:
        start = HEADER_WORDS + index * SLOT_WORDS
        return self.words[start:start + SLOT_WORDS]

    # -- scrape side ------------------------------------------------------------------------

    def totals(self) -> list[int]:
        """Every slot's words summed (a worker may add while this reads: a scrape sees each
        word as it was at some instant, which is what a counter scrape needs)."""
        out = [0] * SLOT_WORDS
        for index in range(self.slots):
            words = self.slot(index)
            for i, value in enumerate(words):
                if value:
                    out[i] += value
        return out

    def header(self, word: int) -> int:
        return self.words[word]


def status_index(status: int) -> int:
    return STATUS_INDEX.get(status, OTHER_STATUS)


def bucket_index(micros: int) -> int:
    for i, bound in enumerate(BOUNDS_US):
        if micros <= bound:
            return i
    return BUCKETS


# A worker's own slot, for counters bumped outside the protocol (``count``).
_SLOT: memoryview | None = None


def attach(area: Area | None, index: int | None) -> memoryview | None:
    """In a worker after fork: this process counts into slot ``index``."""
    global _SLOT
    _SLOT = None if area is None or index is None else area.slot(index)
    return _SLOT


def count(name: str, n: int = 1) -> None:
    """Add n to a named counter of this worker (e.g. ``count("token_cache_hits")``): one list
    lookup and one add, for hooks like the identity cache."""
    if _SLOT is not None:
        _SLOT[NAMED_OFF + NAMED.index(name)] += n
