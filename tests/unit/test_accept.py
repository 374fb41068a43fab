"""The worker takes every queued connection when its listening socket is ready, even while each
loop iteration is long (a busy worker building large pages), and keeps serving through drains and
connections that reset before they were set up."""
import asyncio
import contextlib
import select
import socket
import struct
import time

from fastnova.serve.loop import new_loop
from fastnova.serve.worker import Acceptor
from tests.server import accept_queue, wait_until


class _Proto(asyncio.Protocol):
    def __init__(self, made, stamp):
        self.made = made
        self.stamp = stamp

    def connection_made(self, transport):
        self.made.append(self.stamp())
        transport.write(b"hi")


def _listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    return sock


class _Busy:
    """Make every loop iteration last `seconds` (what answering large pages does), counting
    the iterations, until stopped."""

    def __init__(self, loop, seconds):
        self.loop = loop
        self.seconds = seconds
        self.iterations = 0
        self.stopped = False
        loop.call_soon(self._spin)

    def _spin(self):
        time.sleep(self.seconds)
        self.iterations += 1
        if not self.stopped:
            self.loop.call_later(0, self._spin)


def _run_until(loop, condition, timeout=30.0):
    """Run the loop until ``condition()`` holds (an AssertionError after ``timeout``)."""
    async def wait():
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, "condition not reached"
            await asyncio.sleep(0.005)
    loop.run_until_complete(wait())


def _iterate(loop, count):
    """Run ``count`` loop iterations (each polls the sockets once)."""
    async def turns():
        for _ in range(count):
            await asyncio.sleep(0)
    loop.run_until_complete(turns())


@contextlib.contextmanager
def _serving(stamp=time.monotonic):
    """A loop, a listening socket with an Acceptor on it, the transports' connection times, and
    a list to put client sockets in; all closed afterwards."""
    loop = new_loop()
    sock = _listener()
    made, clients = [], []
    acceptor = Acceptor(loop, sock, lambda: _Proto(made, stamp))
    try:
        yield loop, sock, acceptor, made, clients
    finally:
        acceptor.close()
        for client in clients:
            client.close()
        _iterate(loop, 10)                            # the transports see their clients go
        sock.close()
        loop.close()


def _connect(sock, clients, count):
    clients.extend(socket.create_connection(sock.getsockname()) for _ in range(count))
    return clients[-count:]


def test_a_burst_of_connections_is_taken_in_a_few_iterations_of_a_busy_loop():
    busy = []
    with _serving(stamp=lambda: busy[0].iterations) as (loop, sock, _acceptor, made, clients):
        _connect(sock, clients, 100)
        wait_until(lambda: accept_queue(sock.getsockname()[1]) == 100, what="100 queued")
        busy.append(_Busy(loop, 0.02))
        _run_until(loop, lambda: len(made) == 100)
        busy[0].stopped = True
        # Counted in iterations, not seconds: one connection per iteration would need 100.
        assert max(made) <= 5, made
        for client in clients:
            client.settimeout(5)
            assert client.recv(2) == b"hi"


def test_a_connection_reset_while_queued_does_not_stop_the_others():
    with _serving() as (loop, sock, _acceptor, _made, clients):
        reset = socket.create_connection(sock.getsockname())
        reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        reset.close()                                 # RST before the worker accepted it
        for client in _connect(sock, clients, 3):
            _run_until(loop, lambda: select.select([client], [], [], 0)[0])    # "hi" came
            client.settimeout(5)
            assert client.recv(2) == b"hi"


def test_close_stops_accepting_and_leaves_the_queue_for_the_next_worker():
    with _serving() as (loop, sock, acceptor, made, clients):
        _connect(sock, clients, 1)
        _run_until(loop, lambda: len(made) == 1)
        acceptor.close()
        acceptor.close()                              # idempotent
        _connect(sock, clients, 1)
        wait_until(lambda: accept_queue(sock.getsockname()[1]) == 1, what="1 queued")
        _iterate(loop, 20)                            # each iteration polls the socket
        assert len(made) == 1                         # not taken by the draining worker
        conn, _ = sock.accept()                       # still queued for whoever is next
        conn.close()


def test_connections_accepted_but_not_yet_set_up_are_counted_for_a_drain():
    """A drain stops the loop only when no accepted socket is still on its way to becoming a
    transport (else a connection accepted just before TERM would be cut, unanswered)."""
    with _serving() as (loop, sock, acceptor, made, clients):
        _connect(sock, clients, 5)
        wait_until(lambda: accept_queue(sock.getsockname()[1]) == 5, what="5 queued")
        acceptor._ready()                        # what the loop calls when the socket is ready
        assert acceptor.opening == 5 and made == []
        _run_until(loop, lambda: acceptor.opening == 0 and len(made) == 5)


_OUT_OF_FDS = """
import asyncio, os, resource, socket, sys, time
from fastnova.serve.loop import new_loop
from fastnova.serve.worker import Acceptor

class P(asyncio.Protocol):
    def connection_made(self, transport):
        made.append(transport)

made = []
loop = new_loop()
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen(64)
print(sock.getsockname()[1], flush=True)
sys.stdin.readline()                       # the parent has queued its connections
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 2, hard))
acceptor = Acceptor(loop, sock, P)
cpu = time.process_time()
loop.run_until_complete(asyncio.sleep(1.0))
print("limited", len(made), round(time.process_time() - cpu, 2), flush=True)
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
loop.run_until_complete(asyncio.sleep(1.0))
print("after", len(made), flush=True)
"""


def test_running_out_of_descriptors_backs_off_then_takes_the_rest(tmp_path):
    """EMFILE on a level-triggered listening socket must not spin the loop (the reader is
    taken off and put back later), and the queued connections are accepted once descriptors
    are free again."""
    import os
    import subprocess
    import sys

    from tests.server import REPO as repo
    proc = subprocess.Popen([sys.executable, "-c", _OUT_OF_FDS], cwd=repo, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    port = int(proc.stdout.readline())
    clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    try:
        proc.stdin.write("go\n")
        proc.stdin.flush()
        limited = proc.stdout.readline().split()
        after = proc.stdout.readline().split()
        err = proc.communicate(timeout=30)[1]
    finally:
        for client in clients:
            client.close()
    assert limited[0] == "limited" and int(limited[1]) < 10
    assert float(limited[2]) < 0.5, "the loop spun on EMFILE"
    assert "cannot accept connections" in err
    assert after == ["after", "10"]
