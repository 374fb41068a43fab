"""The applier thread's batches: sized in updates (not messages), commits spaced on request."""
import threading
import time

from cellfeed.applier import ApplierThread


class Recorder:
    def __init__(self, gate=None):
        self.batches = []
        self.gate = gate

    def apply(self, entries):
        if self.gate is not None:
            self.gate.wait(5)
        self.batches.append([lsn for lsn, _updates in entries])


def group(lsn, updates):
    return [(lsn, [{}] * updates)]


def test_batches_are_capped_in_updates_and_never_split_a_group():
    gate = threading.Event()
    rec = Recorder(gate)
    thread = ApplierThread(rec, on_fatal=None, max_batch=100)
    thread.start()
    thread.submit(group(1, 1))          # applied alone (held at the gate) ...
    time.sleep(0.05)
    for lsn in range(2, 7):             # ... while these queue: 60 + 60 + 60 + 1 + 1 updates
        thread.submit(group(lsn, 60 if lsn < 5 else 1))
    gate.set()
    assert thread.stop(timeout=5)
    assert rec.batches == [[1], [2, 3], [4, 5, 6]]


def test_min_interval_merges_groups_that_arrive_within_it():
    rec = Recorder()
    thread = ApplierThread(rec, on_fatal=None, min_interval=0.3)
    thread.start()
    thread.submit(group(1, 1))
    deadline = time.monotonic() + 5
    while not rec.batches and time.monotonic() < deadline:
        time.sleep(0.005)
    for lsn in (2, 3, 4):               # well within 0.3 s of the first commit
        thread.submit(group(lsn, 1))
        time.sleep(0.01)
    assert thread.stop(timeout=5)
    assert rec.batches == [[1], [2, 3, 4]]
