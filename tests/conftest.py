"""Fixtures for the API tests: the real forked server over HTTP on loopback, and nova's samples.

The API tests start ``fastnova serve`` as a subprocess (one per module: the fixtures are
module-scoped) and talk to it with http.client, openstacksdk and python-novaclient, as a client of
nova-api would.  Expected shapes come from nova's own API samples (../shared/nova-api-samples).
"""
from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fastnova import demo
from tests.server import running_server
from tests.cloud.keystone import keystone  # noqa: F401  (session fixture: a real keystone)
from tests.cloud.fixtures import nova_cloud, terminal_summary  # noqa: F401 (session fixture)

REPO = Path(__file__).resolve().parent.parent
from tests.samples import SAMPLES  # noqa: E402

PROJECT_A = demo.PROJECTS[0][0]
PROJECT_B = demo.PROJECTS[1][0]
MEMBER_A = "demo:" + PROJECT_A
MEMBER_B = "bob:" + PROJECT_B
ADMIN = "admin:" + PROJECT_A
NOVA_MAX = "2.104"
DEMO_COUNT = 300
REQUEST_ID_RE = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Resp:
    """One answer: status, headers (http.client.HTTPMessage) and the body."""

    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name: str):
        """The header's value as a client sees it (repeated headers joined by ', ')."""
        values = self.headers.get_all(name)
        return None if values is None else ", ".join(values)

    def __repr__(self):
        return "<Resp %d %r>" % (self.status, self.body[:300])


class Api:
    """A running server: its address and a one-request-per-connection HTTP helper."""

    def __init__(self, port: int, data_dir: str, log: str):
        self.host = "127.0.0.1"
        self.port = port
        self.data_dir = data_dir
        self.log = log

    @property
    def base(self) -> str:
        return "http://%s:%d" % (self.host, self.port)

    def request(self, method: str, path: str, token: str | None = MEMBER_A,
                headers: dict | None = None, host: str | None = None) -> Resp:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            hdrs = {}
            if token is not None:
                hdrs["X-Auth-Token"] = token
            hdrs.update(headers or {})
            if host is not None:
                conn.putrequest(method, path, skip_host=True)
                conn.putheader("Host", host)
                for k, v in hdrs.items():
                    conn.putheader(k, v)
                conn.endheaders()
            else:
                conn.request(method, path, headers=hdrs)
            resp = conn.getresponse()
            return Resp(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, token: str | None = MEMBER_A, version: str | None = None,
            headers: dict | None = None, host: str | None = None) -> Resp:
        hdrs = dict(headers or {})
        if version is not None:
            hdrs["OpenStack-API-Version"] = "compute " + version
        return self.request("GET", path, token=token, headers=hdrs, host=host)

    def get_json(self, path: str, token: str | None = MEMBER_A, version: str | None = None,
                 **kw):
        resp = self.get(path, token=token, version=version, **kw)
        assert resp.status == 200, resp
        return resp.json()


@contextlib.contextmanager
def start_server(demo_count: int = 300, workers: int = 2, extra=()):
    """The real ``fastnova serve`` (tests/server.py's running_server), wrapped in an Api."""
    with running_server(workers=workers, demo=demo_count, extra_args=extra) as srv:
        yield Api(srv.port, srv.data_dir, srv.log_path)


def run_store_script(data_dir: str, script: str):
    """Change the store from another process, as the cellfeed does while workers serve."""
    code = ("import sys\nfrom fastnova.store.writer import StoreWriter\n"
            "w = StoreWriter.open(sys.argv[1])\n" + script + "\nw.close()\n")
    subprocess.run([sys.executable, "-c", code, data_dir], cwd=REPO, check=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO)))


@pytest.fixture(scope="module")
def api():
    """A server with DEMO_COUNT demo servers (one per module)."""
    with start_server(demo_count=DEMO_COUNT) as srv:
        yield srv


# -- demo data, as the tests need to know it ---------------------------------------------------


def demo_servers(count: int = DEMO_COUNT) -> list[dict]:
    return [demo.server(i) for i in range(count)]


def nova_order(servers: list[dict]) -> list[str]:
    """nova's default order: created_at desc, then id desc."""
    return [s["id"] for s in sorted(servers, key=lambda s: (s["created_at"], s["id"]),
                                    reverse=True)]


# -- samples -------------------------------------------------------------------------------------

def minor(version: str) -> int:
    return int(NOVA_MAX.split(".")[1]) if version == "latest" else int(version.split(".")[1])


def sample(directory: str, name: str, version: str = "2.1", skip=()) -> dict:
    """nova's sample ``name`` for ``version``: the highest vX.Y folder <= version holding it."""
    base = SAMPLES / directory
    want = minor(version)
    best, best_minor = base / name, 1
    for sub in base.iterdir():
        m = re.match(r"^v2\.(\d+)$", sub.name)
        if m and best_minor < int(m.group(1)) <= want and sub.name not in skip \
                and (sub / name).exists():
            best, best_minor = sub / name, int(m.group(1))
    return json.loads(best.read_text())


def _kind(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return bool
    if isinstance(value, (int, float)):
        return float
    return type(value)


def assert_same_shape(ours, theirs, path="$", ignore_values=False):
    """Same types and, for objects, the same nesting (keys compared by the caller)."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        for key in set(ours) & set(theirs):
            assert_same_shape(ours[key], theirs[key], "%s.%s" % (path, key))
        return
    if isinstance(theirs, list) and isinstance(ours, list):
        if theirs and ours:
            for item in ours:
                if isinstance(theirs[0], dict) and isinstance(item, dict):
                    assert set(item) == set(theirs[0]), (path, set(item) ^ set(theirs[0]))
                assert_same_shape(item, theirs[0], path + "[]")
        return
    a, b = _kind(ours), _kind(theirs)
    # A null in one and a value in the other is data, not shape (key_name, description ...).
    if a is not None and b is not None:
        assert a is b, "%s: ours %r (%s), nova's sample %r (%s)" % (path, ours, a, theirs, b)


def check_request_ids(resp: Resp):
    """nova's request-id pair: both present, equal, req-<uuid4>."""
    rid = resp.header("x-openstack-request-id")
    assert rid is not None and REQUEST_ID_RE.match(rid), resp.headers
    assert resp.header("x-compute-request-id") == rid
    return rid


# One 1,200-server store (more than the 1,000 max limit, so pages and next links are exercised)
# shared by the pagination and client tests: one server for both modules.
BIG_COUNT = 1200
BIG_RECS = demo_servers(BIG_COUNT)
BIG_ALL = nova_order(BIG_RECS)
BIG_OWN = nova_order([r for r in BIG_RECS if r["project_id"] == PROJECT_A])


@pytest.fixture(scope="session")
def big_api():
    with start_server(demo_count=BIG_COUNT) as srv:
        yield srv


def pytest_terminal_summary(terminalreporter):
    terminal_summary(terminalreporter)      # the nova cloud's start-up times, when it ran
