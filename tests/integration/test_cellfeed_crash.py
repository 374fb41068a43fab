"""kill -9 of the consumer at random points, many times over, against the real broker and store.

    CELLFEED_CRASH_CYCLES=150 python -m pytest tests/integration/test_cellfeed_crash.py   # the long run

Each cycle publishes a wave of updates (with publisher confirms) while a consumer process runs,
then kills it with SIGKILL after a random delay (during start-up, replay, consumption or a
commit); in a third of the cycles its applier process is killed first, and the consumer must
then stop acknowledging and exit with status 70 by itself.  A monitor reads the store the whole time.  Checked:

* no server's version ever goes down, and a deleted server never comes back (monitor);
* after a final clean run, the store holds exactly the newest published state of every server:
  every update the consumer acknowledged reached the store (creates are unique, so a lost one is
  a missing server);
* nothing is left in the queue, and the journal was trimmed.
"""
from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from cellfeed import contract
from tests.cellfeed_support import (FeedProcess, Names, Store, needs_broker, new_uuid,
                                         upsert, wait_for)

CYCLES = int(os.environ.get("CELLFEED_CRASH_CYCLES", "10"))
SEED = int(os.environ.get("CELLFEED_CRASH_SEED", str(int(time.time()))))

pytestmark = [needs_broker, pytest.mark.slow, pytest.mark.timeout(60 + CYCLES * 8)]


class Model:
    """What the store must end up holding: the newest version of every server."""

    def __init__(self, rng):
        self.rng = rng
        self.version: dict[str, int] = {}
        self.deleted: set[str] = set()
        self.sent: list[dict] = []        # every update sent, for stale re-sends

    def live(self):
        return [u for u in self.version if u not in self.deleted]

    def wave(self) -> list:
        """One cycle's messages: creates (batched), patches, deletes, stale and duplicates."""
        messages: list = []
        for _ in range(120):
            batch = [upsert(new_uuid(), 1) for _ in range(self.rng.randint(1, 6))]
            messages.append(batch if len(batch) > 1 else batch[0])
        live = self.live()
        for u in self.rng.sample(live, min(len(live), 150)):
            version = self.version[u] + 1
            messages.append(contract.server_patch(u, version, {"name": "v%d" % version,
                                                               "progress": version % 100}))
        live = self.live()
        for u in self.rng.sample(live, min(len(live), 30)):
            messages.append(contract.server_delete(u, self.version[u] + 1))
        for _ in range(min(len(self.sent), 30)):
            messages.append(self.rng.choice(self.sent))      # late copies of old updates
        for m in messages:
            self._account(m)
        return messages

    def _account(self, message):
        for update in (message if isinstance(message, list) else [message]):
            u, v = update["id"], update["version"]
            if v > self.version.get(u, 0):
                self.version[u] = v
                if update["kind"] == contract.SERVER_DELETE:
                    self.deleted.add(u)
            self.sent.append(update)


class Monitor(threading.Thread):
    """Reads the store continuously: versions only go up, tombstones stay."""

    def __init__(self, store):
        super().__init__(daemon=True)
        self.store = store
        self.seen: dict[str, int] = {}
        self.gone: set[str] = set()
        self.errors: list[str] = []
        self.reads = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            self.check(self.store.records())
            self.reads += 1
            time.sleep(0.02)

    def check(self, records):
        for u, rec in records.items():
            if rec["version"] < self.seen.get(u, 0):
                self.errors.append("%s went back from %d to %d" % (u, self.seen[u],
                                                                    rec["version"]))
            if u in self.gone and not rec.get("deleted"):
                self.errors.append("%s came back after its delete" % u)
            self.seen[u] = max(self.seen.get(u, 0), rec["version"])
            if rec.get("deleted"):
                self.gone.add(u)


def test_kill_9_at_random_points(tmp_path):
    rng = random.Random(SEED)
    names = Names()
    model, store = Model(rng), Store(tmp_path)
    monitor = Monitor(store)
    try:
        with names.publisher() as pub:
            first = [upsert(new_uuid(), 1) for _ in range(20)]
            model._account(first)
            pub.send(first)           # the publisher declared the queue: nothing is dropped
        monitor.start()
        replays = 0
        for _cycle in range(CYCLES):
            replays += run_cycle(tmp_path, names, model, rng)
        monitor.halt.set()
        monitor.join()
        final_run(tmp_path, names, model, store)
        monitor.check(store.records())
        assert not monitor.errors, "seed %d: %s" % (SEED, monitor.errors[:5])
        assert monitor.reads > CYCLES
        print("\nseed %d: %d kills, %d restarts replayed acknowledged entries, %d servers, "
              "%d store reads" % (SEED, CYCLES, replays, len(model.version), monitor.reads))
    finally:
        monitor.halt.set()
        names.cleanup()


def run_cycle(tmp_path, names, model, rng) -> int:
    wave = model.wave()
    proc = FeedProcess(tmp_path, names, *_small_segments()).start()

    def publish():
        with names.publisher() as pub:
            for message in wave:
                pub.send(message)
    publisher = threading.Thread(target=publish)
    publisher.start()
    time.sleep(rng.uniform(0.05, 1.2))
    alive = proc.proc.poll() is None
    applier = _children(proc.proc.pid) if alive else []
    if applier and rng.random() < 1 / 3:
        # The applier process alone: the consumer must stop acknowledging and exit non-zero.
        os.kill(applier[0], signal.SIGKILL)
        code = proc.proc.wait(20)
        assert code == 70, "seed %d: exit %s after its applier died:\n%s" % (
            SEED, code, proc.output())
    proc.kill()
    publisher.join()
    assert alive, "seed %d: consumer died by itself:\n%s" % (SEED, proc.output())
    return int("replayed" in proc.output())


def _children(pid) -> list[int]:
    """``cellfeed run``'s applier process (cellfeed.applyproc), once started."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def _small_segments():
    # Small journal segments so that rotation and trimming happen many times a run.
    return ("--segment-bytes", "65536", "--batch-interval", "0.003")


def final_run(tmp_path, names, model, store):
    proc = FeedProcess(tmp_path, names, *_small_segments()).start()
    proc.wait_consuming(timeout=60)
    wait_for(lambda: names.queue_depth() == 0, timeout=60)

    def matches():
        recs = store.records()
        return all(u in recs and recs[u]["version"] == v for u, v in model.version.items())
    try:
        wait_for(matches, timeout=60)
    finally:
        code = proc.stop()
    assert code == 0, proc.output()
    recs = store.records()
    assert len(recs) == len(model.version)
    for u, v in model.version.items():
        assert recs[u]["version"] == v, (SEED, u)
        assert bool(recs[u].get("deleted")) == (u in model.deleted), (SEED, u)
    segments = [n for n in os.listdir(os.path.join(str(tmp_path), "feed-journal"))
                if n.endswith(".seg")]
    assert len(segments) <= 2, segments
