"""Simulated power loss: at a crash point the journal keeps only what was fsynced (issue 18).

kill -9 never drops the page cache, so the kill -9 test (test_cellfeed_crash.py) passes even
with the journal's fsync removed.  Here the real ``cellfeed run`` (consumer, journal, applier
process, LMDB store, RabbitMQ) runs under tests/powerloss_driver.py, which records what each
fsync made durable; at a random point the whole process group is killed and ``power_cut`` cuts
every journal file back to its last fsynced size (and drops files whose directory entry was
never fsynced), as a power failure would.  Then, for **every** (server, version) whose delivery
was acknowledged to the broker, in this cycle or any before:

    its journal entry survived the cut, or the store's applied position covers its LSN.

The store is LMDB with synchronous commits; its own durability is not modelled here.
The mutation tests run the same cycles with the journal's fsync removed, and with each delivery
acknowledged before its journal entry is written, and require the check to catch a loss.

    CELLFEED_POWERLOSS_CYCLES=20 CELLFEED_POWERLOSS_SEED=123 python -m pytest -s \\
        tests/integration/test_cellfeed_powerloss.py
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from cellfeed import contract
from cellfeed.journal import SUFFIX, parse_records
from tests.cellfeed_support import (AMQP_URL, REPO, Names, Store, needs_broker, new_uuid,
                                         upsert, wait_for)

CYCLES = int(os.environ.get("CELLFEED_POWERLOSS_CYCLES", "4"))
SEED = int(os.environ.get("CELLFEED_POWERLOSS_SEED", str(time.time_ns() % 10**9)))
MUTATION_CYCLES = 8          # a mutation must be caught within this many power cuts

pytestmark = [needs_broker, pytest.mark.slow, pytest.mark.timeout(120 + CYCLES * 15)]


class Publisher(threading.Thread):
    """Publishes until stopped: creates, then patches with growing versions (every pair unique)."""

    def __init__(self, names: Names, rng: random.Random, versions: dict):
        super().__init__(daemon=True)
        self.names, self.rng, self.versions = names, rng, versions
        self.halt = threading.Event()

    def run(self):
        with self.names.publisher() as pub:
            while not self.halt.is_set():
                if not self.versions or self.rng.random() < 0.3:
                    uuid = new_uuid()
                    self.versions[uuid] = 1
                    pub.send(upsert(uuid, 1))
                    continue
                uuid = self.rng.choice(list(self.versions))
                self.versions[uuid] += 1
                version = self.versions[uuid]
                pub.send(contract.server_patch(uuid, version, {"name": "v%d" % version}))


class PowerLossRun:
    """Cycles of run -> power cut -> check, on one data dir, journal and queue."""

    def __init__(self, tmp_path, mutation: str, seed: int):
        self.data = str(tmp_path / "data")
        self.logs = str(tmp_path / "logs")
        self.journal_dir = os.path.join(self.data, "feed-journal")
        self.mutation, self.seed = mutation, seed
        self.rng = random.Random(seed)
        self.names = Names()
        self.versions: dict = {}
        self.lsns: dict[int, set] = {}         # LSN -> its pairs (as last written)
        self.acked: set = set()                # every acknowledged (server, version)
        self.applied: set = set()              # pairs whose LSN the store's position covered
        self._offsets = {"entries": 0, "acked": 0}
        self.cycle = 0

    def run_cycle(self) -> set:
        """One run and power cut; the acknowledged pairs now lost."""
        self.cycle += 1
        out = open(os.path.join(self.logs + ".out"), "ab")
        start = out.tell()
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.powerloss_driver", self.logs, self.mutation, "--",
             "run", "--amqp", AMQP_URL, "--data-dir", self.data, "--exchange",
             self.names.exchange, "--queue", self.names.queue, "--segment-bytes", "65536",
             "--batch-interval", "0.02", "--apply-interval", "0.3"],
            cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
        publisher = Publisher(self.names, self.rng, self.versions)
        publisher.start()
        try:
            wait_for(lambda: b"consuming" in self._output(start) or proc.poll() is not None,
                     60)
            assert proc.poll() is None, self._output(start)[-3000:]
            time.sleep(self.rng.uniform(0.3, 1.2))         # the crash point
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)         # the power goes, for every process
            except ProcessLookupError:
                pass
            proc.wait(10)
            out.close()
            publisher.halt.set()
            publisher.join(30)
        power_cut(self.journal_dir, os.path.join(self.logs, "synced"))
        return self.check()

    def _output(self, start: int = 0) -> bytes:
        """This run's output so far (from offset ``start`` of the shared file)."""
        with open(self.logs + ".out", "rb") as f:
            f.seek(start)
            return f.read()

    def _new_lines(self, name: str) -> list[str]:
        with open(os.path.join(self.logs, name), "rb") as f:
            f.seek(self._offsets[name])
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._offsets[name] += end
        return data[:end].decode().splitlines()

    def check(self) -> set:
        for line in self._new_lines("entries"):
            lsn, _, pairs = line.partition(" ")
            self.lsns[int(lsn)] = _parse_pairs(pairs)
        for line in self._new_lines("acked"):
            self.acked |= _parse_pairs(line)
        position = Store(self.data).position()
        for lsn, pairs in self.lsns.items():
            if lsn <= position:
                self.applied |= pairs
        return self.acked - self.applied - journal_pairs(self.journal_dir)

    def report(self, missing: set) -> str:
        shown = ", ".join("%s v%d" % p for p in sorted(missing)[:20])
        return ("seed %d, mutation %s, power cut %d: %d acknowledged (server, version) pairs "
                "lost (of %d acknowledged): %s" % (self.seed, self.mutation, self.cycle,
                                                   len(missing), len(self.acked), shown))


def _parse_pairs(text: str) -> set:
    out = set()
    for item in text.split():
        uuid, _, version = item.rpartition(":")
        out.add((uuid, int(version)))
    return out


def power_cut(journal_dir: str, synced_log: str) -> None:
    """Cut the journal's files back to what the recorded fsyncs made durable."""
    sizes, listing = {}, None
    with open(synced_log) as f:
        for line in f:
            kind, path, *rest = line.rstrip("\n").split("\t")
            if kind == "F":
                sizes[path] = int(rest[0])
            elif os.path.realpath(path) == os.path.realpath(journal_dir):
                listing = set(rest)
    for name in os.listdir(journal_dir):
        if not name.endswith(SUFFIX):
            continue
        path = os.path.join(journal_dir, name)
        if listing is not None and name not in listing:
            os.unlink(path)                 # its directory entry never reached the disk
        elif os.path.getsize(path) > sizes.get(path, 0):
            os.truncate(path, sizes.get(path, 0))


def journal_pairs(journal_dir: str) -> set:
    """Every (server, version) in the journal's records that survived the cut."""
    out = set()
    for name in os.listdir(journal_dir):
        if not name.endswith(SUFFIX):
            continue
        with open(os.path.join(journal_dir, name), "rb") as f:
            data = f.read()
        records, _end = parse_records(data, int(name[:-len(SUFFIX)]))
        for _lsn, payload in records:
            out |= {(u["id"], u["version"]) for u in contract.decode_journal(payload)}
    return out


@pytest.fixture
def run_factory(tmp_path):
    runs = []

    def make(mutation: str, seed: int = SEED) -> PowerLossRun:
        run = PowerLossRun(tmp_path / mutation, mutation, seed)
        os.makedirs(run.logs, exist_ok=True)
        runs.append(run)
        return run
    yield make
    for run in runs:
        run.names.cleanup()


def test_power_loss_keeps_every_acknowledged_version(run_factory):
    run = run_factory("none")
    for _ in range(CYCLES):
        missing = run.run_cycle()
        assert not missing, run.report(missing)
    assert run.acked, "seed %d: nothing was acknowledged" % SEED
    print("\nseed %d: %d power cuts, %d acknowledged pairs, all durable"
          % (SEED, CYCLES, len(run.acked)))


@pytest.mark.parametrize("mutation", ["no-fsync", "ack-first"])
def test_the_power_loss_check_catches_a_broken_journal(run_factory, mutation):
    """The same cycles with the durability contract broken must report a loss."""
    run = run_factory(mutation)
    for _ in range(MUTATION_CYCLES):
        missing = run.run_cycle()
        if missing:
            print("\ncaught as intended: " + run.report(missing))
            return
    pytest.fail("seed %d: %d power cuts with mutation %s and no loss found (%d pairs acked)"
                % (SEED, MUTATION_CYCLES, mutation, len(run.acked)))
