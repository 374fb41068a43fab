"""The outbox and its forwarder: the broker away (commands succeed until the bound, then 503),
the broker back (the outbox drains), a forwarder killed -9 (nothing lost)."""
from __future__ import annotations

import os
import signal
import socket
import time

import pika

from tests.commands_support import AMQP_URL, Names, needs_broker, outbox_depth, serve
from tests.server import children_of

pytestmark = needs_broker


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_broker_down_commands_succeed_until_the_bound_then_503():
    dead = "amqp://guest:guest@127.0.0.1:%d/%%2F" % _free_port()
    with serve("--amqp", dead, "--outbox-bound", "3") as srv:
        for i in range(3):
            assert srv.create(name="q%d" % i)[0] == 202
        status, _, body = srv.create(name="over")
        assert status == 503
        assert body["serviceUnavailable"]["code"] == 503
        assert outbox_depth(srv) == 3
        assert srv.call("GET", "/v2.1/servers")[0] == 200       # reads are unaffected


def test_forwarder_delivers_after_the_broker_returns_and_survives_kill_9():
    names = Names()
    try:
        with serve(*names.serve_args()) as srv:
            forwarder = _child(srv, "forwarder")
            os.kill(forwarder, signal.SIGSTOP)           # the broker "away" for the forwarder
            for i in range(5):
                assert srv.create(name="f%d" % i)[0] == 202
            assert outbox_depth(srv) == 5
            os.kill(forwarder, signal.SIGKILL)           # killed while holding nothing
            deadline = time.monotonic() + 20
            while outbox_depth(srv):                           # the restarted forwarder drains it
                assert time.monotonic() < deadline, srv.log()[-3000:]
                time.sleep(0.1)
            conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
            ch = conn.channel()
            casts = []
            while True:
                method, _props, body = ch.basic_get(names.cast_queue, auto_ack=True)
                if method is None:
                    break
                import json
                casts.extend(json.loads(body))
            conn.close()
            assert sorted(c["instance"]["name"] for c in casts) == ["f%d" % i for i in range(5)]
            assert {c["cast"] for c in casts} == {"build_and_run_instance"}
    finally:
        names.cleanup()


def _child(srv, name):
    import re
    found = re.findall(r"%s (\d+) started" % name, srv.log())
    assert found, srv.log()
    pid = int(found[-1])
    assert pid in children_of(srv.proc.pid)
    return pid


def _nice(pid):
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[16])     # field 19: nice


def test_cellfeed_runs_below_the_workers_priority_unless_told_otherwise():
    names = Names()
    try:
        for extra, above in (((), 10), (("--feed-nice", "0"), 0), (("--feed-nice", "3"), 3)):
            with serve(*names.serve_args(), *extra) as srv:
                feed = _child(srv, "cellfeed")
                # The master logs the child's pid as soon as it forks; the child lowers its
                # priority first thing and logs "consuming" once it reached the broker.
                deadline = time.monotonic() + 30
                while "cellfeed: consuming" not in srv.log():
                    assert time.monotonic() < deadline, srv.log()
                    time.sleep(0.05)
                workers = [p for p in children_of(srv.proc.pid)
                           if p not in (feed, _child(srv, "forwarder"))]
                assert workers
                base = _nice(srv.proc.pid)
                assert all(_nice(w) == base for w in workers)
                assert _nice(feed) == min(19, base + above), extra
    finally:
        names.cleanup()
