"""cellfeed macro benchmark: real RabbitMQ, real LMDB, the real ``cellfeed run`` process.

    python bench/bench_feed.py [--updates 60000] [--lag-seconds 10] [--amqp URL]

1. throughput: the queue is filled first, then a consumer started; updates/s from "consuming"
   to the store's applied position reaching the end, with durability on (journal fdatasync per
   group, then ack, then LMDB commit with sync).  Run with 1 update per message and with batched
   messages (the contract's JSON arrays), side by side.  Also the CPU time per update of each of
   ``cellfeed run``'s two processes (the consumer, the applier child): on a 2-core host each
   has a core, so 1 / the larger of the two is the rate the feed can reach, a figure that other
   load on the machine moves much less than the wall-clock rate.
2. the same pipeline's stages alone, in this process (where the ceiling is): journal group commit
   of 1,000 entries, and StoreWriter batches.
3. lag: patches published at a fixed rate (default 1,000/s, one per message) while a watcher
   polls the store; publish -> visible in a fresh read transaction, p50/p99/max.  The server
   side (the feed's two processes, and RabbitMQ with --pin-broker) runs on one core, the load
   generator (this process: publisher and watcher) on the other, as every load measurement
   here is pinned.  (Until the fourth session the watcher and publisher shared the feed's core
   during this run, which measured the three of them queueing for one core.)
4. store read latency (begin + get + abort of a random server) in a separate process, idle and
   while the feed applies updates at that rate (the HTTP figure needs the API server), in a
   run of its own: the reader (the probe) has a core of its own, and the load (the feed's two
   processes, this process's publisher, RabbitMQ with --pin-broker) is pinned to the other.
   Otherwise RabbitMQ is not ours to pin and runs where the kernel puts it.  The probe also
   reports its minor page faults per read (pages the writer placed anew that the reader maps
   on first touch).
"""
from __future__ import annotations

import argparse
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from cellfeed import contract  # noqa: E402
from cellfeed.journal import Journal  # noqa: E402
from tests.cellfeed_support import (FeedProcess, Names, Store, server,  # noqa: E402
                                         wait_for)


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def workload(count, rng):
    """20% creates, 80% partial updates of servers created earlier (each a new version)."""
    made, version, out = [], {}, []
    for i in range(count):
        if not made or i % 5 == 0:
            u = "%08x-0000-4000-8000-%012x" % (rng.getrandbits(32), i)
            made.append(u)
            version[u] = 1
            out.append(contract.server_upsert(server(u, 1)))
        else:
            u = rng.choice(made)
            version[u] += 1
            out.append(contract.server_patch(u, version[u], {"vm_state": "active",
                                                             "progress": version[u] % 100}))
    return out


def prefill(names, updates, per_message):
    with names.publisher(confirm=False) as pub:
        for start in range(0, len(updates), per_message):
            chunk = updates[start:start + per_message]
            pub.send(chunk if per_message > 1 else chunk[0])
    wait_for(lambda: names.queue_depth() >= len(updates) // per_message, timeout=120)


def throughput(args, per_message):
    names, data = Names(), tempfile.mkdtemp(prefix="bench-feed-")
    try:
        updates = workload(args.updates, random.Random(1))
        prefill(names, updates, per_message)
        messages = (len(updates) + per_message - 1) // per_message
        proc = FeedProcess(data, names, "--log-level", "INFO", *args.feed_arg).start()
        store = Store(data)
        # Timed from the first applied batch, so process start-up is not counted.
        first = wait_for(lambda: store.position(), timeout=60, interval=0.002)
        t0 = time.perf_counter()
        pids = [proc.proc.pid] + children(proc.proc.pid)
        cpu0 = [cpu_seconds(pid) for pid in pids]
        wait_for(lambda: store.position() >= messages, timeout=600, interval=0.01)
        elapsed = time.perf_counter() - t0
        cpu = [cpu_seconds(pid) - c for pid, c in zip(pids, cpu0)]
        assert proc.stop() == 0
        found = re.search(r"(\d+) updates changed the store, (\d+) ignored, in (\d+) store "
                          r"transactions", proc.output())
        per_txn = (int(found[1]) + int(found[2])) / max(1, int(found[3])) if found else 0.0
        done = (messages - first) * per_message
        return done / elapsed, messages, per_txn, [c / done * 1e6 for c in cpu]
    finally:
        names.cleanup()
        shutil.rmtree(data, ignore_errors=True)


def children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(c) for c in f.read().split()]


def cpu_seconds(pid):
    """User + system CPU time of a process so far (a figure other load cannot inflate much)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stage_journal(count=100_000, group=1000):
    d = tempfile.mkdtemp(prefix="bench-journal-")
    try:
        j = Journal(d)
        body = contract.encode(contract.server_patch("x" * 36, 2, {"vm_state": "active"}))
        body = body + b" " * max(0, 500 - len(body))
        t0 = time.perf_counter()
        for i in range(count):
            j.append(body)
            if i % group == group - 1:
                j.commit()
        j.commit()
        return count / (time.perf_counter() - t0)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def stage_apply(count=40_000, batch=10_000):
    """The applier as ``cellfeed run`` configures it (render cache, GC thresholds), with the
    transaction size its thread reaches under load."""
    import gc
    from cellfeed.applier import Applier
    from cellfeed.service import GC_THRESHOLDS, Options
    from fastnova.store.writer import StoreWriter
    d = tempfile.mkdtemp(prefix="bench-apply-")
    thresholds = gc.get_threshold()
    try:
        ups = [contract.decode(contract.encode(u)) for u in workload(count, random.Random(2))]
        gc.set_threshold(*GC_THRESHOLDS)
        writer = StoreWriter.open(d, render_cache=Options.render_cache)
        applier = Applier(writer)
        t0 = time.perf_counter()
        for start in range(0, count, batch):
            applier.apply([(start + i + 1, u) for i, u in enumerate(ups[start:start + batch])])
        rate = count / (time.perf_counter() - t0)
        writer.close()
        return rate
    finally:
        gc.set_threshold(*thresholds)
        shutil.rmtree(d, ignore_errors=True)


class FedStore:
    """A fresh store of 1,000 servers with ``cellfeed run`` consuming into it (the feed and its
    applier pinned to ``feed_core``); the setup shared by the lag and the read measurements."""

    def __init__(self, args, feed_core):
        self.args, self.feed_core = args, feed_core
        self.servers = ["%08x-1111-4000-8000-%012x" % (i, i) for i in range(1000)]

    def __enter__(self):
        self.names, self.data = Names(), tempfile.mkdtemp(prefix="bench-lag-")
        with self.names.publisher() as pub:
            pub.send([contract.server_upsert(server(u, 1)) for u in self.servers])
        self.proc = FeedProcess(self.data, self.names, "--log-level", "WARNING",
                                *self.args.feed_arg).start()
        store = Store(self.data)
        wait_for(lambda: len(store.records()) == len(self.servers), timeout=60)
        pin(self.proc.proc.pid, self.feed_core)      # and its applier process (started by now)
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                assert self.proc.stop() == 0
            elif self.proc.proc.poll() is None:
                self.proc.kill()
        finally:
            self.names.cleanup()
            shutil.rmtree(self.data, ignore_errors=True)


def lag(args):
    """Publish patches at a fixed rate; measure publish -> visible to a new read txn.

    As the rules for load measurements ask, the server side (``cellfeed run``'s two processes
    and, with --pin-broker, RabbitMQ) runs on one core and the load generator (this process: the
    publisher and the watcher) on the other."""
    from fastnova.store.reader import StoreReader
    affinity = os.sched_getaffinity(0)
    pin(0, READER_CORE)
    try:
        with FedStore(args, LOAD_CORE) as fed, BrokerPinned(args.pin_broker):
            reader = StoreReader.open(fed.data)
            pending, lags, done = {}, [], threading.Event()
            watcher = threading.Thread(target=watch, args=(reader, pending, lags, done))
            watcher.start()
            publish_paced(fed.names, fed.servers, args.rate, args.lag_seconds, pending)
            wait_for(lambda: not pending, timeout=30)
            done.set()
            watcher.join()
            reader.close()
        return lags
    finally:
        os.sched_setaffinity(0, affinity)


def reads_under_feed(args):
    """A store read probe on a core of its own, idle and then while the feed applies patches at
    the rate; the feed, the publisher (this process) and the disk's interrupts share the other
    core, as a reader on an API host and the feed would each have their own.

    In ``args.rounds`` rounds, each an idle phase then a fed one (bench/rounds.py: a few seconds
    of host noise otherwise decide the ratio; one run of one phase each gave 0.52, 0.97, 0.69
    and 1.20 on four occasions).  Returns [(idle p50, p99, faults), (fed ...)] per round."""
    affinity = os.sched_getaffinity(0)
    pin(0, LOAD_CORE)
    seconds = args.probe_seconds / args.rounds
    version = {}
    found = []
    try:
        with FedStore(args, LOAD_CORE) as fed, BrokerPinned(args.pin_broker):
            for _ in range(args.rounds):
                idle = read_probe(fed.data, seconds)
                probe = start_probe(fed.data, seconds)
                publish_paced(fed.names, fed.servers, args.rate, seconds, {}, version)
                found.append((idle, finish_probe(probe)))
        return found
    finally:
        os.sched_setaffinity(0, affinity)


def publish_paced(names, servers, rate, seconds, pending, version=None):
    """Patches at ``rate`` for ``seconds``; ``version`` (server -> last version sent) carries
    on across calls, so a later call's patches are newer, not stale."""
    version = {} if version is None else version
    for u in servers:
        version.setdefault(u, 1)
    total = int(rate * seconds)
    # Without confirms: a confirm round trip per message (~1.1 ms here) would cap the rate at
    # ~900/s; lag is measured from the publish call either way.
    with names.publisher(confirm=False) as pub:
        start = time.perf_counter()
        for n in range(total):
            due = start + n / rate
            now = time.perf_counter()
            if due > now:
                time.sleep(due - now)
            u = servers[n % len(servers)]
            version[u] += 1
            pending[(u, version[u])] = time.perf_counter()
            pub.send(contract.server_patch(u, version[u], {"progress": version[u] % 100}))


def watch(reader, pending, lags, done):
    """Every 0.5 ms, which pending patches a new read transaction sees.  One queue, one journal
    and batches applied in order make patches visible in publish order, so a pass checks them
    oldest first and stops at the first one not yet visible: a few record reads a pass.  (It
    used to decode every patch in flight each pass, ~50,000 records/s at 1,000 updates/s and
    25 ms of lag, on the core the feed it measures runs on.)  Were the order ever broken, a
    patch would be counted late, never early."""
    while not done.is_set():
        with reader.begin() as txn:
            seen = time.perf_counter()
            for key in list(pending):
                rec = reader.record(txn, key[0].encode())
                if rec is None or rec["version"] < key[1]:
                    break
                lags.append(seen - pending.pop(key))
        time.sleep(0.0005)


PROBE = """
import os, random, resource, sys, time
sys.path.insert(0, %r)
from fastnova.store.reader import StoreReader
if int(sys.argv[3]) >= 0:
    os.sched_setaffinity(0, {int(sys.argv[3])})
r = StoreReader.open(sys.argv[1]); ids = [k for k, _ in r.begin().cursor(db=r.servers)]
out, end = [], time.perf_counter() + float(sys.argv[2])
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
while time.perf_counter() < end:
    key = random.choice(ids); t = time.perf_counter()
    with r.begin() as txn: txn.get(key, db=r.servers)
    out.append(time.perf_counter() - t)
    time.sleep(0.001)  # paced (~1k reads/s): a busy loop would take a whole core from the feed
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
out.sort(); print(out[len(out) // 2], out[int(len(out) * 0.99)], faults / len(out))
""" % REPO

def io_core(cores) -> int:
    """The core that takes the block device's interrupts (most of them so far), or -1.

    Each durable commit ends in a disk interrupt; on this VM they all go to one core
    (virtio1-req.0 -> cpu 1), and a reader on that core paid for every fsync of the feed."""
    counts = {}
    try:
        with open("/proc/interrupts") as f:
            cpus = [int(c[3:]) for c in f.readline().split()]
            for line in f:
                if any(dev in line for dev in ("-req", "nvme", "ahci", "ata_piix", "blk")):
                    for cpu, n in zip(cpus, line.split()[1:1 + len(cpus)]):
                        counts[cpu] = counts.get(cpu, 0) + int(n)
    except (OSError, ValueError):
        return -1
    busiest = max((c for c in counts if c in cores), key=counts.get, default=-1)
    return busiest if counts.get(busiest) else -1


def choose_cores():
    """(reader core, load core): the load gets the disk's interrupt core, the reader another."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return -1, -1
    load = io_core(cores)
    load = cores[0] if load < 0 else load
    return next(c for c in cores if c != load), load


# Cores: the reader (probe) on one, the load this benchmark starts on another (-1: unpinned).
READER_CORE, LOAD_CORE = choose_cores()
TWO_CORES = READER_CORE >= 0


def pin(pid, core):
    """Pin every thread of a process and of its child processes (``cellfeed run``'s applier);
    affinity is per thread, and new threads and processes inherit it."""
    if core < 0:
        return
    pid = pid or os.getpid()
    for tid in os.listdir("/proc/%d/task" % pid):
        os.sched_setaffinity(int(tid), {core})
        if pid != os.getpid():
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                for child in f.read().split():
                    pin(int(child), core)


def broker_threads():
    """Thread ids of the local RabbitMQ (beam.smp run by the rabbitmq user), if any."""
    out = subprocess.run(["pgrep", "-u", "rabbitmq", "beam.smp"], capture_output=True, text=True)
    return [int(t) for pid in out.stdout.split()
            for t in os.listdir("/proc/%s/task" % pid)]


class BrokerPinned:
    """--pin-broker: move every RabbitMQ thread to the load core while the reads are measured,
    and put each back on its own cores afterwards (its schedulers are bound one per core)."""

    def __init__(self, enabled):
        self.saved = {}
        self.enabled = enabled and LOAD_CORE >= 0

    def __enter__(self):
        if self.enabled:
            for tid in broker_threads():
                try:
                    self.saved[tid] = os.sched_getaffinity(tid)
                    os.sched_setaffinity(tid, {LOAD_CORE})
                except OSError:       # a thread that ended, or no permission
                    pass
        return self

    def __exit__(self, *exc):
        for tid, cores in self.saved.items():
            try:
                os.sched_setaffinity(tid, cores)
            except OSError:
                pass


def start_probe(data, seconds):
    return subprocess.Popen([sys.executable, "-c", PROBE, data, str(seconds), str(READER_CORE)],
                            stdout=subprocess.PIPE, text=True)


def finish_probe(proc):
    p50, p99, faults = map(float, proc.communicate()[0].split())
    return p50, p99, faults


def read_probe(data, seconds):
    return finish_probe(start_probe(data, seconds))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=60_000)
    parser.add_argument("--per-message", type=int, default=50)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--lag-seconds", type=float, default=10.0)
    parser.add_argument("--probe-seconds", type=float, default=20.0,
                        help="seconds of reads per state (idle, fed), split over the rounds")
    parser.add_argument("--rounds", type=int, default=5,
                        help="idle/fed rounds of the read measurement (default 5)")
    parser.add_argument("--feed-arg", action="append", default=[],
                        help="an extra argument for cellfeed run (repeat for more)")
    parser.add_argument("--pin-broker", action="store_true",
                        help="also move the local RabbitMQ's threads to the load core while "
                             "reads are measured (restored after; affects anything else using "
                             "the broker meanwhile)")
    parser.add_argument("--parts", default="stages,throughput,lag,reads",
                        help="which measurements to run (default: all four)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    print("machine: %s, %d cpus, python %s" % (platform.platform(), os.cpu_count(),
                                               platform.python_version()))
    if "stages" in parts:
        print("stage  journal group commit (1000 x 500 B per fdatasync): %8.0f entries/s"
              % stage_journal())
        print("stage  StoreWriter apply (20%% creates, 80%% patches, 10,000 a txn): %8.0f "
              "updates/s" % stage_apply())
    for per in (1, args.per_message) if "throughput" in parts else ():
        rate, messages, per_txn, cpu = throughput(args, per)
        print("feed   %d updates in %d messages (%d/message), durable:   %8.0f updates/s  "
              "(%.0f updates per store transaction; CPU per update: consumer %.1f us, "
              "applier %.1f us)" % (args.updates, messages, per, rate, per_txn, cpu[0],
                                    sum(cpu[1:])))
    if TWO_CORES:
        print("pinning: the feed's two processes%s on core %d (where the disk's interrupts "
              "go); lag: the publisher and the watcher on core %d; reads: the probe alone on "
              "core %d, the publisher on core %d" % (
                  " and RabbitMQ" if args.pin_broker else "", LOAD_CORE, READER_CORE,
                  READER_CORE, LOAD_CORE))
    if "lag" in parts:
        print_lag(args)
    if "reads" in parts:
        print_reads(args)


def print_lag(args):
    lags = lag(args)
    ms = [x * 1000 for x in lags]
    print("lag    publish -> visible at %.0f updates/s for %.0fs: p50 %.1f ms  p99 %.1f ms  "
          "max %.1f ms  (n=%d)" % (args.rate, args.lag_seconds, statistics.median(ms),
                                   pct(ms, 0.99), max(ms), len(ms)))


def print_reads(args):
    rounds = reads_under_feed(args)
    ratios = [busy[1] / idle[1] for idle, busy in rounds]
    print("read   store get p99 per round, idle / under feed (us): %s"
          % ", ".join("%.1f/%.1f" % (i[1] * 1e6, b[1] * 1e6) for i, b in rounds))
    print("read   store get p50/p99 idle %.1f/%.1f us, under feed %.1f/%.1f us (medians of %d "
          "rounds); p99 ratio per round %s, median %.2f; minor faults/read idle %.2f, under "
          "feed %.2f" % (
              statistics.median(i[0] for i, _ in rounds) * 1e6,
              statistics.median(i[1] for i, _ in rounds) * 1e6,
              statistics.median(b[0] for _, b in rounds) * 1e6,
              statistics.median(b[1] for _, b in rounds) * 1e6, len(rounds),
              ", ".join("%.2f" % r for r in ratios), statistics.median(ratios),
              statistics.median(i[2] for i, _ in rounds),
              statistics.median(b[2] for _, b in rounds)))


if __name__ == "__main__":
    main()
