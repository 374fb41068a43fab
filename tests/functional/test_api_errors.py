"""Errors as nova (and the middleware in front of it) answers them, and the request-id headers.

nova facts used (nova 34):
- api-paste.ini: authtoken (keystonemiddleware) answers an unauthenticated request before nova,
  with its own JSON body {"error": {"code": 401, "title": "Unauthorized", "message": ...}};
- nova/api/wsgi.py Router._dispatch: no matching route is webob.exc.HTTPNotFound(), whose body
  depends on Accept (plain text without one, JSON for application/json);
- compute_req_id (oslo RequestId + x-compute-request-id): a fresh req-<uuid> per request in both
  headers.
"""
from __future__ import annotations

import pytest

from tests.conftest import ADMIN, MEMBER_A, check_request_ids

UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}
PLAIN_404 = b"404 Not Found\n\nThe resource could not be found.\n\n   "


@pytest.mark.parametrize("path", ["/v2.1/servers", "/v2.1/servers/detail", "/v2.1/flavors",
                                  "/v2.1/servers/00000000-0000-0000-0000-000000000000",
                                  "/v2/servers", "/v2.1/no-such-route"])
@pytest.mark.parametrize("token", [None, "", "bad token with spaces"])
def test_unauthenticated_is_keystonemiddleware_401(api, path, token):
    headers = {"X-Auth-Token": token} if token is not None else {}
    resp = api.request("GET", path, token=None, headers=headers)
    assert resp.status == 401, resp
    assert resp.json() == UNAUTHORIZED
    assert resp.header("Content-Type").startswith("application/json")
    assert resp.header("OpenStack-API-Version") is None
    check_request_ids(resp)


@pytest.mark.parametrize("path", ["/v2.1/no-such-route", "/v2.1/os-nothing/abc",
                                  "/v2/nothing", "/v2.1/%s/nothing" % ("0" * 32)])
def test_unknown_route_is_webob_plain_404(api, path):
    resp = api.get(path, version="2.30")
    assert resp.status == 404, resp
    assert resp.body == PLAIN_404
    assert resp.header("Content-Type") == "text/plain; charset=UTF-8"
    assert resp.header("OpenStack-API-Version") is None
    check_request_ids(resp)


def test_unknown_route_404_follows_accept(api):
    resp = api.get("/v2.1/no-such-route", headers={"Accept": "application/json"})
    assert resp.status == 404
    assert resp.json() == {"message": "The resource could not be found.<br /><br />\n\n\n",
                           "code": "404 Not Found", "title": "Not Found"}
    html = api.get("/v2.1/no-such-route", headers={"Accept": "*/*"})
    assert html.status == 404 and html.header("Content-Type").startswith("text/html")
    assert b"<h1>404 Not Found</h1>" in html.body
    plain = api.get("/v2.1/no-such-route", headers={"Accept": "image/png"})
    assert plain.header("Content-Type").startswith("text/plain")


def test_fault_bodies_are_json_with_nova_names(api):
    cases = [
        ("/v2.1/servers/00000000-0000-0000-0000-000000000000", MEMBER_A, {}, 404, "itemNotFound"),
        ("/v2.1/flavors/zzz", MEMBER_A, {}, 404, "itemNotFound"),
        ("/v2.1/servers?limit=x", MEMBER_A, {}, 400, "badRequest"),
        ("/v2.1/servers?all_tenants=1", MEMBER_A, {}, 403, "forbidden"),
        ("/v2.1/servers", MEMBER_A, {"OpenStack-API-Version": "compute 2.999"}, 406,
         "computeFault"),
    ]
    for path, token, headers, status, name in cases:
        resp = api.get(path, token=token, headers=headers)
        assert resp.status == status, (path, resp)
        assert resp.header("Content-Type").startswith("application/json")
        body = resp.json()
        assert list(body) == [name] and body[name]["code"] == status
        assert isinstance(body[name]["message"], str) and body[name]["message"]
        check_request_ids(resp)


@pytest.mark.parametrize("path,token,status", [
    ("/v2.1/", None, 200), ("/v2/", None, 200), ("/v2.1/servers", MEMBER_A, 200),
    ("/v2.1/servers/detail?limit=2", ADMIN, 200), ("/v2.1/flavors/1", MEMBER_A, 200),
    ("/v2/servers", MEMBER_A, 200), ("/v2.1/servers", None, 401),
    ("/v2.1/servers?limit=-1", MEMBER_A, 400), ("/v2.1/nothing", MEMBER_A, 404),
])
def test_request_ids_on_every_answer_fresh_each_time(api, path, token, status):
    seen = set()
    for _ in range(3):
        resp = api.get(path, token=token)
        assert resp.status == status
        seen.add(check_request_ids(resp))
    assert len(seen) == 3


def test_request_ids_differ_between_requests_on_one_connection(api):
    import http.client
    conn = http.client.HTTPConnection(api.host, api.port, timeout=10)
    try:
        ids = []
        for _ in range(5):
            conn.request("GET", "/v2.1/flavors", headers={"X-Auth-Token": MEMBER_A})
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200
            assert resp.getheader("x-openstack-request-id") == resp.getheader(
                "x-compute-request-id")
            ids.append(resp.getheader("x-openstack-request-id"))
        assert len(set(ids)) == 5
    finally:
        conn.close()
