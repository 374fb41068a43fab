"""The pre-fork master and its workers, as operators drive them: real forked server on loopback,
real signals, real sockets."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import lmdb
import pytest

from tests.server import running_server, wait_accepted, wait_until
from tests.functional.test_http_protocol import read_responses

GET = b"GET /v2.1/servers?limit=1 HTTP/1.1\r\nHost: x\r\nX-Auth-Token: admin:admin\r\n\r\n"


def connect(srv):
    return socket.create_connection((srv.host, srv.port), timeout=5)


def open_files(pid):
    """Paths a process has open or mapped."""
    paths = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            paths.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            pass
    with open("/proc/%d/maps" % pid) as f:
        paths.update(line.split()[-1] for line in f if "/" in line)
    return paths


def test_master_forks_workers_that_open_the_store_after_fork():
    with running_server(workers=2) as srv:
        pids = srv.worker_pids()
        assert len(pids) == 2
        assert srv.get("/v2.1/servers?limit=1")[0] == 200
        assert not [p for p in open_files(srv.pid) if p.endswith(".mdb")]
        for pid in pids:
            assert any(p.endswith("data.mdb") for p in open_files(pid))
            assert any("uvloop" in p for p in open_files(pid))


def edge_triggered_sockets(pid):
    """How many descriptors the process watches edge-triggered (EPOLLET, bit 31), from the
    fdinfo of its epoll sets."""
    count = 0
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                for line in f:
                    if line.startswith("tfd:"):
                        events = int(line.split("events:")[1].split()[0], 16)
                        count += bool(events & (1 << 31))
        except OSError:
            pass
    return count


@pytest.mark.parametrize("edge", ["1", "0"])
def test_keepalive_pipelining_http10_and_close(edge):
    with running_server(workers=1, env={"FASTNOVA_EDGE_IO": edge}) as srv, \
            connect(srv) as sock:
        sock.sendall(GET * 5)
        assert read_responses(sock, 5) == ([200] * 5, False)
        sock.sendall(GET)                       # the same connection, again
        assert read_responses(sock, 1) == ([200], False)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert read_responses(sock, 1) == ([200], True)
        with connect(srv) as old:
            old.sendall(b"GET / HTTP/1.0\r\n\r\n")
            assert read_responses(old, 1) == ([200], True)
        with connect(srv) as old:
            old.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" * 2)
            assert read_responses(old, 2) == ([200, 200], False)
            # The one connection still open is in the worker's edge-triggered set, or in
            # uvloop's level-triggered one when FASTNOVA_EDGE_IO=0.
            (pid,) = srv.worker_pids()
            assert edge_triggered_sockets(pid) == (1 if edge == "1" else 0)


@pytest.mark.parametrize("workers,conns", [(2, 64), (4, 128)])
def test_connections_spread_evenly(workers, conns):
    """SO_REUSEPORT slots: each worker gets its share of connections (binomial; the bound is
    more than 4 standard deviations under the mean)."""
    with running_server(workers=workers) as srv:
        socks = [connect(srv) for _ in range(conns)]
        for sock in socks:
            sock.sendall(GET)
        for sock in socks:
            assert read_responses(sock, 1, closed_wait=0)[0] == [200]
            sock.close()
        assert srv.stop() == 0
        counts = srv.request_counts()
    assert len(counts) == workers
    per_worker = sorted(c for c, _ in counts.values())
    mean = conns / workers
    sd = (conns * (1 / workers) * (1 - 1 / workers)) ** 0.5
    assert per_worker[0] >= mean - 4.2 * sd, per_worker
    assert sum(per_worker) == conns


def test_term_drains_in_flight_and_exits_0():
    """TERM: an idle keep-alive connection is closed, a request half-sent when TERM arrives is
    still answered (with Connection: close), and the master exits 0."""
    with running_server(workers=1) as srv:
        idle, busy = connect(srv), connect(srv)
        idle.sendall(GET)
        assert read_responses(idle, 1)[0] == [200]
        busy.sendall(GET[:20])
        wait_accepted(srv.port)                 # both connections accepted by the worker
        srv.signal(signal.SIGTERM)
        assert read_responses(idle, 1, timeout=3) == ([], True)
        busy.sendall(GET[20:])
        reply = busy.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in reply
        assert read_responses(busy, 1, timeout=3)[1] is True
        assert srv.wait_exit(10) == 0
        with pytest.raises(OSError):
            connect(srv)
        idle.close()
        busy.close()


def test_term_answers_a_connection_whose_first_request_is_still_on_its_way():
    """A client connects, then writes: a drain between the two must not reset it (this is what
    a reload under load hits).  The connection is answered once, with Connection: close."""
    with running_server(workers=1) as srv:
        fresh = connect(srv)
        wait_accepted(srv.port)                 # accepted by the worker, nothing sent yet
        srv.signal(signal.SIGTERM)
        srv.wait_for(lambda: "draining" in srv.log(), what="the worker to drain")
        fresh.sendall(GET)
        statuses, closed = read_responses(fresh, 1, timeout=3)
        assert statuses == [200] and closed is True
        assert srv.wait_exit(10) == 0
        fresh.close()


def test_term_closes_a_silent_new_connection_after_the_drain_grace():
    """...but one that never sends holds the drain only for Limits.drain_grace (5 s), not for
    the header timeout (30 s)."""
    from fastnova.api.protocol import DEFAULT_LIMITS
    with running_server(workers=1) as srv:
        silent = connect(srv)
        wait_accepted(srv.port)
        started = time.monotonic()
        srv.signal(signal.SIGTERM)
        assert srv.wait_exit(DEFAULT_LIMITS.drain_grace + 5) == 0
        waited = time.monotonic() - started
        assert DEFAULT_LIMITS.drain_grace - 1.0 <= waited < DEFAULT_LIMITS.header_timeout
        assert silent.recv(10) == b""           # closed, not reset
        silent.close()


def test_int_and_quit_stop_fast():
    for sig in (signal.SIGINT, signal.SIGQUIT):
        with running_server(workers=2) as srv:
            pids = srv.worker_pids()
            hung = connect(srv)
            hung.sendall(GET[:10])             # would hold a graceful stop; a fast one ignores it
            wait_accepted(srv.port)
            srv.signal(sig)
            assert srv.wait_exit(30) == 0
            # fast: no worker drained (a drain would wait for the hung connection)
            assert "draining" not in srv.log()
            assert not any(os.path.exists("/proc/%d" % p) for p in pids)
            hung.close()


def test_hup_reloads_without_failed_requests():
    with running_server(workers=2) as srv:
        old = srv.worker_pids()
        results, stop = [], threading.Event()

        def load():
            while not stop.is_set():
                try:
                    results.append(srv.get("/v2.1/servers?limit=1", timeout=5)[0])
                except OSError as exc:
                    results.append(repr(exc))
                time.sleep(0.005)
        thread = threading.Thread(target=load)
        thread.start()
        try:
            wait_until(lambda: len(results) >= 10, what="load before the reload")
            srv.signal(signal.SIGHUP)
            new = srv.wait_workers(2, exclude=old, timeout=10)
            after = len(results)
            wait_until(lambda: len(results) >= after + 10, what="load after the reload")
        finally:
            stop.set()
            thread.join(10)
        assert not new & old
        assert len(results) > 20
        assert set(results) == {200}, [r for r in results if r != 200][:5]


def test_ttin_ttou_change_the_worker_count():
    with running_server(workers=2) as srv:
        first = srv.worker_pids()
        srv.signal(signal.SIGTTIN)
        three = srv.wait_workers(3)
        assert first < three
        srv.signal(signal.SIGTTOU)
        srv.wait_workers(2)            # one at a time: two pending TTOUs would merge into one
        srv.signal(signal.SIGTTOU)
        one = srv.wait_workers(1)
        assert one < three
        for _ in range(10):                     # the closed slots take no connections
            assert srv.get("/v2.1/servers?limit=1", timeout=3)[0] == 200


def readers_pids(data_dir):
    from fastnova.store.writer import store_path
    env = lmdb.open(store_path(data_dir), readonly=True, create=False, max_dbs=32)
    try:
        lines = env.readers().splitlines()[1:]
        return {int(line.split()[0]) for line in lines if line.strip()}
    finally:
        env.close()


_HOLD_READER = """
import sys, lmdb
env = lmdb.open(sys.argv[1], readonly=True, create=False, max_dbs=32)
txn = env.begin()
print("holding", flush=True)
sys.stdin.read()
"""


def test_killed_worker_is_replaced_and_a_dead_readers_slot_reclaimed():
    """A process killed inside a read transaction leaves its LMDB reader slot taken; the next
    worker to start clears it (reader_check).  A worker's own reads are too short to be caught
    in the act, so a helper process plays the reader that dies.  Two workers: with one, the
    replacement would be the environment's only user and LMDB would reset the whole table."""
    from fastnova.store.writer import store_path
    with running_server(workers=2) as srv:
        pid = min(srv.worker_pids())
        holder = subprocess.Popen([sys.executable, "-c", _HOLD_READER,
                                   store_path(srv.data_dir)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert holder.stdout.readline() == b"holding\n"
        assert holder.pid in readers_pids(srv.data_dir)
        holder.kill()
        holder.wait(5)
        os.kill(pid, signal.SIGKILL)
        srv.wait_workers(2, exclude={pid})
        assert srv.get("/v2.1/flavors")[0] == 200
        assert holder.pid not in readers_pids(srv.data_dir)
        assert "cleared 1 stale LMDB reader slots" in srv.log()


def test_stopped_worker_is_killed_after_timeout_and_replaced():
    with running_server(workers=1, extra_args=("--timeout", "1")) as srv:
        (pid,) = srv.worker_pids()
        os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        srv.wait_workers(1, exclude={pid}, timeout=30)
        assert time.monotonic() - started >= 1.0
        assert "worker %d missed its heartbeat" % pid in srv.log()
        assert srv.get("/v2.1/servers?limit=1")[0] == 200


def test_worker_failing_at_boot_makes_the_master_exit_3():
    """The store vanishes under a running server; the next worker cannot open it, nor the ones
    after it: the master gives up with gunicorn's boot-error exit code and says why."""
    from fastnova.store.writer import store_path
    with running_server(workers=1) as srv:
        (pid,) = srv.worker_pids()
        path = store_path(srv.data_dir)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
        os.kill(pid, signal.SIGKILL)
        assert srv.wait_exit(15) == 3
        log = srv.log()
        assert "failed to boot 5 times in a row" in log
        assert not srv.worker_pids()


def test_workers_of_a_killed_master_drain_and_exit():
    with running_server(workers=2) as srv:
        pids = srv.worker_pids()
        srv.proc.kill()
        srv.proc.wait(5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % p) for p in pids):
            time.sleep(0.05)
        assert not any(os.path.exists("/proc/%d" % p) for p in pids)
        assert "master %d is gone" % srv.pid in srv.log()


@pytest.mark.parametrize("edge", ["1", "0"])
def test_hostile_connections_leave_no_descriptor_behind(edge):
    """Thousands of connections that send half a request, a pipelined burst, garbage, or a
    request then a half-close, each then closed or reset, while a keep-alive client keeps
    asking: the worker stays the same process, answers, and holds as many descriptors after as
    before (each transport closed once, whichever way its peer left)."""
    import random
    import struct
    rnd = random.Random(7)
    with running_server(workers=1, env={"FASTNOVA_EDGE_IO": edge}) as srv:
        (pid,) = srv.worker_pids()
        with connect(srv) as steady:
            # uvloop opens one descriptor of its own on its first connection: count after it.
            steady.sendall(GET)
            assert read_responses(steady, 1) == ([200], False)
            before = len(os.listdir("/proc/%d/fd" % pid)) - 1
            for _ in range(20):
                socks = []
                for _ in range(50):
                    s = connect(srv)
                    kind = rnd.randrange(4)
                    if kind == 0:
                        s.sendall(GET[:rnd.randrange(1, len(GET))])
                    elif kind == 1:
                        s.sendall(GET * rnd.randrange(1, 20))
                    elif kind == 2:
                        s.sendall(os.urandom(rnd.randrange(1, 5000)))
                    else:
                        s.sendall(GET)
                        s.shutdown(socket.SHUT_WR)
                    socks.append(s)
                for s in socks:
                    if rnd.random() < 0.5:        # reset, not an end of stream
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                steady.sendall(GET)
                assert read_responses(steady, 1) == ([200], False)
        srv.wait_for(lambda: len(os.listdir("/proc/%d/fd" % pid)) == before,
                     what="the worker's descriptors back to %d" % before)
        assert srv.worker_pids() == {pid}
        assert "Traceback" not in srv.log()
