"""Record versions for data that comes from nova, which has no per-server sequence numbers.

A version is ``micros(updated_at) * SLOTS + tiebreak``: the time nova last saved the instances
row orders everything, and the low bits order what shares one updated_at.

* The importer and reconcile use tiebreak 0: a database row is the state *as of* its
  updated_at, so any notification carrying the same updated_at (sent after that save) wins.
* A notification uses 1 + a log-scale bucket of (emitted - updated_at): nova sends some
  notifications without saving the instances row (tags, some metadata paths), so two of them can
  carry the same updated_at; the later emission then still wins.  Log buckets (32 per doubling,
  ~2 % resolution) cover up to ~24 days after the save in the 10 bits available.

Why not the emission time alone: a notification emitted late (a slow nova-api, a retry) can carry
an older state than one emitted before it; ordering by updated_at keeps that stale state out.
What neither can guarantee is in docs/import.md ("What ordering by updated_at cannot guarantee").
"""
from __future__ import annotations

import math

from fastnova.record import canonical_time, time_micros

SLOTS = 1024
_MAX_BUCKET = SLOTS - 2
_PER_DOUBLING = 32


def db_version(updated_at, created_at=None) -> int:
    """Version of a record read from nova's database (tiebreak 0)."""
    base = updated_at or created_at
    return max(1, time_micros(canonical_time(base)) * SLOTS) if base else 1


def notification_version(updated_at, emitted_at) -> int:
    """Version of a notification: its payload's updated_at, ties broken by emission time."""
    base = time_micros(canonical_time(updated_at or emitted_at))
    delta_ms = (time_micros(canonical_time(emitted_at)) - base) / 1000.0 if emitted_at else 0.0
    if delta_ms <= 0:
        bucket = 0
    else:
        bucket = min(_MAX_BUCKET, int(math.log2(1.0 + delta_ms) * _PER_DOUBLING))
    return base * SLOTS + 1 + bucket
