"""cellfeed end to end against the real RabbitMQ and a real LMDB store (no mocks).

Each test has its own exchange and queue; the consumer is a separate ``cellfeed run`` process.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import textwrap
import threading
import time

import pytest

from cellfeed import contract
from cellfeed.journal import Journal
from tests.cellfeed_support import (AMQP_URL, FeedProcess, ForwardProxy, Names, Store,
                                         needs_broker, new_uuid, upsert, wait_for)

pytestmark = needs_broker


@pytest.fixture
def names():
    n = Names()
    yield n
    n.cleanup()


@pytest.fixture
def feed(tmp_path, names):
    started = []

    def start(*extra, url=AMQP_URL):
        proc = FeedProcess(tmp_path, names, *extra, url=url).start()
        started.append(proc)
        proc.wait_consuming()
        return proc
    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.kill()


def versions(store):
    return {k: v["version"] for k, v in store.records().items()}


def test_publish_is_applied_to_the_store(tmp_path, names, feed):
    a, b = new_uuid(), new_uuid()
    with names.publisher() as pub:
        pub.send(upsert(a, 1))
        pub.send(upsert(b, 1, name="bravo"))
        pub.send(contract.server_patch(a, 2, {"vm_state": "stopped", "power_state": 4,
                                              "metadata": {"k": "v"}}))
        pub.send(contract.flavor_upsert({"id": "42", "name": "m1.answer", "vcpus": 2,
                                         "ram": 2048, "disk": 20}, version=1))
    proc = feed()
    store = Store(tmp_path)
    wait_for(lambda: versions(store) == {a: 2, b: 1})
    rec = store.records()[a]
    assert (rec["vm_state"], rec["power_state"], rec["metadata"]) == ("stopped", 4, {"k": "v"})
    assert store.records()[b]["name"] == "bravo"
    wait_for(lambda: store.flavor("42") is not None)
    assert proc.stop() == 0
    assert store.position() == 4
    assert names.queue_depth() == 0          # everything was acknowledged


def test_batch_message_and_live_updates(tmp_path, names, feed):
    feed()
    ids = [new_uuid() for _ in range(50)]
    with names.publisher() as pub:
        pub.send([upsert(u, 1) for u in ids])
        for u in ids[:10]:
            pub.send(contract.server_patch(u, 2, {"task_state": "rebooting"}))
    store = Store(tmp_path)
    wait_for(lambda: len(store.records()) == 50 and
             sum(v == 2 for v in versions(store).values()) == 10)
    assert all(r["task_state"] == "rebooting" for r in store.records().values()
               if r["version"] == 2)


def test_duplicates_reordering_and_stale_versions(tmp_path, names, feed):
    u = new_uuid()
    with names.publisher() as pub:
        pub.send(upsert(u, 3, name="three"))
        pub.send(upsert(u, 1, name="one"))           # late: older than the store
        pub.send(upsert(u, 3, name="three-again"))   # duplicate version: ignored
        pub.send(contract.server_patch(u, 2, {"name": "two"}))   # stale partial
        pub.send(contract.server_patch(u, 5, {"name": "five"}))
        pub.send(upsert(u, 4, name="four"))          # reordered behind 5
    feed()
    store = Store(tmp_path)
    wait_for(lambda: store.position() == 6)
    rec = store.records()[u]
    assert (rec["version"], rec["name"]) == (5, "five")


def test_delete_leaves_a_tombstone(tmp_path, names, feed):
    live, gone, never = new_uuid(), new_uuid(), new_uuid()
    with names.publisher() as pub:
        pub.send(upsert(live, 1))
        pub.send(upsert(gone, 1))
        pub.send(contract.server_delete(gone, 2, deleted_at="2024-05-02T00:00:00Z"))
        pub.send(upsert(gone, 1))                                  # late create
        pub.send(contract.server_patch(gone, 2, {"name": "zombie"}))  # late partial
        pub.send(contract.server_delete(never, 7))                # delete before any create
        pub.send(upsert(never, 3))                                # its late create
    feed()
    store = Store(tmp_path)
    wait_for(lambda: store.position() == 7)
    recs = store.records()
    assert recs[live]["deleted"] is False
    assert recs[gone]["deleted"] is True and recs[gone]["version"] == 2
    assert recs[gone]["deleted_at"] == "2024-05-02T00:00:00.000000"
    assert recs[gone]["name"] != "zombie"
    assert recs[never]["deleted"] is True and recs[never]["version"] == 7


def test_flavor_versions_and_delete(tmp_path, names, feed):
    flavor = {"id": "7", "name": "m1.seven", "vcpus": 1, "ram": 256, "disk": 1}
    with names.publisher() as pub:
        pub.send(contract.flavor_upsert(dict(flavor, name="v2"), 2))
        pub.send(contract.flavor_upsert(dict(flavor, name="v1"), 1))   # stale
        pub.send(contract.flavor_delete("7", 3))
        pub.send(contract.flavor_upsert(dict(flavor, name="late"), 2))  # cannot resurrect
        pub.send(contract.flavor_upsert({"id": "8", "name": "m1.eight", "vcpus": 1,
                                         "ram": 128, "disk": 1}, 1))
    feed()
    store = Store(tmp_path)
    wait_for(lambda: store.position() == 5)
    assert store.flavor("7") is None
    assert store.flavor("8")["name"] == "m1.eight"


POISON = [
    b"\xff\xfe not json",
    b'{"contract": 1, "kind": "server.upsert"}',
    b'{"contract": 99, "kind": "server.delete", "id": "x", "version": 1}',
    b'{"contract": 1, "kind": "server.explode", "id": "x", "version": 1}',
    b'{"contract": 1, "kind": "server.delete", "id": "x", "version": true}',
    b'{"contract": 1, "kind": "server.patch", "id": "x", "version": 2, "changes": {"seq": 1}}',
    b'[]',
]


def test_poison_goes_to_the_dead_letter_queue(tmp_path, names, feed):
    good = [new_uuid() for _ in range(3)]
    bad_in_batch = [upsert(new_uuid(), 1), {"contract": 1, "kind": "server.upsert",
                                            "id": new_uuid(), "version": 1, "server": {}}]
    with names.publisher() as pub:
        pub.send(upsert(good[0], 1))
        for body in POISON:
            pub.send_raw(body)
        pub.send(bad_in_batch)                 # one bad update spoils its whole message
        pub.send(upsert(good[1], 1))
        pub.send(upsert(good[2], 1, metadata=["not", "a", "dict"]))
    proc = feed()
    store = Store(tmp_path)
    wait_for(lambda: set(store.records()) == set(good[:2]))
    wait_for(lambda: names.queue_depth(names.queue + ".dead") == len(POISON) + 2)
    dead = names.get_all(names.queue + ".dead")
    assert [body for _, body in dead[:len(POISON)]] == POISON
    assert dead[0][0].headers["x-death"][0]["reason"] == "rejected"
    assert proc.stop() == 0
    log = proc.output()
    assert "body is not JSON" in log and "unknown kind 'server.explode'" in log
    assert "metadata must be an object" in log
    assert names.queue_depth() == 0


def test_replay_after_restart(tmp_path, names, feed):
    """Entries acknowledged (journaled) but not applied before a crash are applied at start."""
    u1, u2 = new_uuid(), new_uuid()
    journal = Journal(os.path.join(str(tmp_path), "feed-journal"))
    journal.append(contract.encode(upsert(u1, 1)))
    journal.append(contract.encode([upsert(u2, 1), contract.server_patch(u1, 2, {"name": "x"})]))
    journal.commit()
    journal.close()
    proc = feed()
    store = Store(tmp_path)
    assert versions(store) == {u1: 2, u2: 1}      # replayed before consuming started
    assert store.position() == 2
    assert "replayed 2 journal entries" in proc.output()
    assert proc.stop() == 0
    # A restart continues with the next LSN and does not replay again.
    with names.publisher() as pub:
        pub.send(contract.server_patch(u2, 2, {"name": "y"}))
    proc = feed()
    wait_for(lambda: store.position() == 3)
    assert versions(store) == {u1: 2, u2: 2}
    assert "replayed" not in proc.output()
    assert proc.stop() == 0


def test_connection_cut_mid_stream(tmp_path, names, feed):
    proxy = ForwardProxy()
    try:
        feed("--batch-interval", "0.002", url=proxy.url())
        ids = [new_uuid() for _ in range(1000)]

        def publish_all():
            with names.publisher() as pub:
                for u in ids:
                    pub.send(upsert(u, 1))
        publisher = threading.Thread(target=publish_all)
        publisher.start()
        cuts = 0
        # At least three cuts whatever the publishing speed (the queue's backlog keeps
        # deliveries in flight after the publisher is done), more while it still publishes.
        while cuts < 3 or (publisher.is_alive() and cuts < 5):
            time.sleep(0.15)
            proxy.cut()                      # while deliveries are in flight
            cuts += 1
            wait_for(lambda: proxy.accepted == cuts + 1, timeout=30)
        publisher.join()
        store = Store(tmp_path)
        wait_for(lambda: set(ids) <= set(store.records()), timeout=60)
        assert cuts >= 3
        wait_for(lambda: names.queue_depth() == 0, timeout=30)
    finally:
        proxy.close()


# Fails the journal's fsync from the Nth group on: the test stands between the journal and the
# kernel (the os.fdatasync boundary), the consumer and broker are real.
FAILING_FSYNC = textwrap.dedent("""
    import errno, os, sys, logging
    calls = [0]
    real = os.fdatasync
    def fdatasync(fd):
        if os.path.basename(os.readlink("/proc/self/fd/%d" % fd)).endswith(".seg"):
            calls[0] += 1
            if calls[0] > int(os.environ["FAIL_AFTER"]):
                raise OSError(errno.EIO, "Input/output error")
        return real(fd)
    os.fdatasync = fdatasync
    from cellfeed import cli   # imported after the patch: Journal's sync default is bound now
    sys.exit(cli.main(sys.argv[1:]))
""")


def test_failed_fsync_stops_acking_and_exits_nonzero(tmp_path, names, feed):
    import subprocess
    ids = [new_uuid() for _ in range(400)]
    with names.publisher() as pub:
        for chunk in range(0, 400, 20):
            pub.send([upsert(u, 1) for u in ids[chunk:chunk + 20]])
    script = tmp_path / "failing.py"
    script.write_text(FAILING_FSYNC)
    env = dict(os.environ, FAIL_AFTER="4", PYTHONPATH=os.getcwd())
    done = subprocess.run(
        [sys.executable, str(script), "run", "--amqp", AMQP_URL, "--data-dir", str(tmp_path),
         "--exchange", names.exchange, "--queue", names.queue, "--batch-size", "2",
         "--prefetch", "4"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 74, done.stderr
    assert "FATAL" in done.stderr and "fsync failed" in done.stderr
    # Only what was fsynced was acknowledged: the rest is back in the queue.
    left = names.queue_depth()
    assert 0 < left < 20
    # A healthy restart replays the journal and consumes the rest: nothing is lost.
    feed()
    store = Store(tmp_path)
    wait_for(lambda: set(ids) <= set(store.records()), timeout=30)


# Slows the journal's fsync down (50 ms) and logs, for each, the thread it ran on and how many
# journal entries existed when it started; the consumer and broker are real.
SLOW_FSYNC = textwrap.dedent("""
    import os, sys, threading, time
    real = os.fdatasync
    def fdatasync(fd):
        if os.path.basename(os.readlink("/proc/self/fd/%d" % fd)).endswith(".seg"):
            time.sleep(0.05)
            with open(os.environ["SYNC_LOG"], "a") as log:
                log.write("%s %d\\n" % (threading.current_thread() is threading.main_thread(),
                                          os.fstat(fd).st_size))
        return real(fd)
    os.fdatasync = fdatasync
    from cellfeed import cli
    sys.exit(cli.main(sys.argv[1:]))
""")


def _slow_feed(tmp_path, names):
    script = tmp_path / "slow.py"
    script.write_text(SLOW_FSYNC)
    log = tmp_path / "syncs.log"
    proc = FeedProcess(tmp_path / "data", names)
    proc.args[1:1] = [str(script)]
    proc.args.remove("-m")
    proc.args.remove("cellfeed.cli")
    os.environ["SYNC_LOG"] = str(log)
    try:
        proc.start()
    finally:
        del os.environ["SYNC_LOG"]
    proc.wait_consuming()
    return proc, log


def _syncs(log):
    if not log.exists():
        return []
    return [line.split() for line in log.read_text().splitlines()]


def test_group_commit_is_pipelined_and_sizes_itself_to_the_load(tmp_path, names):
    """A heavy feed: the deliveries that arrive during one (slow) fsync are written as the next
    group, so 400 messages take a handful of fsyncs, all off the I/O loop's thread, and every
    one is acknowledged.  A light feed: a lone delivery is its own group (the batch interval
    lets company join it, none comes)."""
    (tmp_path / "data").mkdir()
    proc, log = _slow_feed(tmp_path, names)
    store = Store(tmp_path / "data")
    ids = [new_uuid() for _ in range(400)]
    with names.publisher(confirm=False) as pub:
        for u in ids:
            pub.send(upsert(u, 1))
    wait_for(lambda: len(store.records()) == 400, timeout=60)
    heavy = [s for s in _syncs(log) if int(s[1]) > 64]   # past the segment's head
    assert heavy and all(main == "False" for main, _ in heavy)
    assert len(heavy) <= 400 // 8, len(heavy)
    # Light: one message at a time, each waited for; each needs a group (an fsync) of its own.
    before = len(_syncs(log))
    for n, u in enumerate(ids[:5]):
        with names.publisher() as pub:
            pub.send(contract.server_patch(u, 2, {"name": "light-%d" % n}))
        wait_for(lambda: store.records()[u]["version"] == 2, timeout=10)
    assert len(_syncs(log)) - before == 5
    assert proc.stop() == 0
    assert names.queue_depth() == 0                    # everything was acknowledged


def _children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(c) for c in f.read().split()]


def test_a_dead_applier_process_stops_the_feed(tmp_path, names, feed):
    """cellfeed run applies in a child process: if it dies, nothing more is acknowledged and
    the command exits non-zero (and a kill -9 of the command takes the child with it)."""
    proc = feed()
    store = Store(tmp_path)
    u = new_uuid()
    with names.publisher() as pub:
        pub.send(upsert(u, 1))
    wait_for(lambda: versions(store) == {u: 1})
    (child,) = _children(proc.proc.pid)
    os.kill(child, signal.SIGKILL)
    assert proc.proc.wait(10) == 70
    assert "the applier process exited with status -9" in proc.output()
    with names.publisher() as pub:            # nobody acknowledges it: it stays queued
        pub.send(contract.server_patch(u, 2, {"name": "late"}))
    # Confirmed, and the consumer has exited: nothing can take it off the queue.
    wait_for(lambda: names.queue_depth() == 1)
    proc = feed()                              # a restart applies it
    wait_for(lambda: versions(store) == {u: 2})
    (child,) = _children(proc.proc.pid)
    proc.kill()
    wait_for(lambda: not os.path.exists("/proc/%d" % child) or
             open("/proc/%d/stat" % child).read().split()[2] == "Z", timeout=10)


def _light_feed(tmp_path, names, *extra):
    """600 single-update messages paced ~1 ms apart (a light, steady feed); the number of store
    transactions the feed reports at its stop, and the seconds from the first patch sent to the
    last one seen in the store (every commit of a patch falls within them)."""
    data = tmp_path / ("data%d" % len(extra))
    data.mkdir()
    proc = FeedProcess(data, names, *extra).start()
    proc.wait_consuming()
    store = Store(data)
    ids = [new_uuid() for _ in range(20)]
    with names.publisher(confirm=False) as pub:
        for u in ids:
            pub.send(upsert(u, 1))
        wait_for(lambda: len(store.records()) == 20, timeout=20)
        start = time.monotonic()
        for n in range(600):
            pub.send(contract.server_patch(ids[n % 20], 2 + n // 20, {"progress": n % 100}))
            time.sleep(max(0.0, start + (n + 1) / 1000 - time.monotonic()))
    wait_for(lambda: store.records()[ids[-1]]["version"] == 2 + 599 // 20, timeout=60)
    elapsed = time.monotonic() - start
    assert proc.stop() == 0
    found = re.search(r"in (\d+) store transactions", proc.output())
    return int(found[1]), elapsed


def test_a_light_feed_commits_the_store_at_most_every_apply_interval(tmp_path, names):
    """By default store commits are >= 10 ms apart (each is two fsyncs that cost CPU a reader
    may share): 600 updates over ~0.6 s take ~60 transactions, not one per group.

    Bounded by the time the patches really took to apply, so a starved feed (which batches
    more) cannot fail it; the 20 creates before them add at most 20 transactions."""
    spaced, elapsed = _light_feed(tmp_path, names)
    assert spaced <= elapsed / 0.01 + 1 + 20, (spaced, elapsed)
    # Unspaced (both intervals 0) the same feed applies too; how many more transactions it
    # takes depends on the CPU it gets, so it is not compared.
    unspaced, _ = _light_feed(tmp_path, names, "--apply-interval", "0", "--batch-interval", "0")
    assert unspaced >= 1
