"""Property: no request a client can send gets a 5xx (issue 18, item 2).

Generated query strings (known parameter names and random ones, values that are empty, huge,
not UTF-8, regular expressions, dates in many shapes, numbers with signs and separators) and
generated bodies (random JSON, JSON nested up to and past the parser's limit, bytes that are
not JSON) go over HTTP to the real ``fastnova serve``, once with the compiled extensions and
once with their pure twins (FASTNOVA_PURE=1), on every route fastnova answers itself.  Any
answer of 500 or above fails, with the request printed by hypothesis.
"""
from __future__ import annotations

import http.client
import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.commands_support import PROJECT, TOKEN, serve

ADMIN = "admin:" + PROJECT
MEMBER = TOKEN
# A server of the demo store, and one that cannot exist.
SHOW_IDS = ["", "x", "a" * 600, "%00", "DEMO", "00000000-0000-0000-0000-000000000000"]

QUERY_KEYS = ["limit", "marker", "uuid", "name", "status", "sort_key", "sort_dir", "changes-since",
              "changes-before", "all_tenants", "tenant_id", "project_id", "deleted",
              "soft_deleted", "tags", "tags-any", "not-tags", "flavor", "image", "ip", "ip6",
              "locked", "is_public", "minRam", "minDisk", "vm_state", "task_state", "host",
              "node", "user_id", "created_at", "metadata", "_internal", "offset", "page_size"]
ODD_VALUES = ["", " ", "0", "-1", "1e3", "+5", "1_000", "99999999999999999999999", "%ff",
              "%00", "%C3%28", "a" * 600, "*", "(", "[a-", "(?=x)", "\\", "true", "none",
              "2025-1-1", "20260213T114750Z", "2026-02-13T11:47:50z", "2026-13-45", "desc",
              "asc", "id", "ACTIVE", "deleted", "%2C", ",,", ";", "\u00e9", "\U0001f600"]

GET_PATHS = ["/v2.1/servers", "/v2.1/servers/detail", "/v2.1/servers/{id}", "/v2.1/flavors",
             "/v2.1/flavors/detail", "/v2.1/flavors/1", "/v2.1/flavors/{id}", "/v2.1/limits",
             "/v2.1/servers/{id}/metadata", "/v2.1/servers/{id}/tags", "/v2/servers",
             "/v2.1/{project}/servers/detail",
             # issue 20's resources (fastnova.resources)
             "/v2.1/os-keypairs", "/v2.1/os-keypairs/{id}", "/v2.1/os-availability-zone",
             "/v2.1/os-availability-zone/detail", "/v2.1/servers/{id}/ips",
             "/v2.1/servers/{id}/ips/private", "/v2.1/servers/{id}/os-instance-actions",
             "/v2.1/servers/{id}/os-instance-actions/{id}", "/v2.1/os-server-groups",
             "/v2.1/os-server-groups/{id}", "/v2.1/os-quota-sets/{project}",
             "/v2.1/os-quota-sets/{project}/detail", "/v2.1/os-quota-sets/{project}/defaults",
             "/v2.1/os-simple-tenant-usage", "/v2.1/os-simple-tenant-usage/{project}",
             "/v2.1/flavors/1/os-extra_specs", "/v2.1/flavors/1/os-extra_specs/{id}",
             "/v2.1/flavors/1/os-flavor-access"]
BODY_ROUTES = [("POST", "/v2.1/servers"), ("PUT", "/v2.1/servers/{id}"),
               ("POST", "/v2.1/servers/{id}/action"), ("PUT", "/v2.1/servers/{id}/metadata"),
               ("POST", "/v2.1/servers/{id}/metadata"), ("PUT", "/v2.1/servers/{id}/tags"),
               ("PUT", "/v2.1/servers/{id}/metadata/k"),
               ("POST", "/v2.1/os-keypairs"), ("POST", "/v2.1/os-server-groups"),
               ("PUT", "/v2.1/os-quota-sets/{project}"), ("POST", "/v2.1/flavors"),
               ("POST", "/v2.1/flavors/1/os-extra_specs"), ("POST", "/v2.1/flavors/1/action"),
               ("PUT", "/v2.1/flavors/{id}"), ("PUT", "/v2.1/flavors/1/os-extra_specs/{id}")]
BODY_KEYS = ["server", "keypair", "server_group", "quota_set", "flavor", "extra_specs",
             "addTenantAccess", "os-getConsoleOutput", "public_key", "policies", "policy",
             "server", "name", "imageRef", "flavorRef", "metadata", "reboot", "type",
             "resize", "rebuild", "lock", "locked_reason", "tags", "meta", "min_count",
             "max_count", "networks", "os-stop", "os-start", "createImage", "description",
             "key_name", "adminPass", "block_device_mapping_v2", "user_data"]
VERSIONS = [None, "2.1", "2.26", "2.47", "2.66", "2.73", "2.75", "2.79", "2.90", "2.101",
            "2.102", "latest", "2.999", "x"]

_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=20), st.sampled_from(ODD_VALUES))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.one_of(st.sampled_from(BODY_KEYS), st.text(max_size=8)), inner,
                    max_size=4)), max_leaves=12)


def _deep(depth: int, key: str) -> bytes:
    inner = "[" * depth + "]" * depth
    return ('{"%s": %s}' % (key, inner)).encode()


_bodies = st.one_of(
    _json.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(st.sampled_from(BODY_KEYS), _json, min_size=1, max_size=2).map(
        lambda v: json.dumps(v).encode()),
    st.builds(_deep, st.integers(900, 1100), st.sampled_from(BODY_KEYS)),
    st.binary(max_size=40),
)
# Odd values go in as sent ("%ff" stays a raw escape, ";" a raw separator); spaces and
# controls are escaped as a client library would.
_values = st.one_of(st.sampled_from(ODD_VALUES).map(lambda v: quote(v, safe="%;,*+()[]=")),
                    st.text(max_size=12).map(quote))
_pair = st.tuples(st.one_of(st.sampled_from(QUERY_KEYS), st.text(max_size=6).map(quote)),
                  _values)
_query = st.lists(_pair, max_size=5).map(lambda ps: "&".join("%s=%s" % p for p in ps))


@pytest.fixture(scope="module", params=["compiled", "pure"])
def srv(request):
    env = {"FASTNOVA_PURE": "1"} if request.param == "pure" else {}
    with serve("--sim-step", "0.05", workers=1, demo=20, env=env) as s:
        s.server_id = _first_server(s)
        yield s


def _call(srv, method, target, body=None, token=MEMBER, version=None, ctype=None):
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=30)
    headers = {"X-Auth-Token": token}
    if version is not None:
        headers["OpenStack-API-Version"] = "compute " + version
    if body is not None:
        headers["Content-Type"] = ctype or "application/json"
    try:
        conn.request(method, target, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _first_server(srv) -> str:
    status, body = _call(srv, "GET", "/v2.1/servers?limit=1")
    assert status == 200, body
    return json.loads(body)["servers"][0]["id"]


def _path(srv, template: str, odd_id: str | None) -> str:
    sid = srv.server_id if odd_id is None else quote(odd_id, safe="%")
    return template.replace("{id}", sid).replace("{project}", PROJECT)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(template=st.sampled_from(GET_PATHS), query=_query,
       odd_id=st.one_of(st.none(), st.sampled_from(SHOW_IDS)),
       token=st.sampled_from([MEMBER, ADMIN]), version=st.sampled_from(VERSIONS))
def test_no_query_gets_a_5xx(srv, template, query, odd_id, token, version):
    target = _path(srv, template, odd_id) + ("?" + query if query else "")
    status, body = _call(srv, "GET", target, token=token, version=version)
    assert status < 500, (target, status, body[:300])


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(route=st.sampled_from(BODY_ROUTES), body=_bodies,
       odd_id=st.one_of(st.none(), st.none(), st.sampled_from(SHOW_IDS)),
       token=st.sampled_from([MEMBER, ADMIN]), version=st.sampled_from(VERSIONS),
       ctype=st.sampled_from([None, None, "application/vnd.openstack.compute+json",
                              "text/plain", "application/xml"]))
def test_no_body_gets_a_5xx(srv, route, body, odd_id, token, version, ctype):
    method, template = route
    target = _path(srv, template, odd_id)
    status, answer = _call(srv, method, target, body=body, token=token, version=version,
                           ctype=ctype)
    assert status < 500, (method, target, body[:200], status, answer[:300])


@pytest.mark.parametrize("depth", [977, 1000, 1023])   # + the outer object: <= 1,024
@pytest.mark.parametrize("route", [("POST", "/v2.1/servers"),
                                   ("PUT", "/v2.1/servers/{id}/metadata"),
                                   ("POST", "/v2.1/servers/{id}/action")])
def test_deep_json_is_novas_400(srv, route, depth):
    """jsonschema's message quotes the value (repr, ~1 frame a level): nova answers 400 with
    it; so must we, without a traceback in the log."""
    method, template = route
    key = {"/v2.1/servers": "server"}.get(template, "metadata" if "metadata" in template
                                          else "reboot")
    status, answer = _call(srv, method, _path(srv, template, None), body=_deep(depth, key))
    assert status == 400, answer[:300]
    fault = json.loads(answer)["badRequest"]
    assert fault["message"].startswith("Invalid input for field/attribute %s. Value: [[[" % key)
    assert "Traceback" not in srv.log()


@pytest.mark.parametrize("query, token", [("limit=1&marker=", MEMBER), ("marker=", ADMIN),
                                          ("uuid=", ADMIN), ("uuid=&all_tenants=1", ADMIN)])
def test_empty_marker_and_uuid_are_novas_200(srv, query, token):
    status, answer = _call(srv, "GET", "/v2.1/servers?" + query, token=token)
    assert status == 200, answer[:300]
    servers = json.loads(answer)["servers"]
    if query.startswith("uuid"):
        assert servers == []            # nova: uuid = '' matches nothing
    else:
        assert servers                  # an empty marker is no marker: the first page
