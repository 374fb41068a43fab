"""Front mode and what goes upstream, in-process against a loopback HTTP upstream that answers
what each test tells it to (the real-nova tests are tests/integration/test_front_cloud.py)."""
import asyncio
import json

import orjson
import pytest
import uvloop

from fastnova import demo
from fastnova.api.app import App, Request
from fastnova.api.upstream import Upstream
from fastnova.cli import main as cli_main
from fastnova.commands import runtime
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter

TOKEN = "demo:" + demo.PROJECTS[0][0]


class Upstream200:
    """A loopback HTTP server: records requests; answers from ``answers`` (path -> (status,
    body)), else 200 with an echo of the request line."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.seen = []

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
                method, path, _ = lines[0].split(" ")
                status, payload = self.answers.get((method, path), (200, json.dumps(
                    {"echo": lines[0]}).encode()))
                writer.write(b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                             b"x-openstack-request-id: req-nova\r\nContent-Length: %d\r\n\r\n%s"
                             % (status, len(payload), payload))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def run(coro):
    loop = uvloop.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def _request(path, method="GET", body=b"", token=TOKEN):
    headers = ((b"Host", b"api.example.com"), (b"X-Auth-Token", token.encode()),
               (b"X-Openstack-Request-Id", b"req-client"))
    return Request(method=method, path=path, host="api.example.com", token=token, body=body,
                   raw_headers=headers)


def _split(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {k.lower(): v for k, v in (l.split(b": ", 1) for l in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def _answer(app, req):
    out = app.handle(req)
    return out if isinstance(out, bytes) else await out


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path)
    writer = StoreWriter.open(path, sync=False)
    demo.fill(writer, 3)
    with writer.env.begin() as txn:
        ids = [rec["id"] for rec in _records(writer, txn)]
    writer.close()
    # Writable, as a worker opens its store: the commands write through the same environment.
    from fastnova.store.env import open_env
    reader = StoreReader(open_env(path, create=False))
    yield reader, ids
    reader.close()


def _records(writer, txn):
    from fastnova.store import layout as L
    return [orjson.loads(v) for _, v in txn.cursor(db=writer.dbs[L.DB_RECORDS])
            if orjson.loads(v)["project_id"] == demo.PROJECTS[0][0]]


def test_unknown_actions_go_upstream_in_local_mode(store):
    reader, ids = store
    nova = Upstream200()

    async def scenario():
        app = App(reader, upstream=Upstream(await nova.start()))
        out = []
        for action in ({"os-getConsoleOutput": {}}, {"migrate": None}, {"shelve": None},
                       {"os-resetState": {"state": "error"}}, {"addSecurityGroup": {"name": "x"}}):
            req = _request("/v2.1/servers/%s/action" % ids[0], "POST", json.dumps(action).encode())
            out.append(await _answer(app, req))
        return out

    answers = run(scenario())
    assert [_split(a)[0] for a in answers] == [200] * 5
    assert [json.loads(b) for _, _, b in nova.seen][1] == {"migrate": None}
    assert all(h["x-openstack-request-id"] == "req-client" for _, h, _ in nova.seen)


def test_without_upstream_nova_answers_apply(store):
    reader, ids = store
    app = App(reader)

    async def scenario():
        action = await _answer(app, _request("/v2.1/servers/%s/action" % ids[0], "POST",
                                             b'{"shelve": null}'))
        unknown_sub = await _answer(app, _request("/v2.1/servers/%s/bogus" % ids[0]))
        unknown_path = await _answer(app, _request("/v2.1/nothing-here"))
        nova_has_it = await _answer(app, _request("/v2.1/servers/%s/os-interface" % ids[0]))
        return action, unknown_sub, unknown_path, nova_has_it

    action, unknown_sub, unknown_path, nova_has_it = run(scenario())
    status, _, body = _split(action)
    assert status == 400 and b"There is no such action: shelve" in body
    assert _split(unknown_sub)[0] == 404
    assert _split(unknown_path)[0] == 404
    assert _split(nova_has_it)[0] == 501


def test_front_mode_commands_go_upstream_and_errors_pass_byte_for_byte(store):
    reader, ids = store
    sid = ids[0]
    error = b'{"conflictingRequest": {"code": 409, "message": "Cannot \'os-stop\' instance"}}'
    nova = Upstream200({("POST", "/v2.1/servers/%s/action" % sid): (409, error)})

    async def scenario():
        app = App(reader, upstream=Upstream(await nova.start()), commands="upstream")
        stop = await _answer(app, _request("/v2.1/servers/%s/action" % sid, "POST",
                                           b'{"os-stop": null}'))
        show = await _answer(app, _request("/v2.1/servers/%s" % sid))
        return stop, show

    stop, show = run(scenario())
    status, headers, body = _split(stop)
    assert (status, body) == (409, error)
    assert headers[b"x-openstack-request-id"] == b"req-nova"
    assert nova.seen[0][2] == b'{"os-stop": null}'
    assert _split(show)[0] == 200                 # reads stay local
    assert len(nova.seen) == 1


def test_front_mode_rename_is_in_the_store_before_the_answer(store, tmp_path):
    reader, ids = store
    sid = ids[0]
    renamed = {"server": {"id": sid, "name": "from-nova", "updated": "2030-01-01T00:00:00Z",
                          "accessIPv4": "", "accessIPv6": ""}}
    tags = {"tags": ["a", "b"]}
    nova = Upstream200({("PUT", "/v2.1/servers/%s" % sid): (200, json.dumps(renamed).encode()),
                        ("PUT", "/v2.1/servers/%s/tags" % sid): (200, json.dumps(tags).encode()),
                        ("DELETE", "/v2.1/servers/%s/metadata/gone" % sid): (204, b"")})
    runtime.configure(front=True)

    async def scenario():
        app = App(reader, upstream=Upstream(await nova.start()), commands="upstream")
        await _answer(app, _request("/v2.1/servers/" + sid, "PUT", b'{"server": {}}'))
        await _answer(app, _request("/v2.1/servers/%s/tags" % sid, "PUT", b'{"tags": []}'))
        req = _request("/v2.1/servers/" + sid)
        req.mv_header = "compute 2.26"
        return await _answer(app, req)

    try:
        show = run(scenario())
    finally:
        runtime.configure(front=False)
    status, _, body = _split(show)
    assert status == 200
    server = json.loads(body)["server"]
    assert server["name"] == "from-nova"
    assert server["tags"] == ["a", "b"]
    assert [line for line, _, _ in nova.seen] == [
        "PUT /v2.1/servers/%s HTTP/1.1" % sid, "PUT /v2.1/servers/%s/tags HTTP/1.1" % sid]


@pytest.mark.parametrize("argv, message", [
    (["--commands", "nova", "--upstream", "http://127.0.0.1:1"], "not implemented yet"),
    (["--commands", "upstream"], "needs --upstream"),
])
def test_commands_option_refuses_what_it_cannot_do(tmp_path, caplog, argv, message):
    code = cli_main(["serve", "--bind", "127.0.0.1:0", "--data-dir", str(tmp_path)] + argv)
    assert code == 2
    assert message in caplog.text
