"""nova's GET /servers query semantics, one row per behaviour, against a real LMDB store and the
real App called in-process.

Each case: (query, token, microversion) -> expected status and, for 200, the set of server
names returned (or, for errors, the fault message).  The store is small and hand-made so that
every expectation can be checked by reading the table.
"""
from __future__ import annotations

import json

import pytest

from fastnova.api.app import App, Request
from fastnova.store.reader import StoreReader
from fastnova.store.writer import StoreWriter

P1, P2 = "p1", "p2"
ADMIN, MEMBER, OTHER = "admin:admin", "alice:" + P1, "bob:" + P2
T0 = "2026-01-01T00:00:%02d.000000"
# Every live, not soft-deleted server of P1 in nova's default order (created_at desc).
ALL_P1 = ["web|pipe", "err-1", "reboot-1", "build-1", "db-1", "Web-2", "web-1"]


def _server(i, name, project=P1, **kw):
    rec = {"id": "00000000-0000-4000-8000-%012d" % i, "seq": i, "version": 1, "name": name,
           "project_id": project, "user_id": "u-" + project, "created_at": T0 % i,
           "updated_at": T0 % (i + 30), "flavor": {"id": "1", "name": "m1.tiny"},
           "vm_state": "active", "power_state": 1}
    rec.update(kw)
    return rec


SERVERS = [
    _server(1, "web-1", tags=["prod", "blue"], host="c1", node="c1.example",
            addresses={"net": [{"addr": "10.0.0.1", "version": 4, "type": "fixed"},
                               {"addr": "172.24.0.1", "version": 4, "type": "floating"}]}),
    _server(2, "Web-2", tags=["prod"], host="c2", key_name="k1", locked=True,
            addresses={"net": [{"addr": "10.0.0.12", "version": 4, "type": "fixed"},
                               {"addr": "fd00::2", "version": 6, "type": "fixed"}]}),
    _server(3, "db-1", vm_state="stopped", power_state=4, tags=["blue"], host="c1",
            availability_zone="az1", config_drive="True", description="the db"),
    _server(4, "build-1", vm_state="building", task_state="spawning", power_state=0),
    _server(5, "reboot-1", task_state="rebooting", host="c2"),
    _server(6, "err-1", vm_state="error", image=None),
    _server(7, "soft-1", vm_state="soft-delete"),
    _server(8, "gone-1"),                           # deleted below
    _server(9, "other-1", project=P2, tags=["prod"], host="c3"),
    _server(10, "web|pipe", image={"id": "img-2", "properties": {}}),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("qstore"))
    writer = StoreWriter.open(path, sync=False)
    with writer.batch() as b:
        b.put_flavor({"id": "1", "name": "m1.tiny", "vcpus": 1, "ram": 512, "disk": 1})
        for rec in SERVERS:
            b.upsert_server(rec)
        b.delete_server(SERVERS[7]["id"], 2, deleted_at="2026-01-01T00:01:00.000000")
    writer.close()
    return App(StoreReader.open(path))


def call(app, query, token=ADMIN, mv="2.80", detail=False):
    path = "/v2.1/servers/detail" if detail else "/v2.1/servers"
    raw = app.handle(Request(method="GET", path=path, query=query, token=token,
                             mv_header="compute " + mv))
    head, _sep, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def names(body):
    return [s["name"] for s in body["servers"]]


# (query, token, microversion, expected names in order, or (status, message fragment))
CASES = [
    # default order: created_at desc; scope is the caller's project without all_tenants
    ("", MEMBER, "2.80", ALL_P1),
    ("", OTHER, "2.80", ["other-1"]),
    ("", ADMIN, "2.80", []),
    ("all_tenants=1&tenant_id=" + P2, ADMIN, "2.80", ["other-1"]),
    ("all_tenants=1&project_id=" + P2, ADMIN, "2.80", ["other-1"]),
    ("all_tenants", ADMIN, "2.80", ["web|pipe", "other-1"] + ALL_P1[1:]),
    ("all_tenants=0", ADMIN, "2.80", []),
    ("all_tenants=yes", MEMBER, "2.80", (403, "get_all_tenants")),
    ("all_tenants=maybe", MEMBER, "2.80", (400, "Unrecognized value 'maybe'")),
    ("tenant_id=" + P2, MEMBER, "2.80", ALL_P1),
    # status: ACTIVE includes task-state overrides (REBOOT), excludes soft-deleted
    ("status=ACTIVE", MEMBER, "2.80", ["web|pipe", "reboot-1", "Web-2", "web-1"]),
    ("status=active&status=SHUTOFF", MEMBER, "2.80",
     ["web|pipe", "reboot-1", "db-1", "Web-2", "web-1"]),
    ("status=REBOOT", MEMBER, "2.80", ["reboot-1"]),
    ("status=BUILD", MEMBER, "2.80", ["build-1"]),
    ("status=SOFT_DELETED", MEMBER, "2.80", []),
    ("status=SOFT_DELETED&soft_deleted=1&all_tenants", ADMIN, "2.80", ["soft-1"]),
    ("status=bogus", MEMBER, "2.38", (400, "Invalid status value")),
    ("status=bogus", MEMBER, "2.37", []),
    ("status=DELETED", MEMBER, "2.80", (403, "Only administrators may list deleted")),
    ("status=DELETED&all_tenants", ADMIN, "2.80", ["gone-1"]),
    # deleted / changes-since / changes-before
    ("deleted=true&all_tenants", ADMIN, "2.80", ["gone-1", "soft-1"]),
    ("deleted=true&soft_deleted=&all_tenants", ADMIN, "2.80", ["gone-1"]),
    ("deleted=true", MEMBER, "2.80", ALL_P1),
    ("changes-since=2026-01-01T00:00:37Z", MEMBER, "2.80",
     ["web|pipe", "gone-1", "soft-1"]),
    ("changes-since=2026-01-01T00:00:37Z&changes-before=2026-01-01T00:00:40Z", MEMBER, "2.80",
     ["web|pipe", "soft-1"]),
    ("changes-before=2026-01-01T00:00:32Z", MEMBER, "2.80", ["Web-2", "web-1"]),
    ("changes-before=2026-01-01T00:00:32Z", MEMBER, "2.65", ALL_P1),   # unknown before 2.66
    ("changes-since=2026-01-02T00:00:00Z&changes-before=2026-01-01T00:00:00Z", MEMBER, "2.80",
     (400, "changes-since must be less than or equal to changes-before")),
    ("changes-since=yesterday", MEMBER, "2.80", (400, "'yesterday' is not a 'date-time'")),
    # name: MySQL REGEXP, case-insensitive, '|' escaped
    ("name=web", MEMBER, "2.80", ["web|pipe", "Web-2", "web-1"]),
    ("name=^web-[0-9]$", MEMBER, "2.80", ["Web-2", "web-1"]),
    ("name=web|db", MEMBER, "2.80", []),
    ("name=b|p", MEMBER, "2.80", ["web|pipe"]),
    ("name=(a+)+$", MEMBER, "2.80", []),
    ("name=", MEMBER, "2.80", (400, "'' is not a 'regex'")),
    ("name=[", MEMBER, "2.80", (400, "'[' is not a 'regex'")),
    ("name=(a)\\1", MEMBER, "2.80", (400, "does not support this one")),
    # tags (2.26+)
    ("tags=prod", MEMBER, "2.80", ["Web-2", "web-1"]),
    ("tags=PROD,blue", MEMBER, "2.80", ["web-1"]),
    ("tags-any=prod,blue", MEMBER, "2.80", ["db-1", "Web-2", "web-1"]),
    ("not-tags=prod,blue", MEMBER, "2.80", ALL_P1[:-1]),
    ("not-tags-any=prod,blue", MEMBER, "2.80", ["web|pipe", "err-1", "reboot-1", "build-1"]),
    ("tags=prod", MEMBER, "2.25", ALL_P1),
    ("tags=prod&all_tenants", ADMIN, "2.80", ["other-1", "Web-2", "web-1"]),
    # admin-only filters are dropped for members (before 2.83 for the newer ones)
    ("host=c1", MEMBER, "2.80", ALL_P1),
    ("host=c1&all_tenants", ADMIN, "2.80", ["db-1", "web-1"]),
    ("host=C1&all_tenants", ADMIN, "2.80", ["db-1", "web-1"]),
    ("node=example&all_tenants", ADMIN, "2.80", ["web-1"]),
    ("vm_state=stopped", MEMBER, "2.82", ALL_P1),
    ("vm_state=stopped", MEMBER, "2.83", ["db-1"]),
    ("power_state=4", MEMBER, "2.83", ["db-1"]),
    ("task_state=rebooting", MEMBER, "2.83", ["reboot-1"]),
    ("availability_zone=az", MEMBER, "2.83", ["db-1"]),
    ("config_drive=true", MEMBER, "2.83", ["db-1"]),
    ("key_name=k", MEMBER, "2.83", ["Web-2"]),
    ("user_id=u-p1", MEMBER, "2.83", ALL_P1),
    ("user_id=nobody", MEMBER, "2.83", []),
    ("created_at=00:00:0[12]", MEMBER, "2.83", ["Web-2", "web-1"]),
    ("locked=true", MEMBER, "2.73", ["Web-2"]),
    ("locked=0", MEMBER, "2.73", ["web|pipe", "err-1", "reboot-1", "build-1", "db-1", "web-1"]),
    ("locked=perhaps", MEMBER, "2.73", (400, "Unrecognized value 'perhaps'")),
    ("description=db", ADMIN + "", "2.80", []),   # admin without all_tenants: own project only
    ("description=db&all_tenants", ADMIN, "2.80",   # nova's DB has no 'description' column
     ["web|pipe", "other-1"] + ALL_P1[1:]),
    ("display_description=DB&all_tenants", ADMIN, "2.80", ["db-1"]),
    ("uuid=00000000-0000-4000-8000-000000000003&all_tenants", ADMIN, "2.80", ["db-1"]),
    ("image=img-2", MEMBER, "2.80", ["web|pipe"]),
    ("image_ref=img-2&all_tenants", ADMIN, "2.80", ["web|pipe"]),
    ("flavor=1", MEMBER, "2.80", ALL_P1),
    ("flavor=42", MEMBER, "2.80", []),
    ("reservation_id=zzz", MEMBER, "2.80", []),
    # ip: re.match on fixed addresses only; ip6 from 2.5 for members
    ("ip=10.0.0.1", MEMBER, "2.80", ["Web-2", "web-1"]),
    ("ip=10\\.0\\.0\\.1$", MEMBER, "2.80", ["web-1"]),
    ("ip=172.24", MEMBER, "2.80", []),
    ("ip6=fd00", MEMBER, "2.80", ["Web-2"]),
    # JOINED_TABLE and _ params: 400 for admins, dropped for members
    ("metadata=x", ADMIN, "2.80", (400, "Invalid filter field: metadata.")),
    ("_secret=x", ADMIN, "2.80", (400, "Invalid filter field: _secret.")),
    ("metadata=x", MEMBER, "2.80", ALL_P1),
    # unknown parameters: ignored below 2.75; 400 from 2.75 (unless nothing else was given)
    ("foo=1&status=BUILD", MEMBER, "2.74", ["build-1"]),
    ("foo=1&status=BUILD", MEMBER, "2.75", (400, "Additional properties are not allowed "
                                                 "('foo' was unexpected)")),
    ("foo=1", MEMBER, "2.75", ALL_P1),
    # sorting
    ("sort_key=display_name&sort_dir=asc", MEMBER, "2.80",
     ["build-1", "db-1", "err-1", "reboot-1", "web-1", "Web-2", "web|pipe"]),
    ("sort_key=display_name", MEMBER, "2.80",
     ["web|pipe", "Web-2", "web-1", "reboot-1", "err-1", "db-1", "build-1"]),
    ("sort_key=vm_state&sort_dir=asc&sort_key=display_name&sort_dir=desc", MEMBER, "2.80",
     ["web|pipe", "Web-2", "web-1", "reboot-1", "build-1", "err-1", "db-1"]),
    ("sort_key=id&sort_dir=asc", MEMBER, "2.72",
     ALL_P1),
    ("sort_key=id", MEMBER, "2.75", (400, "'id' is not one of")),
    ("sort_key=locked&sort_dir=asc", MEMBER, "2.73",        # then uuid asc
     ["web-1", "db-1", "build-1", "reboot-1", "err-1", "web|pipe", "Web-2"]),
    ("sort_key=bogus", MEMBER, "2.80", (400, "'bogus' is not one of")),
    ("sort_key=host", MEMBER, "2.80", (403, "Only administrators can sort servers by host")),
    ("sort_key=host&sort_dir=asc&all_tenants", ADMIN, "2.80",    # MySQL: NULLs first
     ["build-1", "err-1", "web|pipe", "web-1", "db-1", "Web-2", "reboot-1", "other-1"]),
    ("sort_dir=up", MEMBER, "2.80", (400, "Unknown sort direction")),
    ("sort_dir=asc&sort_dir=desc", MEMBER, "2.80", (400, "Sort direction size exceeds")),
    ("sort_key=updated_at&sort_dir=asc&limit=2", MEMBER, "2.80", ["web-1", "Web-2"]),
    # limit and marker
    ("limit=0", MEMBER, "2.80", []),
    ("limit=x", MEMBER, "2.80", (400, "Invalid input for query parameters limit")),
    ("marker=nope", MEMBER, "2.80", (400, "marker [nope] not found")),
    ("marker=00000000-0000-4000-8000-000000000005", MEMBER, "2.80",
     ["build-1", "db-1", "Web-2", "web-1"]),
    # the marker may be another project's or a deleted server: its sort values position the page
    ("marker=00000000-0000-4000-8000-000000000009", MEMBER, "2.80",
     ALL_P1[1:]),
    ("marker=00000000-0000-4000-8000-000000000008&status=ACTIVE", MEMBER, "2.80",
     ["reboot-1", "Web-2", "web-1"]),
]


@pytest.mark.parametrize("query,token,mv,expected", CASES,
                         ids=["%s[%s %s]" % (c[0] or "-", c[1].split(":")[0], c[2])
                              for c in CASES])
def test_semantics(app, query, token, mv, expected):
    status, body = call(app, query, token, mv)
    if isinstance(expected, tuple):
        code, fragment = expected
        assert status == code, body
        (fault,) = body.values()
        assert fragment in fault["message"]
    else:
        assert status == 200, body
        assert names(body) == expected


def test_detail_and_index_agree(app):
    for query in ("status=ACTIVE", "tags-any=prod,blue&sort_key=display_name"):
        assert names(call(app, query, MEMBER)[1]) == names(call(app, query, MEMBER,
                                                                detail=True)[1])


def test_next_link_follows_filters(app):
    status, body = call(app, "status=ACTIVE&limit=2", MEMBER)
    assert names(body) == ["web|pipe", "reboot-1"]
    href = body["servers_links"][0]["href"]
    assert "status=ACTIVE" in href and "marker=00000000-0000-4000-8000-000000000005" in href
    status, body = call(app, href.split("?", 1)[1], MEMBER)
    assert names(body) == ["Web-2", "web-1"]
    assert "servers_links" in body     # a full page has a next link, as in nova


def test_postgresql_flavour(tmp_path):
    writer = StoreWriter.open(str(tmp_path), sync=False)
    with writer.batch() as b:
        for rec in SERVERS:
            b.upsert_server(rec)
    writer.close()
    app = App(StoreReader.open(str(tmp_path), db_flavour="postgresql"))
    assert names(call(app, "name=web", MEMBER)[1]) == ["web|pipe", "web-1"]
    assert names(call(app, "name=web-1|db", MEMBER)[1]) == ["db-1", "web-1"]
    assert names(call(app, "sort_key=display_name&sort_dir=asc", MEMBER)[1]) == [
        "Web-2", "build-1", "db-1", "err-1", "gone-1", "reboot-1", "web-1", "web|pipe"]
    assert names(call(app, "host=C1&all_tenants", ADMIN)[1]) == []


@pytest.mark.parametrize("query", [
    "", "sort_key=display_name", "sort_key=display_name&sort_dir=asc", "sort_key=updated_at",
    "sort_key=updated_at&sort_dir=asc", "sort_dir=asc", "sort_key=host&sort_dir=asc",
    "status=ACTIVE", "tags-any=prod,blue", "changes-since=2026-01-01T00:00:31Z",
    "deleted=true", "sort_key=vm_state&sort_key=display_name"])
def test_pages_concatenate_to_the_full_list(app, query):
    """Pages of limit=1 and 2, each after the previous page's last server (the marker), visit
    the limit=1000 list, each server once.  (The marker is added by hand: nova's next link keeps
    one value per parameter, so it drops all but one of repeated sort keys -- kept as nova has
    it, see test_next_link_keeps_one_sort_key.)"""
    full = [s["id"] for s in call(app, query + "&all_tenants")[1]["servers"]]
    for limit in (1, 2):
        got, marker = [], None
        while True:
            q = "%s&all_tenants&limit=%d" % (query, limit) + ("&marker=" + marker if marker
                                                               else "")
            status, body = call(app, q)
            assert status == 200, body
            got.extend(s["id"] for s in body["servers"])
            if "servers_links" not in body:
                break
            marker = got[-1]
        assert got == full


def test_next_link_keeps_one_sort_key(app):
    status, body = call(app, "sort_key=vm_state&sort_key=display_name&limit=1", MEMBER)
    href = body["servers_links"][0]["href"]
    assert href.count("sort_key=") == 1 and "sort_key=vm_state" in href
