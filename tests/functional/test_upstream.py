"""Forwarding what fastnova does not serve to an upstream nova-api (a real HTTP server here)."""
import asyncio
import json
import time

import pytest
import uvloop

from fastnova import demo
from fastnova.api.app import App, Request
from fastnova.api.upstream import Upstream
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("upstream-store"))
    writer = StoreWriter.open(path, sync=False)
    demo.fill(writer, 5)
    writer.close()
    reader = StoreReader.open(path)
    yield reader
    reader.close()


class FakeNova:
    """A loopback HTTP server standing in for nova-api: records requests, answers JSON."""

    def __init__(self, close_after_each=False):
        self.seen = []
        self.close_after_each = close_after_each
        self.closed = 0                 # connections this side closed after answering
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return "http://127.0.0.1:%d" % self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.lower(): v for k, v in (l.split(": ", 1) for l in lines[1:] if l)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                self.seen.append((lines[0], headers, body))
                payload = json.dumps({"hypervisors": [], "echo": lines[0]}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"x-openstack-request-id: req-upstream\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload))
                await writer.drain()
                if self.close_after_each:
                    writer.close()
                    await writer.wait_closed()
                    self.closed += 1
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def run(coro):
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _request(path, method="GET", body=b""):
    headers = ((b"Host", b"api.example.com:8774"), (b"X-Auth-Token", b"tok"),
               (b"OpenStack-API-Version", b"compute 2.88"), (b"Connection", b"keep-alive"))
    return Request(method=method, path=path, host="api.example.com:8774", token="tok",
                   mv_header="compute 2.88", body=body, raw_headers=headers)


def _split(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {k.lower(): v for k, v in (l.split(b": ", 1) for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def test_unserved_requests_are_forwarded_with_headers_and_body(store):
    async def scenario():
        nova = FakeNova()
        app = App(store, upstream=Upstream(await nova.start()))
        raw = await app.handle(_request("/v2.1/os-hypervisors/detail"))
        posted = await app.handle(_request("/v2.1/os-aggregates", "POST", b'{"aggregate": {}}'))
        return nova, raw, posted

    nova, raw, posted = run(scenario())
    status, headers, body = _split(raw)
    assert status == 200
    assert headers[b"x-openstack-request-id"] == b"req-upstream"   # nova's id, not ours
    assert json.loads(body)["echo"] == "GET /v2.1/os-hypervisors/detail HTTP/1.1"
    line, sent, _ = nova.seen[0]
    assert sent["x-auth-token"] == "tok"
    assert sent["openstack-api-version"] == "compute 2.88"
    assert sent["x-forwarded-host"] == "api.example.com:8774"
    assert sent["host"].startswith("127.0.0.1:")
    assert "connection" not in sent                     # hop-by-hop header not passed on
    assert nova.seen[1][2] == b'{"aggregate": {}}'
    assert _split(posted)[0] == 200


def test_reads_are_still_answered_locally(store):
    async def scenario():
        nova = FakeNova()
        app = App(store, upstream=Upstream(await nova.start()))
        req = _request("/v2.1/flavors")
        req.token = "admin:admin"
        return nova, app.handle(req)

    nova, raw = run(scenario())
    assert isinstance(raw, bytes) and _split(raw)[0] == 200
    assert nova.seen == []


def test_upstream_down_gives_nova_503(store):
    async def scenario():
        nova = FakeNova()
        url = await nova.start()
        nova.server.close()
        await nova.server.wait_closed()
        return await App(store, upstream=Upstream(url)).handle(_request("/v2.1/os-services"))

    status, _, body = _split(run(scenario()))
    assert status == 503
    assert json.loads(body)["serviceUnavailable"]["code"] == 503


def test_pooled_connection_closed_by_upstream_is_retried(store):
    async def scenario():
        nova = FakeNova(close_after_each=True)
        app = App(store, upstream=Upstream(await nova.start()))
        first = await app.handle(_request("/v2.1/os-services"))
        deadline = time.monotonic() + 30
        while not nova.closed:          # the pooled connection is now closed at the far end
            assert time.monotonic() < deadline
            await asyncio.sleep(0.005)
        second = await app.handle(_request("/v2.1/os-services"))
        return first, second

    first, second = run(scenario())
    assert _split(first)[0] == 200 and _split(second)[0] == 200


def test_serve_with_upstream_forwards_over_the_wire():
    """`fastnova serve --upstream URL`: a real forked server relays to a real upstream."""
    import threading

    from tests.server import running_server

    loop = uvloop.new_event_loop()
    nova = FakeNova()
    url = loop.run_until_complete(nova.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        with running_server(workers=1, demo=3, extra_args=("--upstream", url)) as srv:
            status, headers, body = srv.get("/v2.1/os-hypervisors")
            assert status == 200, srv.log()[-2000:]
            assert json.loads(body)["echo"] == "GET /v2.1/os-hypervisors HTTP/1.1"
            status, _, _ = srv.get("/v2.1/flavors")     # still answered locally
            assert status == 200
        assert [line for line, _, _ in nova.seen] == ["GET /v2.1/os-hypervisors HTTP/1.1"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
