"""The applier thread's batches: sized in updates (not messages), commits spaced on request."""
import threading
import time

from cellfeed.applier import ApplierThread


class Recorder:
    def __init__(self, gate=None):
        self.batches = []
        self.gate = gate
        self.entered = threading.Event()

    def apply(self, entries):
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(60)
        self.batches.append([lsn for lsn, _updates in entries])


def group(lsn, updates):
    return [(lsn, [{}] * updates)]


def test_batches_are_capped_in_updates_and_never_split_a_group():
    gate = threading.Event()
    rec = Recorder(gate)
    thread = ApplierThread(rec, on_fatal=None, max_batch=100)
    thread.start()
    thread.submit(group(1, 1))          # applied alone (held at the gate) ...
    assert rec.entered.wait(60)
    for lsn in range(2, 7):             # ... while these queue: 60 + 60 + 60 + 1 + 1 updates
        thread.submit(group(lsn, 60 if lsn < 5 else 1))
    gate.set()
    assert thread.stop(timeout=60)
    assert rec.batches == [[1], [2, 3], [4, 5, 6]]


def test_min_interval_merges_groups_that_arrive_within_it():
    rec = Recorder()
    # An interval far longer than the test: the groups merge however slowly they are submitted
    # (stop() ends the wait).
    thread = ApplierThread(rec, on_fatal=None, min_interval=600)
    thread.start()
    thread.submit(group(1, 1))
    deadline = time.monotonic() + 60
    while not rec.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    for lsn in (2, 3, 4):               # within the interval of the first commit
        thread.submit(group(lsn, 1))
    assert thread.stop(timeout=60)
    assert rec.batches == [[1], [2, 3, 4]]
