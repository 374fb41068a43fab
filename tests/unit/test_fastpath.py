"""The compiled GET /servers/{id} fast path answers exactly as the general path does, or not at
all (None: the general path answers).  Compared byte for byte, request id and Date aside."""
import os
import re

import pytest

from fastnova import demo
from fastnova.api.app import App, Request
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter
from tests.server import REPO

try:
    from fastnova._ext._fastpath import FastShow
except ImportError:  # pragma: no cover - exercised when the build is missing
    FastShow = None
    if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
        raise

pytestmark = pytest.mark.skipif(FastShow is None, reason="compiled fast path not built")
PROJECT, OTHER = demo.PROJECTS[0][0], demo.PROJECTS[1][0]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("fastpath"))
    writer = StoreWriter.open(path, sync=False)
    demo.fill(writer, 12)
    with writer.batch() as b:
        b.delete_server(demo.server(5)["id"], 99)
    writer.close()
    reader = StoreReader.open(path)
    yield reader
    reader.close()


def _normal(raw: bytes) -> bytes:
    raw = re.sub(rb"req-[0-9a-f-]{36}", b"req-X", raw)
    return re.sub(rb"Date: [^\r]*\r\n", b"Date: X\r\n", raw)


def _requests():
    own, other, deleted = (demo.server(i)["id"] for i in (0, 1, 5))
    tokens = ["demo:" + PROJECT, "bob:" + OTHER, "admin:admin", "admin:e", "nobody", None]
    headers = [(None, None), ("compute 2.1", None), ("compute latest", None),
               ("compute 2.47", None), (None, "2.90"), ("compute 2.999", None),
               ("compute x", None)]
    hosts = ["api.example.com:8774", None, "bad host\"", "[::1]:8774"]
    paths = ["/v2.1/servers/" + own, "/v2.1/servers/" + other, "/v2.1/servers/" + deleted,
             "/v2.1/servers/" + "0" * 36, "/v2/servers/" + own, "/v2.1/servers/detail",
             "/v2.1/%s/servers/%s" % (PROJECT, own)]
    for token in tokens:
        for mv_header, mv_legacy in headers:
            for host in hosts:
                for path in paths:
                    for query, keep in (("", True), ("", False), ("x=1", True)):
                        yield Request(method="GET", path=path, query=query, host=host,
                                      token=token, mv_header=mv_header, mv_legacy=mv_legacy,
                                      keep_alive=keep)


@pytest.mark.parametrize("mapped", [True, False], ids=["in-place", "py-lmdb"])
def test_fast_path_is_taken_and_matches_the_general_path(store, mapped):
    app = App(store)
    assert app.fast is not None
    app.fast = FastShow(app, mapped=mapped)
    taken = 0
    for req in _requests():
        app._handle(req)                  # the general path fills the memos first
        slow = app._handle(req)
        fast = app.fast.answer(req)
        if fast is None:
            continue
        taken += 1
        assert _normal(fast) == _normal(slow), (req.path, req.token, req.mv_header)
        assert fast.startswith(b"HTTP/1.1 200 OK\r\n")
    # own and foreign servers for admins, own for members, across versions, hosts and keep-alive
    assert taken >= 100
    if mapped:       # the blobs were read in place, from one snapshot, never through py-lmdb
        assert app.fast.mapped_reads == (1, 0)
    else:
        assert app.fast.mapped_reads is None


def test_fast_path_declines_what_it_does_not_answer(store):
    app = App(store)
    own = demo.server(0)["id"]
    other = demo.server(1)["id"]
    member = "demo:" + PROJECT
    warm = Request(path="/v2.1/servers/" + own, token=member, host="h")
    app._handle(warm)
    assert app.fast.answer(warm) is not None
    for req in (Request(path="/v2.1/servers/" + other, token=member, host="h"),   # foreign
                Request(path="/v2.1/servers/" + own, token=member, host="h", query="a=b"),
                Request(path="/v2.1/servers/" + own, token="new:" + PROJECT, host="h"),
                Request(path="/v2.1/servers/" + own, token=member, host="other"),
                Request(path="/v2.1/servers/" + own, token=member, host="h",
                        mv_header="compute 2.5"),
                Request(path="/v2.1/servers/" + own[:-1] + "%", token=member, host="h"),
                Request(method="PUT", path="/v2.1/servers/" + own, token=member, host="h")):
        assert app.fast.answer(req) is None


def test_fast_path_reads_a_write_made_through_the_environment_it_shares(tmp_path):
    """A worker opens its store once (fastnova.store.env) and its commands write through that
    environment (fastnova.commands.runtime hands it to StoreWriter): the fast path, attached to
    it when the app was made, reads the write at once, as the general path does."""
    from fastnova.store.env import open_env

    writer = StoreWriter.open(str(tmp_path), sync=False)
    demo.fill(writer, 3)
    writer.close()
    reader = StoreReader(open_env(str(tmp_path), sync=False, create=False))
    app = App(reader)
    uuid = demo.server(0)["id"]
    req = Request(path="/v2.1/servers/" + uuid, token="demo:" + PROJECT, host="h")
    app._handle(req)
    before = app.fast.answer(req)
    assert before is not None
    shared = StoreWriter(reader.env)
    with shared.batch() as b:
        version = b.get_record(uuid)["version"]
        assert b.patch_server(uuid, version + 1, {"name": "renamed"})
    assert _normal(app.fast.answer(req)) == _normal(app._handle(req))
    assert b'"renamed"' in app.fast.answer(req)
    reader.close()


# Another process's writer (LMDB allows one open of an environment per process): one change per
# line on stdin, "ok" on stdout once it is committed.
_WRITER = """
import sys
from fastnova import demo
from fastnova.store.writer import StoreWriter
from tests.server import REPO
writer = StoreWriter.open(sys.argv[1], sync=False)
for line in sys.stdin:
    op, arg = line.split()
    with writer.batch() as b:
        if op == "rename":
            doc = demo.server(0)
            b.upsert_server(dict(doc, name="renamed-" + arg, version=100 + int(arg)))
        else:
            b.delete_server(demo.server(int(arg))["id"], 999)
    print("ok", flush=True)
writer.close()
"""


def test_fast_path_sees_every_commit_and_lets_go_of_old_snapshots(tmp_path):
    """Reads in place hold a snapshot between requests; a commit by another process must be
    visible to the very next request, and an idle worker's tick must release the snapshot."""
    import subprocess
    import sys

    writer = StoreWriter.open(str(tmp_path), sync=False)
    demo.fill(writer, 3)
    writer.close()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path)], text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=REPO)

    def change(op, arg):
        proc.stdin.write("%s %s\n" % (op, arg))
        proc.stdin.flush()
        assert proc.stdout.readline() == "ok\n"

    reader = StoreReader.open(str(tmp_path))
    app = App(reader)
    req = Request(path="/v2.1/servers/" + demo.server(0)["id"], token="demo:" + PROJECT,
                  host="h")
    try:
        app._handle(req)
        assert app.fast.answer(req) is not None
        for i in range(5):
            change("rename", i)
            answer = app.fast.answer(req)
            assert ('"name":"renamed-%d"' % i).encode() in answer
            assert _normal(answer) == _normal(app._handle(req))
        renewals, failures = app.fast.mapped_reads
        assert renewals == 6 and failures == 0      # one snapshot per commit seen, no fallback
        change("delete", 0)
        assert app.fast.answer(req) is None         # deleted: the general path answers (404)
        assert app.fast.mapped_reads[0] == 7
        held = app.fast.held_snapshot
        app.fast.release_if_stale()                 # fresh: the snapshot is kept
        assert app.fast.held_snapshot == held
        assert app.fast.answer(req) is None and app.fast.mapped_reads[0] == 7
        change("delete", 1)
        app.fast.release_if_stale()                 # stale: let go, taken again on demand
        assert app.fast.held_snapshot is None and app.fast.mapped_reads[0] == 7
        assert app.fast.answer(req) is None and app.fast.mapped_reads[0] == 8
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        reader.close()
