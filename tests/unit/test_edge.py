"""The edge-triggered connection set (fastnova/_ext/_edge.pyx), on real loopback sockets.

Each test drives an EdgePoller inside a uvloop loop with a recording protocol, and checks what
asyncio's transport contract promises the HTTP protocol: bytes in order, nothing lost when
reading is paused, writes buffered past the socket and flushed in order, flow control, close
after the flush, connection_lost once and never from inside a protocol call.  The first test is
why the module exists: ready connections are served in the order their bytes arrived.
"""
from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import pytest

edge = pytest.importorskip("fastnova._ext._edge")

from fastnova.serve.loop import new_loop  # noqa: E402
from fastnova.serve import worker  # noqa: E402


class Recorder(asyncio.Protocol):
    def __init__(self, name, log):
        self.name = name
        self.log = log
        self.data = bytearray()
        self.transport = None
        self.lost = []
        self.eof = 0
        self.paused = 0
        self.resumed = 0
        self.inside = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.inside = True
        self.log.append(self.name)
        self.data += data
        self.inside = False

    def eof_received(self):
        self.eof += 1
        return False

    def pause_writing(self):
        self.paused += 1

    def resume_writing(self):
        self.resumed += 1

    def connection_lost(self, exc):
        assert not self.inside
        self.lost.append(exc)


@pytest.fixture
def rig():
    loop = new_loop()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    poller = edge.EdgePoller(loop)
    log = []
    made = []

    def connect(name):
        client = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
        proto = Recorder(name, log)
        poller.connect(conn, lambda: proto)
        made.append(client)
        return client, proto

    def spin(seconds=0.05):
        loop.run_until_complete(asyncio.sleep(seconds))

    yield loop, poller, connect, spin, log
    for client in made:
        client.close()
    poller.close()
    loop.close()
    listener.close()


def wait_until(spin, cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        spin(0.01)


def test_ready_connections_are_served_in_the_order_their_bytes_arrived(rig):
    loop, poller, connect, spin, log = rig
    pairs = {name: connect(name) for name in "abcdef"}
    poller.run()        # each registration reports "writable" once, in registration order
    assert log == []
    # Round 1 arrives in one order; everyone is served (a level-triggered set now holds the
    # six on its ready list in this order).
    for name in "fedcba":
        pairs[name][0].sendall(b"1")
    poller.run()
    assert log == list("fedcba")
    # Round 2 arrives in the opposite order: the oldest bytes are served first.
    del log[:]
    for name in "abcdef":
        pairs[name][0].sendall(b"2")
    poller.run()
    assert log == list("abcdef")
    # A connection that was idle last round is not put behind those just served.
    del log[:]
    for name in "ab":
        pairs[name][0].sendall(b"3")
    poller.run()
    del log[:]
    for name in ("c", "a", "b"):
        pairs[name][0].sendall(b"4")
    poller.run()
    assert log == ["c", "a", "b"]
    assert pairs["a"][1].data == b"1234"
    assert pairs["c"][1].data == b"124"


def test_level_triggered_epoll_would_serve_them_out_of_order():
    """The contrast the module relies on, shown with plain epoll: the test above fails for a
    level-triggered set."""
    ep = __import__("select").epoll()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    clients, servers = [], []
    for _ in range(3):
        c = socket.create_connection(listener.getsockname())
        s, _ = listener.accept()
        s.setblocking(False)
        ep.register(s.fileno(), __import__("select").EPOLLIN)
        clients.append(c)
        servers.append(s)
    order = {s.fileno(): i for i, s in enumerate(servers)}

    def turn():
        got = [order[fd] for fd, _ in ep.poll(0)]
        for i in got:
            servers[i].recv(100)
        return got

    for i in (2, 1, 0):
        clients[i].sendall(b"x")
    assert turn() == [2, 1, 0]
    for i in (0, 1, 2):
        clients[i].sendall(b"y")
    assert turn() == [2, 1, 0]          # last round's order, not arrival order
    for sock in clients + servers + [listener]:
        sock.close()
    ep.close()


def test_paused_reading_keeps_the_bytes_and_resume_delivers_them_without_a_new_edge(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    proto.transport.pause_reading()
    client.sendall(b"held back")
    poller.run()
    spin()
    assert proto.data == b""
    proto.transport.resume_reading()
    wait_until(spin, lambda: proto.data == b"held back")


def test_a_long_pipelined_stream_arrives_whole_and_in_order(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    other, other_proto = connect("b")
    blob = b"".join(struct.pack(">I", i) for i in range(2_000_000))    # 8 MB
    client.setblocking(False)
    sent = 0
    while sent < len(blob):
        try:
            sent += client.send(blob[sent:sent + 1 << 20])
        except BlockingIOError:
            pass
        other.sendall(b"x")             # another client keeps being served meanwhile
        spin(0.001)
    wait_until(spin, lambda: len(proto.data) == len(blob))
    assert bytes(proto.data) == blob
    assert other_proto.data.count(b"x") >= 1


def test_writes_past_the_socket_are_buffered_flushed_in_order_with_flow_control(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    t = proto.transport
    chunk = os.urandom(1 << 20)
    for _ in range(8):
        t.write(chunk)
    t.write(memoryview(b"tail"))
    assert t.get_write_buffer_size() > 0
    assert proto.paused == 1
    got = bytearray()
    client.setblocking(False)
    expected = chunk * 8 + b"tail"
    while len(got) < len(expected):
        try:
            got += client.recv(1 << 20)
        except BlockingIOError:
            spin(0.001)
    assert bytes(got) == expected
    wait_until(spin, lambda: t.get_write_buffer_size() == 0)
    assert proto.resumed == 1


def test_close_sends_what_was_buffered_then_calls_connection_lost_once(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    t = proto.transport
    payload = os.urandom(4 << 20)
    t.write(payload)
    t.close()
    t.close()
    assert t.is_closing()
    spin()
    assert proto.lost == []             # still flushing
    got = bytearray()
    client.settimeout(5)
    while True:
        part = client.recv(1 << 20)
        if not part:
            break
        got += part
        spin(0.001)
    assert bytes(got) == payload
    wait_until(spin, lambda: proto.lost == [None])
    t.write(b"after close")             # ignored, as asyncio's transports do
    spin()
    assert proto.lost == [None]
    assert len(poller) == 0


def test_abort_drops_the_buffer_and_a_reset_peer_is_reported(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    proto.transport.write(os.urandom(8 << 20))
    proto.transport.abort()
    wait_until(spin, lambda: proto.lost == [None])
    client.settimeout(5)
    total = 0
    try:
        while True:
            part = client.recv(1 << 20)
            if not part:
                break
            total += len(part)
    except ConnectionResetError:
        pass
    assert total < 8 << 20

    client2, proto2 = connect("b")
    proto2.transport.write(os.urandom(8 << 20))          # stays buffered: nobody reads
    client2.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client2.close()                                      # RST
    wait_until(spin, lambda: proto2.lost)
    assert isinstance(proto2.lost[0], OSError)


def test_eof_from_the_peer_closes_after_eof_received(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    client.sendall(b"last words")
    client.shutdown(socket.SHUT_WR)
    wait_until(spin, lambda: proto.lost == [None])
    assert proto.data == b"last words"
    assert proto.eof == 1


def test_extra_info_names_the_peer(rig):
    loop, poller, connect, spin, log = rig
    client, proto = connect("a")
    assert proto.transport.get_extra_info("peername") == client.getsockname()
    assert proto.transport.get_extra_info("nonsense", 7) == 7


def test_the_worker_uses_it_unless_told_not_to(monkeypatch):
    loop = new_loop()
    try:
        monkeypatch.delenv("FASTNOVA_EDGE_IO", raising=False)
        poller = worker.edge_poller(loop)
        assert isinstance(poller, edge.EdgePoller)
        poller.close()
        monkeypatch.setenv("FASTNOVA_EDGE_IO", "0")
        assert worker.edge_poller(loop) is None
    finally:
        loop.close()


def _protocols():
    from fastnova.api.protocol import PureHttpProtocol
    found = [pytest.param(PureHttpProtocol, id="pure")]
    try:
        from fastnova._ext._protocol import HttpProtocol as compiled
        found.append(pytest.param(compiled, id="compiled"))
    except ImportError:
        if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
            raise
    return found


@pytest.mark.parametrize("protocol_class", _protocols())
def test_a_closed_connection_whose_peer_takes_nothing_is_reset(rig, protocol_class):
    """The HTTP protocol closes a connection that timed out, and a close waits for what is
    buffered; a peer that then takes no byte for keepalive_timeout is reset, so it cannot hold
    the worker's buffer for ever.  A peer that keeps taking bytes is not."""
    from fastnova.api.protocol import Limits
    loop, poller, connect, spin, log = rig
    limits = Limits(header_timeout=1.0, keepalive_timeout=2.0)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    peers = []
    for _ in range(2):
        peer = socket.socket()
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        peer.connect(listener.getsockname())
        conn, _ = listener.accept()
        proto = protocol_class(object(), loop, None, limits)
        poller.connect(conn, lambda: proto)
        proto.transport.write(b"x" * (32 << 20))       # far more than the socket takes
        assert proto.transport.get_write_buffer_size() > 0
        peers.append((peer, proto))
    (stuck, p1), (reader, p2) = peers
    for now in (100.0, 102.5):          # not reading (paused) for longer than keepalive_timeout
        p1.check(now)
        p2.check(now)
    assert p1.transport.is_closing() and p2.transport.is_closing()
    assert p1.transport.get_write_buffer_size() > 0    # closing, not closed: still flushing
    reader.setblocking(False)
    for now in (103.0, 104.0, 105.0, 106.0):
        p1.check(now)
        p2.check(now)
        try:
            while reader.recv(1 << 20):                 # p2's peer takes bytes meanwhile
                pass
        except BlockingIOError:
            pass
        spin(0.05)
    wait_until(spin, lambda: p1.transport is None)      # connection_lost
    assert p2.transport is not None and not p2.transport.get_extra_info("socket")._closed
    stuck.settimeout(5)
    with pytest.raises(ConnectionResetError):
        while stuck.recv(1 << 20):
            pass
    for peer, _ in peers:
        peer.close()
    listener.close()
