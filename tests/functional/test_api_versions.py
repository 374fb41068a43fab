"""Version documents, 300 choices and microversion negotiation, against the real server.

nova facts used (nova 34):
- etc/nova/api-paste.ini: ``/`` is the Versions app (no request-version handling), ``/v2`` and
  ``/v2.1`` are VersionsV2 (no auth), ``/v2.1/+`` and ``/v2/+`` the API behind keystone.
- compute/versions.py: Versions.get_action_args answers ``index`` for ``/`` and ``multi`` (300)
  for any other path it receives; ``support_api_request_version = False`` so no version headers.
- wsgi.py Resource._process_stack/Fault: version headers and two Vary values on answers once
  the version is known; legacy v2 (LegacyV2CompatibleWrapper) strips them.
- microversion_parse.get_version: the last "compute X" item of OpenStack-API-Version wins, else
  the legacy header's last comma item; api_version_request: ``^([1-9]\\d*)\\.([1-9]\\d*|0)$``.
"""
from __future__ import annotations

import pytest

from tests.conftest import ADMIN, MEMBER_A, check_request_ids, sample, start_server

VARY = "OpenStack-API-Version, X-OpenStack-Nova-API-Version"


def _with_host(doc, base):
    """A sample document with nova's sample host replaced by ours."""
    import json
    return json.loads(json.dumps(doc).replace("http://openstack.example.com", base))


def assert_versioned(resp, version):
    assert resp.header("OpenStack-API-Version") == "compute " + version
    assert resp.header("X-OpenStack-Nova-API-Version") == version
    assert resp.header("Vary") == VARY


def assert_unversioned(resp):
    assert resp.header("OpenStack-API-Version") is None
    assert resp.header("X-OpenStack-Nova-API-Version") is None
    assert resp.header("Vary") is None


# -- version documents --------------------------------------------------------------------------

def test_root_lists_versions_as_nova_sample(api):
    resp = api.get("/", token=None)
    assert resp.status == 200
    assert resp.header("Content-Type").startswith("application/json")
    assert resp.json() == _with_host(sample("versions", "versions-get-resp.json"), api.base)


@pytest.mark.parametrize("headers", [
    {}, {"OpenStack-API-Version": "compute 2.50"}, {"OpenStack-API-Version": "compute junk"},
    {"X-OpenStack-Nova-API-Version": "9.9"},
])
def test_root_is_not_under_microversion_control(api, headers):
    resp = api.get("/", token=None, headers=headers)
    assert resp.status == 200
    assert_unversioned(resp)


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
def test_v21_version_document(api, path):
    resp = api.get(path, token=None)
    assert resp.status == 200, resp
    assert resp.json() == _with_host(sample("versions", "v21-version-get-resp.json"), api.base)
    assert_versioned(resp, "2.1")
    check_request_ids(resp)


@pytest.mark.parametrize("path", ["/v2", "/v2/"])
def test_v2_version_document(api, path):
    resp = api.get(path, token=None)
    assert resp.status == 200, resp
    assert resp.json() == _with_host(sample("versions", "v2-version-get-resp.json"), api.base)
    assert_unversioned(resp)


def test_v21_version_document_negotiates(api):
    resp = api.get("/v2.1/", token=None, version="2.60")
    assert resp.status == 200
    assert_versioned(resp, "2.60")
    resp = api.get("/v2.1/", token=None, version="2.0")
    assert resp.status == 406


def test_v2_version_document_ignores_version_headers(api):
    resp = api.get("/v2/", token=None, headers={"OpenStack-API-Version": "compute junk",
                                                "X-OpenStack-Nova-API-Version": "3.0"})
    assert resp.status == 200
    assert resp.json()["version"]["id"] == "v2.0"
    assert_unversioned(resp)


@pytest.mark.parametrize("path,suffix", [
    ("/foo/bar", "foo/bar"), ("/v3", "v3"), ("/v2.1x/servers", "v2.1x/servers"),
    ("/v1.1/servers/", "v1.1/servers"),
])
def test_other_paths_get_multiple_choices(api, path, suffix):
    resp = api.get(path, token=None, version="2.5")
    assert resp.status == 300, resp
    assert_unversioned(resp)
    choices = resp.json()["choices"]
    assert [c["id"] for c in choices] == ["v2.0", "v2.1"]
    assert [c["status"] for c in choices] == ["DEPRECATED", "CURRENT"]
    assert choices[0]["links"] == [{"rel": "self", "href": "%s/v2/%s" % (api.base, suffix)}]
    assert choices[1]["links"] == [{"rel": "self", "href": "%s/v2.1/%s" % (api.base, suffix)}]
    v21 = sample("versions", "v21-version-get-resp.json")["version"]
    assert choices[1]["media-types"] == v21["media-types"]
    for choice in choices:
        assert set(choice) == {"id", "status", "links", "media-types"}


def test_version_links_follow_host_header(api):
    resp = api.get("/", token=None, host="compute.example.org:8774")
    hrefs = [v["links"][0]["href"] for v in resp.json()["versions"]]
    assert hrefs == ["http://compute.example.org:8774/v2/", "http://compute.example.org:8774/v2.1/"]
    doc = api.get_json("/v2.1/", token=None, host="nova.example.org")
    assert doc["version"]["links"][0]["href"] == "http://nova.example.org/v2.1/"


# -- microversion negotiation (under /v2.1 with a resource) -------------------------------------

NEGOTIATED = [
    ({}, "2.1"),
    ({"OpenStack-API-Version": "compute 2.50"}, "2.50"),
    ({"OpenStack-API-Version": "compute 2.50, placement 1.1"}, "2.50"),
    ({"OpenStack-API-Version": "placement 1.1,compute 2.7"}, "2.7"),
    ({"OpenStack-API-Version": "Compute 2.12"}, "2.12"),
    ({"OpenStack-API-Version": "compute   2.13  "}, "2.13"),
    ({"OpenStack-API-Version": "compute latest"}, "2.104"),
    ({"X-OpenStack-Nova-API-Version": "2.30"}, "2.30"),
    ({"X-OpenStack-Nova-API-Version": "latest"}, "2.104"),
    # both: the standard header wins
    ({"OpenStack-API-Version": "compute 2.40", "X-OpenStack-Nova-API-Version": "2.30"}, "2.40"),
    # standard header without a compute item: the legacy one is used
    ({"OpenStack-API-Version": "placement 1.1", "X-OpenStack-Nova-API-Version": "2.30"}, "2.30"),
    ({"OpenStack-API-Version": "placement 1.1"}, "2.1"),
    ({"OpenStack-API-Version": "compute"}, "2.1"),
    # microversion_parse takes the last compute item and the legacy header's last comma item
    ({"OpenStack-API-Version": "compute 2.10, compute 2.20"}, "2.20"),
    ({"X-OpenStack-Nova-API-Version": "2.3, 2.5"}, "2.5"),
    ({"OpenStack-API-Version": "compute 2.104"}, "2.104"),
]


@pytest.mark.parametrize("headers,version", NEGOTIATED)
def test_negotiation(api, headers, version):
    resp = api.get("/v2.1/flavors", headers=headers)
    assert resp.status == 200, resp
    assert_versioned(resp, version)


MALFORMED = ["2", "2.", "2.01", "02.1", "v2.1", "2.1.1", "abc", "Latest", "2.x", "-2.1",
             "2.5 foo"]


@pytest.mark.parametrize("value", MALFORMED)
def test_malformed_version_is_400_without_version_headers(api, value):
    for headers in ({"OpenStack-API-Version": "compute " + value},
                    {"X-OpenStack-Nova-API-Version": value}):
        resp = api.get("/v2.1/servers", headers=headers)
        assert resp.status == 400, (headers, resp)
        assert resp.json() == {"badRequest": {"code": 400, "message": (
            "API Version String %s is of invalid format. Must be of format MajorNum.MinorNum."
            % value)}}
        assert_unversioned(resp)
        check_request_ids(resp)


@pytest.mark.parametrize("value", ["2.0", "2.105", "2.999", "3.0", "1.1"])
def test_out_of_range_is_406_compute_fault(api, value):
    resp = api.get("/v2.1/servers", version=value)
    assert resp.status == 406, resp
    assert resp.json() == {"computeFault": {"code": 406, "message": (
        "Version %s is not supported by the API. Minimum is 2.1 and maximum is 2.104."
        % value)}}
    # nova sets req.api_version_request before its range check raises, and Fault reads it
    # back from the same WSGI environ (webob adhoc attrs): the 406 echoes the asked version.
    assert_versioned(resp, value)


def test_version_errors_come_after_authentication(api):
    resp = api.get("/v2.1/servers", token=None, version="junk")
    assert resp.status == 401


def test_unknown_route_is_404_before_the_version_check(api):
    resp = api.get("/v2.1/no-such-thing", version="junk")
    assert resp.status == 404
    assert_unversioned(resp)


@pytest.mark.parametrize("path", ["/v2/servers", "/v2/flavors", "/v2/" + "flavors/1"])
def test_legacy_v2_ignores_version_headers_and_sends_none(api, path):
    for headers in ({}, {"OpenStack-API-Version": "compute 2.60"},
                    {"OpenStack-API-Version": "compute junk"},
                    {"X-OpenStack-Nova-API-Version": "3.7"}):
        resp = api.get(path, token=ADMIN, headers=headers)
        assert resp.status == 200, (headers, resp)
        assert_unversioned(resp)


def test_legacy_v2_answers_as_2_1(api):
    v2 = api.get_json("/v2/servers/detail?limit=1", token=MEMBER_A,
                      headers={"OpenStack-API-Version": "compute 2.60"})["servers"][0]
    v21 = api.get_json("/v2.1/servers/detail?limit=1", token=MEMBER_A)["servers"][0]
    assert set(v2) == set(v21)
    assert "locked" not in v2 and "tags" not in v2
    assert v2["links"][0]["href"].startswith(api.base + "/v2/servers/")
    assert v2["links"][1]["href"].startswith(api.base + "/servers/")


def test_version_headers_on_errors_after_negotiation(api):
    resp = api.get("/v2.1/servers/00000000-0000-0000-0000-000000000000", version="2.42")
    assert resp.status == 404
    assert_versioned(resp, "2.42")


def test_public_endpoint_replaces_host_in_version_documents():
    with start_server(demo_count=5, workers=1,
                      extra=("--public-endpoint", "https://cloud.example.com:13774/")) as srv:
        hrefs = [v["links"][0]["href"] for v in srv.get_json("/", token=None)["versions"]]
        assert hrefs == ["https://cloud.example.com:13774/v2/",
                         "https://cloud.example.com:13774/v2.1/"]
        doc = srv.get_json("/v2.1/servers?limit=1", token=MEMBER_A)
        assert doc["servers"][0]["links"][0]["href"].startswith(
            "https://cloud.example.com:13774/v2.1/servers/")
        assert doc["servers_links"][0]["href"].startswith(
            "https://cloud.example.com:13774/v2.1/servers?")
