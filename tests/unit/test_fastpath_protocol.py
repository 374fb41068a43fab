"""The compiled protocol answers GET /v2.1/servers/{id} from httptools' raw bytes (no Request,
no App.handle).  Fed the same byte streams, a protocol whose app has the fast path and one whose
app has none must write the same bytes (request ids and Date aside), and the fast one must really
have skipped the general path where it could."""
import asyncio
import os
import re

import pytest

from fastnova import demo
from fastnova.api.app import App
from tests.unit.test_fastpath import store  # noqa: F401  (the fixture: 12 demo servers, #5 deleted)

try:
    from fastnova._ext._protocol import HttpProtocol
except ImportError:  # pragma: no cover - exercised when the build is missing
    HttpProtocol = None
    if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
        raise

pytestmark = pytest.mark.skipif(HttpProtocol is None, reason="compiled protocol not built")
PROJECT, OTHER = demo.PROJECTS[0][0], demo.PROJECTS[1][0]


class Transport:
    def __init__(self):
        self.out = []
        self.closed = False

    def write(self, data):
        assert not self.closed, "write after close"
        self.out.append(bytes(data))

    def close(self):
        self.closed = True

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass


class Counting(App):
    """An App that counts the requests the general path answered."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.general = 0

    def handle(self, req):
        self.general += 1
        return super().handle(req)


@pytest.fixture(scope="module")
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _normal(raw: bytes) -> bytes:
    raw = re.sub(rb"req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                 b"req-X", raw)
    return re.sub(rb"Date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n",
                  b"Date: X\r\n", raw)


def _feed(app, loop, stream: bytes, chunk: int = 0, protocol=None):
    transport = Transport()
    proto = (protocol or HttpProtocol)(app, loop)
    proto.connection_made(transport)
    if chunk:
        for i in range(0, len(stream), chunk):
            proto.data_received(stream[i:i + chunk])
    else:
        proto.data_received(stream)
    return b"".join(transport.out), transport.closed


def _get(path, token="demo:" + PROJECT, extra=b"", version=b"1.1", host=b"h.example:8774"):
    head = b"GET %s HTTP/%s\r\n" % (path.encode(), version)
    if host is not None:
        head += b"Host: " + host + b"\r\n"
    if token is not None:
        head += b"X-Auth-Token: " + token.encode() + b"\r\n"
    return head + extra + b"\r\n"


OWN, FOREIGN, DELETED = (demo.server(i)["id"] for i in (0, 1, 5))
STREAMS = {
    "member own": _get("/v2.1/servers/" + OWN),
    "member foreign": _get("/v2.1/servers/" + FOREIGN),
    "admin foreign": _get("/v2.1/servers/" + FOREIGN, token="admin:admin"),
    "deleted": _get("/v2.1/servers/" + DELETED, token="admin:admin"),
    "unknown": _get("/v2.1/servers/" + "0" * 36),
    "latest": _get("/v2.1/servers/" + OWN, extra=b"OpenStack-API-Version: compute latest\r\n"),
    "2.47 mixed case names": _get("/v2.1/servers/" + OWN, token=None,
                                  extra=b"x-AUTH-token: demo:%s\r\nOPENSTACK-api-VERSION: "
                                        b"compute 2.47\r\n" % PROJECT.encode()),
    "legacy header": _get("/v2.1/servers/" + OWN, extra=b"X-OpenStack-Nova-API-Version: 2.9\r\n"),
    "bad version": _get("/v2.1/servers/" + OWN, extra=b"OpenStack-API-Version: compute 2.999\r\n"),
    "repeated token": _get("/v2.1/servers/" + OWN, extra=b"X-Auth-Token: admin:admin\r\n"),
    "no host": _get("/v2.1/servers/" + OWN, host=None),
    "hostile host": _get("/v2.1/servers/" + OWN, host=b'bad host"'),
    "no token": _get("/v2.1/servers/" + OWN, token=None),
    "uppercase id": _get("/v2.1/servers/" + OWN.upper()),
    "percent id": _get("/v2.1/servers/" + OWN[:-3] + "%41"),
    "query": _get("/v2.1/servers/" + OWN + "?a=b"),
    "project in url": _get("/v2.1/%s/servers/%s" % (PROJECT, OWN)),
    "http 1.0": _get("/v2.1/servers/" + OWN, version=b"1.0"),
    "connection close": _get("/v2.1/servers/" + OWN, extra=b"Connection: close\r\n"),
    "head": _get("/v2.1/servers/" + OWN).replace(b"GET", b"HEAD", 1),
    "with body": _get("/v2.1/servers/" + OWN, extra=b"Content-Length: 2\r\n")[:-2]
    + b"\r\n{}",
    "pipelined": _get("/v2.1/servers/" + OWN) + _get("/v2.1/servers/detail?limit=1")
    + _get("/v2.1/servers/" + FOREIGN, token="admin:admin") + _get("/v2.1/servers/" + OWN),
    "then garbage": _get("/v2.1/servers/" + OWN) + b"\x16\x03\x01garbage\r\n\r\n",
    "duplicate host": _get("/v2.1/servers/" + OWN, extra=b"Host: other\r\n"),
    # The compiled protocol reads a message's request line itself when a chunk starts with it
    # (version and method, sparing two calls into httptools); these lines must still be
    # answered exactly as httptools' own reading of them decides.
    "http 0.9": b"GET /v2.1/servers/%s\r\n\r\n" % OWN.encode(),
    "http 2.0": _get("/v2.1/servers/" + OWN, version=b"2.0"),
    "http 1.2": _get("/v2.1/servers/" + OWN, version=b"1.2"),
    "http 1.10": _get("/v2.1/servers/" + OWN, version=b"1.10"),
    "leading blank lines": b"\r\n\r\n" + _get("/v2.1/servers/" + OWN),
    "bare newlines": _get("/v2.1/servers/" + OWN).replace(b"\r\n", b"\n"),
    "lowercase method": _get("/v2.1/servers/" + OWN).replace(b"GET", b"get", 1),
    "method GETX": _get("/v2.1/servers/" + OWN).replace(b"GET", b"GETX", 1),
    "post": _get("/v2.1/servers/" + OWN, extra=b"Content-Length: 0\r\n").replace(b"GET", b"POST", 1),
    "pipelined then 0.9": _get("/v2.1/servers/" + OWN)
    + b"GET /v2.1/servers/%s\r\n\r\n" % OWN.encode(),
    "pipelined then post": _get("/v2.1/servers/" + OWN)
    + _get("/v2.1/servers/" + OWN, extra=b"Content-Length: 0\r\n").replace(b"GET", b"POST", 1),
}


@pytest.mark.parametrize("name", sorted(STREAMS))
@pytest.mark.parametrize("chunk", [0, 7])
@pytest.mark.parametrize("reference", ["compiled", "pure"])
def test_fast_and_general_protocols_write_the_same_bytes(store, loop, name, chunk, reference):
    """The reference: the compiled protocol without the fast path, or the pure twin (which
    asks httptools for every message's version and method)."""
    from fastnova.api.protocol import PureHttpProtocol
    stream = STREAMS[name]
    general = Counting(store)
    general.fast = None
    fast = Counting(store)
    assert fast.fast is not None
    protocol = PureHttpProtocol if reference == "pure" else HttpProtocol
    # Twice each: the first time fills the general path's memos, the second may go fast.
    for _ in range(2):
        want, want_closed = _feed(general, loop, stream, chunk, protocol)
        got, got_closed = _feed(fast, loop, stream, chunk)
        assert _normal(got) == _normal(want)
        assert got_closed == want_closed
        assert got.startswith(b"HTTP/1.1 ")


def test_the_fast_path_is_taken_without_the_general_path(store, loop):
    app = Counting(store)
    stream = _get("/v2.1/servers/" + OWN) + _get("/v2.1/servers/" + FOREIGN, token="admin:admin")
    _feed(app, loop, stream)
    assert app.general == 2                 # cold memos: the general path answered both
    out, closed = _feed(app, loop, stream * 3)
    assert app.general == 2                 # warm: none of the six reached it
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 6 and not closed
    ids = re.findall(rb"x-openstack-request-id: (req-[^\r]+)\r\n", out)
    assert len(set(ids)) == 6               # a fresh request id per answer
    assert re.findall(rb"x-compute-request-id: (req-[^\r]+)\r\n", out) == ids
    for length, body in re.findall(rb"Content-Length: (\d+)\r\n.*?\r\n\r\n(\{\"server\".*?\}\})"
                                   rb"(?=HTTP/1.1|$)", out, re.S):
        assert int(length) == len(body)


def test_declined_requests_reach_the_general_path(store, loop):
    app = Counting(store)
    _feed(app, loop, _get("/v2.1/servers/" + OWN))           # warm the memos
    base = app.general
    declined = ["member foreign", "deleted", "unknown", "query", "head", "with body",
                "project in url", "uppercase id", "percent id"]
    for name in declined:
        _feed(app, loop, STREAMS[name])
    assert app.general - base == len(declined)


# How many requests of each stream the recognizer answers: a read is fed in pieces that end
# where a message may end, so each whole plain request of a pipelined read is one piece.
QUICK = {"member own": 1, "admin foreign": 1, "latest": 1, "2.47 mixed case names": 1,
         "legacy header": 1, "connection close": 1, "leading blank lines": 1, "pipelined": 3,
         "then garbage": 1, "pipelined then 0.9": 1, "pipelined then post": 1}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_which_requests_the_quick_recognizer_answers(store, loop, name):
    """A whole plain show request in one piece is answered without httptools (``quick``); the
    others are still answered (the byte comparison above), by httptools and the fast path or
    the general path."""
    app = Counting(store)
    _feed(app, loop, STREAMS[name])                          # warm the memos
    transport = Transport()
    proto = HttpProtocol(app, loop)
    proto.connection_made(transport)
    proto.data_received(STREAMS[name])
    assert proto.quick == QUICK.get(name, 0)
    assert proto.answered >= 1 or transport.closed
    # The same request split across reads is never the recognizer's.
    proto = HttpProtocol(app, loop)
    proto.connection_made(Transport())
    stream = STREAMS[name]
    proto.data_received(stream[:20])
    proto.data_received(stream[20:])
    assert proto.quick == max(0, QUICK.get(name, 0) - 1)


# -- generated streams: the quick recognizer, httptools and the general path together -------------

from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from tests.unit.test_quick import NAMES, VALUES, VALUE_BYTES, mostly  # noqa: E402

_TOKENS = [b"demo:" + PROJECT.encode(), b"admin:admin", b"demo:" + OTHER.encode(), b"bad"]
_PATHS = [b"/v2.1/servers/" + i.encode() for i in (OWN, FOREIGN, DELETED, "0" * 36)] + [
    b"/v2.1/%s/servers/%s" % (PROJECT.encode(), OWN.encode()), b"/v2.1/servers/detail",
    b"/v2.1/servers/" + OWN.upper().encode(), b"/v2.1/servers/" + OWN.encode() + b"?a=b", b"/"]


@st.composite
def _streams(draw):
    """One or two requests, mostly plain show requests real clients send, some odd."""
    out = b""
    for _ in range(draw(mostly(st.just(1), st.just(2), 3))):
        eol = draw(mostly(st.just(b"\r\n"), st.sampled_from([b"\n"]), 12))
        method = draw(mostly(st.just(b"GET"), st.sampled_from([b"HEAD", b"POST", b"get"])))
        version = draw(mostly(st.just(b"HTTP/1.1"), st.sampled_from([b"HTTP/1.0", b"HTTP/2.0"])))
        path = draw(mostly(st.sampled_from(_PATHS[:2]), st.sampled_from(_PATHS[2:]), 2))
        lines = [method + b" " + path + b" " + version]
        lines.append(b"Host: " + draw(mostly(st.sampled_from([b"h.example:8774", b"other"]),
                                             st.just(b""), 4)))
        lines.append(b"X-Auth-Token: " + draw(mostly(st.sampled_from(_TOKENS[:2]),
                                                     st.sampled_from(_TOKENS[2:]), 2)))
        for _ in range(draw(st.integers(0, 2))):
            name = draw(mostly(st.sampled_from(NAMES[:15]), st.sampled_from(NAMES[15:]), 3))
            value = draw(mostly(st.sampled_from(VALUES), VALUE_BYTES, 4))
            lines.append(name + b": " + value)
        out += eol.join(lines) + eol + eol
    return out


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(stream=_streams(), split=st.sampled_from([0, 0, 0, 9]))
def test_generated_streams_are_answered_alike_with_and_without_the_fast_path(store, loop, stream,
                                                                             split):
    general = Counting(store)
    general.fast = None
    fast = Counting(store)
    for _ in range(2):                  # the second time the memos are warm
        want, want_closed = _feed(general, loop, stream, split)
        got, got_closed = _feed(fast, loop, stream, split)
        assert _normal(got) == _normal(want), stream
        assert got_closed == want_closed, stream
