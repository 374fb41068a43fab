"""Property: for a random store and a random list query, following the pages (limit + marker,
as a client follows servers_links) returns exactly the brute-force answer -- every server that
the query's predicates accept, in the query's order, each exactly once.

The brute force reads every query row of the store and applies the Spec's predicates and order
directly; the pages come from the real App (index choice, walks, tie groups, marker positioning).
Random stores have ties on created_at/updated_at/names, upper/lower-case names and tags,
soft-deleted and deleted servers, several projects, and later patches (indexes must follow).
"""
from __future__ import annotations

import json
import shutil
import tempfile
from urllib.parse import urlencode

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastnova.api.app import App, Request
from fastnova.api.context import noauth
from fastnova.api.query import Query
from fastnova.query import params, plan
from fastnova.query.sort import Order
from fastnova.store import layout as L
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter

PROJECTS = ["pa", "pb", "pc"]
VM_STATES = ["active", "stopped", "building", "error", "soft-delete", "paused"]
TASKS = [None, None, "rebooting", "resize_prep"]
NAMES = ["web", "Web", "db", "web-1", "DB-2", "cache", "web "]
TAGS = ["prod", "PROD", "blue", "green"]
HOSTS = [None, "c1", "c2", "C1"]


@st.composite
def servers(draw):
    count = draw(st.integers(0, 30))
    out = []
    for i in range(count):
        minute = draw(st.integers(0, 6))            # few values: many created_at ties
        out.append({
            "id": "00000000-0000-4000-8000-%012d" % draw(st.integers(0, 10 ** 6)),
            "seq": i + 1, "version": 1,
            "name": draw(st.sampled_from(NAMES)),
            "project_id": draw(st.sampled_from(PROJECTS)), "user_id": "u",
            "created_at": "2026-01-01T00:%02d:00.000000" % minute,
            "updated_at": "2026-01-01T01:%02d:00.000000" % draw(st.integers(0, 6)),
            "flavor": {"id": draw(st.sampled_from(["1", "2"]))},
            "vm_state": draw(st.sampled_from(VM_STATES)),
            "task_state": draw(st.sampled_from(TASKS)),
            "power_state": draw(st.integers(0, 4)),
            "host": draw(st.sampled_from(HOSTS)),
            "locked": draw(st.booleans()),
            "tags": draw(st.lists(st.sampled_from(TAGS), max_size=3, unique=True)),
        })
    ops = draw(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["delete", "patch"])),
                        max_size=6))
    return out, ops


_VALUES = {
    "status": st.sampled_from(["ACTIVE", "SHUTOFF", "BUILD", "REBOOT", "SOFT_DELETED",
                               "DELETED", "ERROR"]),
    "vm_state": st.sampled_from(["active", "STOPPED", "error"]),
    "name": st.sampled_from(["web", "^db", "b-[12]", "WEB", "e.?b", "(web|cache)$"]),
    "tags": st.sampled_from(["prod", "blue", "prod,blue", "green,PROD"]),
    "tags-any": st.sampled_from(["prod", "blue,green", "PROD,nothing"]),
    "not-tags": st.sampled_from(["prod", "blue,green"]),
    "not-tags-any": st.sampled_from(["prod", "blue,green"]),
    "changes-since": st.sampled_from(["2026-01-01T01:02:00Z", "2026-01-01T01:05:30Z"]),
    "changes-before": st.sampled_from(["2026-01-01T01:03:00Z", "2026-01-01T01:00:00Z"]),
    "deleted": st.sampled_from(["true", "false"]),
    "soft_deleted": st.sampled_from(["1", ""]),
    "host": st.sampled_from(["c1", "c2"]),
    "locked": st.sampled_from(["true", "false"]),
    "flavor": st.sampled_from(["1", "2"]),
    "all_tenants": st.sampled_from(["", "1"]),
    "project_id": st.sampled_from(PROJECTS),
    "uuid": st.just("00000000-0000-4000-8000-000000000007"),
}


@st.composite
def queries(draw):
    """Zero to three filters (more would nearly always select nothing)."""
    keys = draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=3, unique=True))
    return {key: draw(_VALUES[key]) for key in keys}
SORTS = st.lists(st.tuples(st.sampled_from(["created_at", "updated_at", "display_name", "host",
                                            "vm_state", "uuid", "locked", "power_state"]),
                           st.sampled_from(["asc", "desc", None])), max_size=3, unique_by=lambda
                 t: t[0])


def _build(path, recs, ops):
    writer = StoreWriter.open(path, sync=False)
    with writer.batch() as b:
        b.put_flavor({"id": "1", "name": "one"})
        b.put_flavor({"id": "2", "name": "two"})
        for rec in recs:
            b.upsert_server(rec)
    with writer.batch() as b:
        for index, op in ops:
            if not recs:
                break
            rec = recs[index % len(recs)]
            if op == "delete":
                b.delete_server(rec["id"], 10 + index)
            else:
                b.patch_server(rec["id"], 10 + index, {"vm_state": "active", "tags": ["blue"],
                                                      "name": "Web",
                                                      "updated_at": "2026-01-01T01:04:00"})
    writer.close()


def _pages(app, token, mv, query, limit):
    seen, marker = [], None
    for _ in range(200):
        q = dict(query, limit=str(limit))
        if marker:
            q["marker"] = marker
        raw = app.handle(Request(method="GET", path="/v2.1/servers", token=token,
                                 query=_encode(q), mv_header="compute " + mv))
        head, _sep, body = raw.partition(b"\r\n\r\n")
        doc = json.loads(body)
        if not head.startswith(b"HTTP/1.1 200"):
            return None, doc
        page = [s["id"] for s in doc["servers"]]
        seen.extend(page)
        if len(page) < limit:
            return seen, doc
        assert "servers_links" in doc
        marker = page[-1]
    raise AssertionError("pagination did not end")


def _encode(q):
    pairs = []
    for key, value in q.items():
        if key == "sort":
            for skey, sdir in value:
                pairs.append(("sort_key", skey))
            for skey, sdir in value:
                if sdir:
                    pairs.append(("sort_dir", sdir))
        else:
            pairs.append((key, value))
    return urlencode(pairs)


def _brute(reader, token, mv, query):
    ctx = noauth(token)
    q = Query(_encode(query))
    minor = int(mv.split(".")[1])
    with reader.begin() as txn:
        spec = params.parse(q, minor, ctx, False, flavour=reader.db_flavour,
                            flavor_exists=lambda f: reader.flavor_exists(txn, f))
        if spec.empty:
            return []
        rows = [json.loads(v) for _k, v in txn.cursor(db=reader.dbs[L.DB_QROWS])]
    rows = [r for r in rows
            if (spec.scope is None or r["project_id"] == spec.scope)
            and all(p.test(r) for p in spec.predicates)]
    return [r["uuid"] for r in Order(spec.order, spec.flavour).sort(rows)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(store=servers(), query=queries(), sort=SORTS, limit=st.integers(1, 7),
       admin=st.booleans(), flavour=st.sampled_from(["mysql", "postgresql"]),
       budget=st.sampled_from([0, 3, plan.ENUM_BUDGET]))
def test_pages_equal_brute_force(store, query, sort, limit, admin, flavour, budget):
    """``budget`` shrinks the planner's enumeration budget so that small stores also take the
    ordered-walk-with-checks and changes-since-overflow paths."""
    recs, ops = store
    saved, plan.ENUM_BUDGET = plan.ENUM_BUDGET, budget
    path = tempfile.mkdtemp(prefix="fastnova-qprop-")
    try:
        _build(path, recs, ops)
        reader = StoreReader.open(path, db_flavour=flavour)
        app = App(reader)
        if sort:
            query = dict(query, sort=sort)
        token = "admin:pa" if admin else "alice:pa"
        got, doc = _pages(app, token, "2.80", query, limit)
        if got is None:                                  # an error answer: nova's, for both
            try:
                _brute(reader, token, "2.80", query)
            except Exception as exc:                     # the same ApiError
                assert json.loads(exc.body) == doc
                return
            raise AssertionError("App failed where the brute force did not: %r" % doc)
        want = _brute(reader, token, "2.80", query)
        assert len(got) == len(set(got)), "a server was listed twice"
        assert got == want
        reader.close()
    finally:
        plan.ENUM_BUDGET = saved
        shutil.rmtree(path, ignore_errors=True)
