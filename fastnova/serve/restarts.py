"""When the master starts a supervised child (cellfeed, the forwarder) again after it exits.

A child that had run for a while is restarted after ``initial`` seconds.  One that keeps exiting
soon after it starts (a full disk, a broken store, a bad URL) waits twice as long each time, up
to ``cap``: a feed that fails at once used to be restarted every 1.5 s, replaying its journal
each time (43 restarts in 63 s on a full disk).  Like the workers' boot-failure pause, the wait
never blocks the master: it keeps reaping, beating and serving signals meanwhile.
"""
from __future__ import annotations

INITIAL = 1.0       # seconds before the first restart
CAP = 30.0          # the longest wait between restarts
STABLE = 60.0       # a child that ran this long is healthy: its next failure starts over


class RestartPolicy:
    def __init__(self, initial: float = INITIAL, cap: float = CAP, stable: float = STABLE):
        self.initial, self.cap, self.stable = initial, cap, stable
        self.failures: dict[str, int] = {}     # child name -> quick exits in a row

    def exited(self, name: str, ran: float) -> float:
        """The child ``name`` exited after ``ran`` seconds: the delay before its restart."""
        quick = 0 if ran >= self.stable else self.failures.get(name, 0)
        self.failures[name] = quick + 1
        return min(self.cap, self.initial * (2 ** quick))
