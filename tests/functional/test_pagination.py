"""Server list pagination as nova pages: limit, marker, servers_links, nova's order.

nova facts used (nova 34):
- common.get_limit_and_marker: limit defaults to and is capped at [api] max_limit (1000);
  limit=0 is an empty page; the query schema (non_negative_integer, '^[0-9]*$') rejects others
  with "Invalid input for query parameters limit. ...";
- servers.py: an unknown marker is 400 "marker [x] not found";
- common._get_collection_links: a next link exactly when min(limit, max_limit) == len(items),
  href = the request's parameters sorted by name (last value of a repeated key), marker replaced,
  urlencoded, on .../servers or .../servers/detail;
- default order: created_at desc, id desc.
"""
from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.conftest import (ADMIN, BIG_ALL, BIG_COUNT, BIG_OWN, BIG_RECS, MEMBER_A,
                            PROJECT_A)

COUNT = BIG_COUNT
RECS, ALL, OWN = BIG_RECS, BIG_ALL, BIG_OWN


@pytest.fixture(scope="module")
def api(big_api):
    return big_api


def walk(api, url, token):
    """Follow next links from ``url``; the ids in order and the pages' sizes."""
    ids, sizes = [], []
    while url:
        doc = api.get_json(url, token=token)
        ids += [s["id"] for s in doc["servers"]]
        sizes.append(len(doc["servers"]))
        links = doc.get("servers_links")
        if links:
            assert len(links) == 1 and links[0]["rel"] == "next"
            assert links[0]["href"].startswith(api.base + "/v2.1/")
            url = links[0]["href"][len(api.base):]
        else:
            url = None
    return ids, sizes


@pytest.mark.parametrize("collection", ["servers", "servers/detail"])
@pytest.mark.parametrize("who,query,expected", [
    ("member", "", OWN), ("admin", "all_tenants=1&", ALL), ("admin", "all_tenants&", ALL),
])
@pytest.mark.parametrize("limit", [7, 100])
def test_walking_next_links_visits_every_server_once(api, collection, who, query, expected,
                                                     limit):
    token = ADMIN if who == "admin" else MEMBER_A
    ids, sizes = walk(api, "/v2.1/%s?%slimit=%d" % (collection, query, limit), token)
    assert ids == expected      # every server, once, in nova's order
    # a next link exactly when a page is full: the last page is short or empty
    full, rest = divmod(len(expected), limit)
    assert sizes == [limit] * full + [rest]


def test_default_and_max_limit_is_1000(api):
    for url in ("/v2.1/servers?all_tenants=1", "/v2.1/servers?all_tenants=1&limit=1500",
                "/v2.1/servers/detail?all_tenants=1&limit=1000"):
        doc = api.get_json(url, token=ADMIN)
        assert [s["id"] for s in doc["servers"]] == ALL[:1000], url
        href = doc["servers_links"][0]["href"]
        query = dict(parse_qsl(urlsplit(href).query))
        assert query["marker"] == ALL[999]
    doc = api.get_json("/v2.1/servers?all_tenants=1&limit=1500", token=ADMIN)
    assert doc["servers_links"][0]["href"] == (
        "%s/v2.1/servers?all_tenants=1&limit=1500&marker=%s" % (api.base, ALL[999]))
    doc = api.get_json("/v2.1/servers?all_tenants=1", token=ADMIN)
    assert doc["servers_links"][0]["href"] == (
        "%s/v2.1/servers?all_tenants=1&marker=%s" % (api.base, ALL[999]))
    rest = api.get_json(doc["servers_links"][0]["href"][len(api.base):], token=ADMIN)
    assert [s["id"] for s in rest["servers"]] == ALL[1000:]
    assert "servers_links" not in rest


def test_no_next_link_when_the_page_is_not_full(api):
    doc = api.get_json("/v2.1/servers?limit=%d" % (len(OWN) + 1))
    assert len(doc["servers"]) == len(OWN) and "servers_links" not in doc
    doc = api.get_json("/v2.1/servers")
    assert len(doc["servers"]) == len(OWN) and "servers_links" not in doc
    # exactly full: nova still sends the link (and the next page is empty)
    doc = api.get_json("/v2.1/servers?limit=%d" % len(OWN))
    assert "servers_links" in doc
    assert api.get_json(doc["servers_links"][0]["href"][len(api.base):])["servers"] == []


def test_limit_zero_is_an_empty_page_without_links(api):
    for path in ("/v2.1/servers?limit=0", "/v2.1/servers/detail?limit=0"):
        assert api.get_json(path) == {"servers": []}


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "1e3", "%20"])
def test_bad_limit_is_400(api, value):
    resp = api.get("/v2.1/servers?limit=" + value)
    assert resp.status == 400, resp
    body = resp.json()
    assert body["badRequest"]["code"] == 400
    assert body["badRequest"]["message"].startswith(
        "Invalid input for query parameters limit. Value: ")


@pytest.mark.parametrize("marker", ["00000000-0000-4000-8000-000000000000", "not-a-uuid"])
def test_unknown_marker_is_400(api, marker):
    for path in ("/v2.1/servers", "/v2.1/servers/detail"):
        resp = api.get("%s?marker=%s" % (path, marker))
        assert resp.status == 400
        assert resp.json() == {"badRequest": {"code": 400,
                                              "message": "marker [%s] not found" % marker}}


def test_next_link_parameter_order_and_repeats(api):
    """The page uses the last value of a repeated key (webob's GET[key]); the link is built from
    OrderedDict(sorted(request.params.items())): pairs sorted by (name, value), so the largest
    value of a repeated key wins there; marker replaced."""
    doc = api.get_json("/v2.1/servers/detail?limit=3&marker=%s&all_tenants=1&limit=2" % ALL[0],
                       token=ADMIN)
    assert [s["id"] for s in doc["servers"]] == ALL[1:3]
    assert doc["servers_links"][0]["href"] == (
        "%s/v2.1/servers/detail?all_tenants=1&limit=3&marker=%s" % (api.base, ALL[2]))


def test_next_link_keeps_project_id_segment(api):
    doc = api.get_json("/v2.1/%s/servers?limit=2" % PROJECT_A)
    assert doc["servers_links"][0]["href"] == "%s/v2.1/%s/servers?limit=2&marker=%s" % (
        api.base, PROJECT_A, OWN[1])
    ids, _ = walk(api, "/v2.1/%s/servers/detail?limit=50" % PROJECT_A, MEMBER_A)
    assert ids == OWN


def test_marker_of_another_project_positions_a_members_page(api):
    """compute/instance_list.py get_marker_record looks the marker up with an elevated context:
    another project's server is a valid marker, the page holds the caller's servers after it."""
    pos = next(i for i, sid in enumerate(ALL[5:], 5)
               if next(r for r in RECS if r["id"] == sid)["project_id"] != PROJECT_A)
    marker = ALL[pos]
    doc = api.get_json("/v2.1/servers?limit=5&marker=" + marker)
    after = [sid for sid in ALL[pos + 1:] if sid in set(OWN)]
    assert [s["id"] for s in doc["servers"]] == after[:5]


def test_next_link_drops_unknown_parameters(api):
    """nova strips parameters its query schema does not know before the controller builds the
    next link (validation/__init__.py _strip_additional_query_parameters, below 2.75)."""
    doc = api.get_json("/v2.1/servers?limit=2&zzz=1")
    assert doc["servers_links"][0]["href"] == "%s/v2.1/servers?limit=2&marker=%s" % (
        api.base, OWN[1])
