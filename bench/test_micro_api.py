"""Request parsing and routing, microversion negotiation, and a whole in-process answer.

The parse case feeds a typical request's bytes to fastnova's HttpProtocol with a transport that
only collects what is written, so it measures httptools, the callbacks and the Request build; the
app is a stub.  The ``app_handle`` cases are the whole answer minus the socket.
"""
import pytest

from fastnova.api import router
from fastnova.api.app import App, Request
from fastnova.api.microversion import negotiate
from fastnova.api.protocol import HttpProtocol

from bench.fakes import Loop as _Loop, Transport as _Transport

MEMBER_TOKEN = "demo:6f70656e737461636b20342065766572"
SHOW_REQUEST = (b"GET /v2.1/servers/%s HTTP/1.1\r\nHost: 127.0.0.1:8774\r\n"
                b"X-Auth-Token: " + MEMBER_TOKEN.encode() + b"\r\nAccept: application/json\r\n"
                b"User-Agent: python-novaclient\r\nOpenStack-API-Version: compute 2.79\r\n\r\n")


class _StubApp:
    def handle(self, req):
        return b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def test_parse_request(benchmark, member_ids):
    transport = _Transport()
    proto = HttpProtocol(_StubApp(), _Loop())
    proto.connection_made(transport)
    data = SHOW_REQUEST % member_ids[0]
    benchmark(proto.data_received, data)
    assert transport.sent > 0


@pytest.mark.parametrize("path", ["/v2.1/servers/3f4ef017-abbf-4316-8fe1-5326c2fd2149",
                                  "/v2.1/6f70656e737461636b20342065766572/servers/detail"])
def test_route(benchmark, path):
    assert benchmark(router.route, "GET", path).kind in (router.SERVER_SHOW,
                                                          router.SERVERS_DETAIL)


@pytest.mark.parametrize("header,legacy", [(None, None), ("compute 2.79", None),
                                           ("compute latest", None), (None, "2.53")])
def test_microversion(benchmark, header, legacy):
    assert benchmark(negotiate, header, legacy) >= 1


@pytest.fixture(scope="module")
def app(reader):
    return App(reader, server_name="127.0.0.1:8774")


def test_app_handle_show(benchmark, app, member_ids):
    req = Request(path="/v2.1/servers/" + member_ids[0].decode(), host="127.0.0.1:8774",
                  token=MEMBER_TOKEN, mv_header="compute 2.79")
    assert benchmark(app.handle, req).startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize("query", ["limit=100", "limit=100&status=ACTIVE"])
def test_app_handle_detail100(benchmark, app, query):
    req = Request(path="/v2.1/servers/detail", query=query, host="127.0.0.1:8774",
                  token=MEMBER_TOKEN)
    assert benchmark(app.handle, req).startswith(b"HTTP/1.1 200")


def test_serve_show_request(benchmark, app, member_ids):
    """A show request's bytes in, the response's bytes out, through the protocol the worker runs
    and the real App: with the compiled build, the fast path (no Request, no App.handle); with
    FASTNOVA_PURE=1, the pure twin and the general path.  The socket and the loop are all that
    is missing."""
    transport = _Transport()
    proto = HttpProtocol(app, _Loop())
    proto.connection_made(transport)
    data = SHOW_REQUEST % member_ids[0]
    proto.data_received(data)          # the general path answers first and fills the memos
    benchmark(proto.data_received, data)
    assert transport.sent > 1
