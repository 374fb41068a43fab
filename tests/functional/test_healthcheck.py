"""/healthcheck as oslo.middleware's healthcheck answers it (fastnova/api/health.py)."""
import asyncio
import http.client
import json

from fastnova import config
from fastnova.api.app import App, Request
from fastnova.store.reader import StoreReader
from tests.services import PG_URL as PG_DSN
from tests.server import running_server


def _head(srv, path):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    try:
        conn.request("HEAD", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_plain_json_detailed_head_and_the_disable_file(tmp_path):
    disable = tmp_path / "healthcheck_disable"
    with running_server(workers=1, demo=5,
                        extra_args=("--healthcheck-disable-file", str(disable))) as srv:
        status, headers, body = srv.get("/healthcheck", token=None)
        assert (status, body) == (200, b"OK")
        assert headers["content-type"] == "text/plain; charset=UTF-8"
        assert _head(srv, "/healthcheck") == (204, b"")

        status, _, body = srv.get("/healthcheck", token="demo:p1",
                                  headers={"Accept": "application/json"})
        assert status == 200 and json.loads(body) == {"detailed": False, "reasons": ["OK"]}

        status, _, body = srv.get("/healthcheck", headers={"Accept": "application/json"})
        doc = json.loads(body)                       # admin:admin: the detailed form
        assert status == 200 and doc["detailed"] is True
        kinds = {r["class"]: r for r in doc["reasons"]}
        assert set(kinds) == {"DisableByFile", "Store", "Feed", "Outbox"}
        assert all(r["reason"] == "OK" for r in doc["reasons"])
        assert kinds["Store"]["details"].startswith("5 servers")
        assert kinds["Outbox"]["details"] == "0 casts waiting"
        assert {"python_version", "platform", "gc", "now"} <= set(doc)

        disable.write_text("")
        status, _, body = srv.get("/healthcheck", token=None)
        assert (status, body) == (503, b"DISABLED BY FILE")
        assert _head(srv, "/healthcheck")[0] == 503
        disable.unlink()
        assert srv.get("/healthcheck", token=None)[:3:2] == (200, b"OK")
        # The API itself is untouched by the check.
        assert srv.get("/v2.1/servers")[0] == 200


def _app(tmp_path, **values):
    from fastnova.serve import fill_demo
    assert fill_demo(str(tmp_path), 3) == 0
    app = App(StoreReader.open(str(tmp_path)))
    app.health.settings = config.current().replace(**values)
    return app


def _ask(app, token=None):
    answer = app.health.answer(Request(path="/healthcheck", token=token,
                                       accept="application/json"))
    if not isinstance(answer, tuple):
        answer = asyncio.run(answer)
    status, body, _ctype, _extra = answer
    return status, json.loads(body)


def test_outbox_bound_and_database(tmp_path):
    app = _app(tmp_path, health_outbox_depth=-1)
    status, doc = _ask(app, token="admin:admin")
    assert status == 503
    assert [r["reason"] for r in doc["reasons"] if r["class"] == "Outbox"] == ["outbox too deep"]
    app.health.settings = config.current().replace(database=PG_DSN)
    status, doc = _ask(app, token="admin:admin")
    assert status == 200
    assert {"reason": "OK", "details": "SELECT 1 answered", "class": "Database"} in doc["reasons"]
    app.health = type(app.health)(app, config.current().replace(
        database="postgresql://root@127.0.0.1:1/nothing"))
    status, doc = _ask(app)
    assert status == 503 and doc == {"detailed": False, "reasons": ["database unreachable"]}
    app.reader.close()


def test_the_feed_check_reads_the_feeds_status(tmp_path):
    from cellfeed.status import StatusWriter
    app = _app(tmp_path, amqp="amqp://guest:guest@127.0.0.1:5672/%2F", health_feed_lag=30.0)
    status, doc = _ask(app)
    assert status == 503 and doc["reasons"] == ["feed absent"]
    writer = StatusWriter(str(tmp_path))
    try:
        writer.write("running", journal_lsn=10, applied_lsn=10, lag_seconds=0.01,
                     consuming=True)
        assert _ask(app) == (200, {"detailed": False, "reasons": ["OK"]})
        writer.write("running", journal_lsn=900, applied_lsn=10, lag_seconds=45.0,
                     consuming=True)
        status, doc = _ask(app, token="admin:admin")
        feed = [r for r in doc["reasons"] if r["class"] == "Feed"][0]
        assert status == 503 and feed["reason"] == "feed lagging"
        assert "890 entries" in feed["details"]
        writer.write("failed", reason="store: no space left")
        status, doc = _ask(app)
        assert status == 503 and doc["reasons"] == ["feed down"]
    finally:
        writer.close()
        app.reader.close()
