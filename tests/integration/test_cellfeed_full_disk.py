"""cellfeed on a full disk (issue 18): it says so, the master backs off its restarts, the
status file reads "down", and once there is space again nothing acknowledged is missing.

Real everything: a small tmpfs holds the data dir, the real ``fastnova serve --amqp`` runs the
feed, RabbitMQ carries the updates.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from cellfeed import status
from cellfeed.applier import Applier, describe_store_error
from fastnova.serve.restarts import RestartPolicy
from tests.server import REPO, Server
from tests.cellfeed_support import Store, needs_broker, new_uuid, upsert, wait_for
from tests.commands_support import AMQP_URL, Names
from tests.tmpfs_support import fill, needs_mount, small_tmpfs


def test_the_status_file_reads_back_and_goes_stale(tmp_path):
    assert status.read(str(tmp_path)).state == "absent"
    writer = status.StatusWriter(str(tmp_path / "new"))
    writer.write("running", journal_lsn=12, applied_lsn=9, lag_seconds=0.5, consuming=True)
    writer.write("running", journal_lsn=12, applied_lsn=12, lag_seconds=0.0)   # shorter text
    st = status.read(str(tmp_path / "new"))
    assert (st.state, st.journal_depth, st.lag_seconds, st.consuming) == ("running", 0, 0.0, True)
    assert st.up() and not st.up(now=st.updated_at + status.STALE_SECONDS + 1)
    writer.write("failed", reason="store: no space left on /x/store (0 bytes free): …")
    assert not status.read(str(tmp_path / "new")).up()
    assert os.path.getsize(status.path(str(tmp_path / "new"))) == status.SIZE
    writer.close()


def test_restart_policy_doubles_while_a_child_keeps_failing_and_starts_over_after_a_good_run():
    policy = RestartPolicy(initial=1.0, cap=30.0, stable=60.0)
    delays = [policy.exited("cellfeed", ran=0.5) for _ in range(8)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert policy.exited("forwarder", ran=0.1) == 1.0      # per child
    assert policy.exited("cellfeed", ran=61.0) == 1.0      # it had run fine: start over
    assert policy.exited("cellfeed", ran=1.0) == 2.0


@needs_mount
def test_a_full_disk_under_the_store_is_named(tmp_path):
    from fastnova.store.writer import StoreWriter
    with small_tmpfs("4m", parent=str(tmp_path)) as data_dir:
        writer = StoreWriter.open(data_dir)
        applier = Applier(writer)
        fill(data_dir)
        big = {"k%d" % i: "v" * 200 for i in range(100)}
        with pytest.raises(Exception) as failure:
            for lsn in range(1, 200):
                applier.apply([(lsn, [upsert(new_uuid(), 1, metadata=big)])])
        message = describe_store_error(failure.value, data_dir)
        assert message.startswith("store: no space left on %s/store (" % data_dir), message
        writer.close()


def _spawn(tmp: str, names: Names) -> Server:
    cmd = [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:0",
           "--workers", "1", "--data-dir", os.path.join(tmp, "data"), "--demo", "0",
           "--feed-nice", "0", *names.serve_args()]
    log = open(os.path.join(tmp, "serve.log"), "wb")
    proc = subprocess.Popen(cmd, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return Server(proc, tmp, 1)


def _publish(names: Names, updates):
    from cellfeed.publish import Publisher
    with Publisher(AMQP_URL, names.updates) as pub:
        pub.declare_queue(names.feed_queue)
        for update in updates:
            pub.send(update)


@needs_broker
@needs_mount
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_full_disk_backs_off_reports_down_and_loses_nothing():
    names = Names()
    tmp = tempfile.mkdtemp(prefix="fastnova-fulldisk-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    srv = None
    try:
        with small_tmpfs("24m", parent=tmp) as mnt:
            subprocess.run(["mount", "--bind", mnt, data], check=True)
            try:
                srv = _spawn(tmp, names)
                store = Store(data)
                srv.wait_for(lambda: "cellfeed: consuming" in srv.log(), 60, "the feed")
                srv.wait_for(lambda: status.read(data).up(), 10, "the feed's status: up")
                before = [upsert(new_uuid(), 1) for _ in range(50)]
                _publish(names, before)
                wait_for(lambda: len(store.records()) == 50, 30)
                srv.wait_for(lambda: _caught_up(status.read(data)), 10, "the status: caught up")

                filler = fill(data)
                big = {"k%d" % i: "v" * 200 for i in range(100)}
                during = [upsert(new_uuid(), 1, metadata=big) for _ in range(300)]
                _publish(names, during)
                # The feed fails, the master restarts it with growing waits.
                srv.wait_for(lambda: "No space left" in status.read(data).reason, 60,
                             "the status file to say why the feed is down")
                srv.wait_for(lambda: len(_restarts(srv.log())) >= 3, 90, "three restarts")
                delays = _restarts(srv.log())
                assert delays[:3] == [1.0, 2.0, 4.0], srv.log()[-4000:]
                assert not status.read(data).up(), status.read(data)
                log = srv.log()
                assert ("store: no space left on %s/store" % data in log
                        or re.search(r"journal write/fsync failed in %s/feed-journal: No space "
                                     r"left on device" % re.escape(data), log)), log[-4000:]
                assert "cellfeed: cannot connect" not in log

                os.unlink(filler)
                published = {u["id"] for u in before + during}
                srv.wait_for(lambda: published <= set(store.records()), 90,
                             "every published update in the store")
                srv.wait_for(lambda: status.read(data).up(), 30, "the feed's status: up")
                wait_for(lambda: _depth(names) == 0, 30)
                assert status.read(data).journal_depth == 0 or status.read(data).up()
            finally:
                if srv is not None:
                    srv.stop(30)
                subprocess.run(["umount", "-l", data], check=False)
    finally:
        names.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def _caught_up(st: status.FeedStatus) -> bool:
    return (st.up() and st.consuming and st.journal_lsn >= 50 and st.journal_depth == 0
            and st.lag_seconds == 0 and st.pid > 0)


def _restarts(log: str) -> list[float]:
    return [float(d) for d in re.findall(r"cellfeed \d+ exited with \d+ after [\d.]+s; "
                                         r"restarting in ([\d.]+)s", log)]


def _depth(names: Names) -> int:
    import pika
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    try:
        return conn.channel().queue_declare(names.feed_queue, passive=True).method.message_count
    finally:
        conn.close()
