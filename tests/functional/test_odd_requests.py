"""nova's answer to the odd requests of issue 18, item 3, over HTTP against the real server
(compiled and pure), each expectation read from nova's source:

- flavors: minRam/minDisk (int() of the value, else "Invalid minRam filter [...]"), sort_key and
  sort_dir validated by the query schema and applied with the internal id as tie-break, name
  filter from 2.102 (compute/flavors.py _get_flavors, schemas/flavors.py, objects/flavor.py);
- unknown query parameters: 400 from 2.75 on /limits, from 2.102 on server and flavor show;
- /limits?tenant_id= (empty): present, so it names project '' (admin) or is 403 (member);
- changes-since: oslo's parse_isotime (the iso8601 package);
- paths: nova's URL map collapses "//", routes needs a non-empty id;
- queries: webob splits on ";" too and decodes UTF-8 strictly; a GET's Content-Type is read;
- links ignore a project id in a parameter the schema strips;
- Accept: application/vnd.openstack.compute+json is answered with that type; its version
  parameter picks the version document on a version-less path.
"""
from __future__ import annotations

import http.client
import json

import pytest

from tests.commands_support import PROJECT, TOKEN, serve

ADMIN = "admin:" + PROJECT
VND = "application/vnd.openstack.compute+json"


@pytest.fixture(scope="module", params=["compiled", "pure"])
def srv(request):
    env = {"FASTNOVA_PURE": "1"} if request.param == "pure" else {}
    with serve("--sim-step", "0.05", workers=1, demo=12, env=env) as s:
        yield s


def _get(srv, target, token=TOKEN, version=None, headers=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    hdrs = {"X-Auth-Token": token}
    if version:
        hdrs["OpenStack-API-Version"] = "compute " + version
    hdrs.update(headers or {})
    try:
        conn.request("GET", target, headers=hdrs)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, resp.getheader("Content-Type"), body
    finally:
        conn.close()


def _ok(srv, target, **kw):
    status, _ctype, body = _get(srv, target, **kw)
    assert status == 200, (target, body[:300])
    return json.loads(body)


def _fault(srv, target, status, **kw):
    got, _ctype, body = _get(srv, target, **kw)
    assert got == status, (target, body[:300])
    return next(iter(json.loads(body).values()))["message"]


def _flavor_ids(srv, query, **kw):
    return [f["id"] for f in _ok(srv, "/v2.1/flavors?" + query, **kw)["flavors"]]


# demo flavors a member lists: 1 (512 MB, 1 GB), 2 (2048, 20), 3 (4096, 40), 4 (8192, 80),
# 5 (16384, 160), 6 (512, 1); 7 is private.

@pytest.mark.parametrize("query, ids", [
    ("minRam=2048", ["2", "3", "4", "5"]),
    ("minDisk=40", ["3", "4", "5"]),
    ("minRam=%2B4096&minDisk=%2080", ["4", "5"]),          # int() takes "+4096" and " 80"
    ("sort_dir=desc", ["6", "5", "4", "3", "2", "1"]),     # flavorid desc without a sort_key
    ("sort_key=memory_mb", ["1", "6", "2", "3", "4", "5"]),  # ties: internal id
    ("sort_key=memory_mb&sort_dir=desc", ["5", "4", "3", "2", "6", "1"]),
    ("sort_key=memory_mb&marker=6&limit=2", ["2", "3"]),
    ("sort_key=name&sort_dir=desc&limit=3", ["5", "6", "1"]),  # xlarge, tiny.specs, tiny
])
def test_flavor_filters_and_order(srv, query, ids):
    assert _flavor_ids(srv, query) == ids


@pytest.mark.parametrize("query, message", [
    ("minRam=abc", "Invalid minRam filter [abc]"),
    ("minDisk=1.5", "Invalid minDisk filter [1.5]"),
    ("sort_key=bogus", "Invalid input for query parameters sort_key. Value: bogus. 'bogus' is "
                       "not one of ['created_at', 'description', 'disabled', 'ephemeral_gb', "
                       "'flavorid', 'id', 'is_public', 'memory_mb', 'name', 'root_gb', "
                       "'rxtx_factor', 'swap', 'updated_at', 'vcpu_weight', 'vcpus']"),
    ("sort_dir=up", "Invalid input for query parameters sort_dir. Value: up. 'up' is not one "
                    "of ['asc', 'desc']"),
])
def test_flavor_query_errors(srv, query, message):
    assert _fault(srv, "/v2.1/flavors?" + query, 400) == message


def test_flavor_query_per_microversion(srv):
    assert _flavor_ids(srv, "foo=1", version="2.74") == ["1", "2", "3", "4", "5", "6"]
    assert _fault(srv, "/v2.1/flavors/detail?foo=1", 400, version="2.75") == \
        "Additional properties are not allowed ('foo' was unexpected)"
    assert _flavor_ids(srv, "sort_key=rxtx_factor", version="2.101")
    assert "is not one of" in _fault(srv, "/v2.1/flavors?sort_key=rxtx_factor", 400,
                                     version="2.102")
    assert _flavor_ids(srv, "name=TINY", version="2.102") == ["1", "6"]   # MySQL REGEXP
    assert _fault(srv, "/v2.1/flavors?name=x", 400, version="2.101") == \
        "Additional properties are not allowed ('name' was unexpected)"


def _server_id(srv):
    return _ok(srv, "/v2.1/servers?limit=1")["servers"][0]["id"]


@pytest.mark.parametrize("template, strict_from", [
    ("/v2.1/limits?foo=1", "2.75"), ("/v2.1/flavors/1?foo=1", "2.102"),
    ("/v2.1/servers/{id}?foo=1", "2.102")])
def test_unknown_parameters_are_refused_from_novas_version(srv, template, strict_from):
    target = template.replace("{id}", _server_id(srv))
    before = "2.%d" % (int(strict_from.split(".")[1]) - 1)
    _ok(srv, target, version=before)
    assert _fault(srv, target, 400, version=strict_from) == \
        "Additional properties are not allowed ('foo' was unexpected)"


def test_limits_with_an_empty_tenant_id(srv):
    own = _ok(srv, "/v2.1/limits", token=ADMIN)["limits"]["absolute"]
    assert own["totalInstancesUsed"] > 0
    other = _ok(srv, "/v2.1/limits?tenant_id=", token=ADMIN)["limits"]["absolute"]
    assert other["totalInstancesUsed"] == 0 and other["totalCoresUsed"] == 0
    assert _fault(srv, "/v2.1/limits?tenant_id=", 403) == \
        "Policy doesn't allow os_compute_api:limits:other_project to be performed."


@pytest.mark.parametrize("value, status", [
    ("2025-1-1", 200), ("20260213T114750Z", 200), ("2026", 200),
    ("2026-02-13T11:47:50z", 400), ("2026-02-13T11:47:50Z", 200)])
def test_changes_since_formats(srv, value, status):
    got, _ctype, body = _get(srv, "/v2.1/servers?changes-since=" + value)
    assert got == status, body[:300]
    if status == 400:
        assert b"is not a 'date-time'" in body


def test_paths_as_novas_url_map_and_routes(srv):
    assert _get(srv, "/v2.1/servers/")[0] == 404
    assert _get(srv, "/v2.1/servers/detail/x")[0] == 404
    assert _ok(srv, "//")["versions"]
    assert _ok(srv, "/v2.1//servers")["servers"]


def test_queries_as_webob_reads_them(srv):
    assert _fault(srv, "/v2.1/servers?name=%ff", 400) == "Query string is not UTF-8 encoded"
    assert _fault(srv, "/v2.1/flavors?name=%ff", 400) == "Query string is not UTF-8 encoded"
    assert len(_ok(srv, "/v2.1/servers?limit=2;")["servers"]) == 2
    status, _ctype, body = _get(srv, "/v2.1/servers", headers={"Content-Type": "application/xml"})
    assert status == 415 and json.loads(body) == {
        "badMediaType": {"code": 415, "message": "Unsupported Content-Type"}}
    status, _ctype, _body = _get(srv, "/v2.1/servers/" + _server_id(srv),
                                 headers={"Content-Type": "application/xml"})
    assert status == 415                                  # the show fast path steps aside
    assert _get(srv, "/v2.1/servers", headers={"Content-Type": "text/plain"})[0] == 200


def test_project_id_in_an_unknown_parameter_leaves_links_alone(srv):
    flavor = _ok(srv, "/v2.1/flavors/1?x=" + PROJECT)["flavor"]
    assert all(PROJECT not in link["href"] for link in flavor["links"])
    flavor = _ok(srv, "/v2.1/%s/flavors/1" % PROJECT)["flavor"]
    assert all(PROJECT in link["href"] for link in flavor["links"])


def test_accept_vnd_type_and_version(srv):
    accept = {"Accept": VND + ";version=2.1"}
    status, ctype, body = _get(srv, "/v2.1/servers/" + _server_id(srv), headers=accept)
    assert status == 200 and ctype == VND
    status, ctype, body = _get(srv, "/", headers=accept)
    assert status == 200 and ctype == VND
    assert json.loads(body)["version"]["id"] == "v2.1"
    status, ctype, body = _get(srv, "/", headers={"Accept": VND + ";version=2"})
    assert json.loads(body)["version"]["id"] == "v2.0"
    status, ctype, body = _get(srv, "/v2.1/servers/nope", headers={"Accept": VND})
    assert status == 404 and ctype == VND
    status, ctype, body = _get(srv, "/", headers={"Accept": "application/json"})
    assert status == 200 and ctype == "application/json" and "versions" in json.loads(body)


def test_upper_case_server_id_on_mysql_finds_the_server(srv):
    """The default flavour is MySQL's (no import recorded another): its collation ignores case."""
    sid = _server_id(srv)
    shown = _ok(srv, "/v2.1/servers/" + sid.upper())["server"]
    assert shown["id"] == sid
    assert "metadata" in _ok(srv, "/v2.1/servers/%s/metadata" % sid.upper())
    status, _ctype, _body = _get(srv, "/v2.1/servers/%s/tags" % sid.upper(), version="2.26")
    assert status == 200


def test_upper_case_server_id_on_postgresql_is_not_found():
    with serve("--db-flavour", "postgresql", workers=1, demo=3) as pg:
        sid = _server_id(pg)
        assert _ok(pg, "/v2.1/servers/" + sid)["server"]["id"] == sid
        assert _fault(pg, "/v2.1/servers/" + sid.upper(), 404) == \
            "Instance %s could not be found." % sid.upper()
