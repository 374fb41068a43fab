"""A client that pipelines and does not read (issue 18, item 1), on both protocol twins: once
writing pauses, parsing stops at the next message boundary and the rest of the read is held as
bytes, not parsed; when writing resumes it is parsed from exactly there, answers in order."""
import asyncio
import re

import pytest

from fastnova import demo
from fastnova.api.app import App
from fastnova.api.protocol import PureHttpProtocol
from tests.unit.test_fastpath import store  # noqa: F401  (the fixture: 12 demo servers)

try:
    from fastnova._ext._protocol import HttpProtocol as CompiledHttpProtocol
except ImportError:  # pragma: no cover - FASTNOVA_REQUIRE_EXT=1 makes the build required
    CompiledHttpProtocol = None

TWINS = ["pure"] + (["compiled"] if CompiledHttpProtocol is not None else [])


class Transport:
    """Pauses writing once ``room`` answers were written, as a full socket would."""

    def __init__(self, room):
        self.out = []
        self.room = room
        self.protocol = None
        self.reading = True
        self.closed = False

    def write(self, data):
        self.out.append(bytes(data))
        if len(self.out) == self.room:
            self.protocol.pause_writing()

    def close(self):
        self.closed = True

    def pause_reading(self):
        self.reading = False

    def resume_reading(self):
        self.reading = True


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _protocol(twin, store, loop, room):
    cls = PureHttpProtocol if twin == "pure" else CompiledHttpProtocol
    proto = cls(App(store), loop)
    transport = Transport(room)
    transport.protocol = proto
    proto.connection_made(transport)
    return proto, transport


def _show(i, extra=b""):
    return (b"GET /v2.1/servers/%s HTTP/1.1\r\nHost: h\r\nX-Auth-Token: admin:admin\r\n%s\r\n"
            % (demo.server(i)["id"].encode(), extra))


def _ids(out):
    return [m.group(1) for m in re.finditer(rb'"server": ?\{[^{]*?"id": ?"([0-9a-f-]{36})"',
                                            b"".join(out))]


IDX = [0, 1, 2, 3, 4, 6]              # the fixture deleted #5

STREAMS = {
    "plain": b"".join(_show(i) for i in IDX),
    # bodies and odd framing between the requests: the boundaries must still be found
    "bodies": b"".join(_show(i, b"Content-Length: 3\r\n") + b"abc" for i in IDX),
    "chunked": b"".join(_show(i, b"Transfer-Encoding: chunked\r\n") + b"2\r\nab\r\n0\r\n\r\n"
                        for i in IDX),
}


@pytest.mark.parametrize("twin", TWINS)
@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("split", [0, 5, 37])
def test_parsing_stops_where_writing_paused_and_resumes_there_in_order(store, loop, twin, name,
                                                                        split):
    stream = STREAMS[name]
    proto, transport = _protocol(twin, store, loop, room=2)
    # The socket: reads are delivered only while the transport reads.
    socket = [stream] if not split else [stream[i:i + split] for i in range(0, len(stream), split)]

    def deliver():
        while socket and transport.reading:
            proto.data_received(socket.pop(0))

    deliver()
    assert len(transport.out) == 2
    assert not transport.reading
    assert len(proto.pending) == 0     # nothing parsed past the pause: the rest is bytes
    assert proto.held or socket
    for _ in range(6):
        transport.room = len(transport.out) + 2
        proto.resume_writing()
        deliver()
    assert _ids(transport.out) == [demo.server(i)["id"].encode() for i in IDX]
    assert not proto.held and not socket and transport.reading
