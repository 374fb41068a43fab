"""GET /flavors, /flavors/detail, /flavors/{id} against nova's samples and nova's visibility.

nova facts used (nova 34):
- samples: flavors/[v2.55|v2.61|v2.75|v2.102]/flavors-list-resp.json, flavors-detail-resp.json,
  flavor-get-resp.json;
- compute/flavors.py _get_flavors/_parse_is_public and objects/flavor.py: a member lists public
  (or project-accessible), enabled flavors; an admin lists public ones (disabled included) unless
  ``is_public`` is given ("none": all; strict bool; else 400 "Invalid is_public filter [x]");
  show finds any flavor for an admin, public or accessible ones for a member;
- order flavorid ascending; views/flavors.py: next link on "flavors" or "flavors/detail".
"""
from __future__ import annotations

import pytest

from fastnova import demo
from tests.conftest import (ADMIN, MEMBER_A, MEMBER_B, PROJECT_A, assert_same_shape, minor,
                            sample)

VERSIONS = ["2.1", "2.54", "2.55", "2.61", "2.74", "2.75", "2.101", "2.102", "latest"]
FLAVORS = {f["id"]: f for f in demo.flavor_records()}
PUBLIC = sorted(fid for fid, f in FLAVORS.items() if f["is_public"])
PRIVATE = sorted(fid for fid, f in FLAVORS.items() if not f["is_public"])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("token", [MEMBER_A, ADMIN])
def test_flavor_documents_match_samples(api, version, token):
    for path, name, key in (("/v2.1/flavors", "flavors-list-resp.json", "flavors"),
                            ("/v2.1/flavors/detail", "flavors-detail-resp.json", "flavors"),
                            ("/v2.1/flavors/1", "flavor-get-resp.json", "flavor")):
        doc = api.get_json(path, token=token, version=version)
        ref = sample("flavors", name, version)
        assert set(doc) == {key}, path
        ours = doc[key] if key == "flavor" else doc[key][0]
        theirs = ref[key] if key == "flavor" else ref[key][0]
        assert set(ours) == set(theirs), (path, set(ours) ^ set(theirs))
        assert_same_shape(ours, theirs)


@pytest.mark.parametrize("version", VERSIONS)
def test_flavor_values(api, version):
    m = minor(version)
    f = api.get_json("/v2.1/flavors/1", version=version)["flavor"]
    rec = FLAVORS["1"]
    assert f["id"] == "1" and f["name"] == rec["name"]
    assert (f["ram"], f["disk"], f["vcpus"]) == (rec["ram"], rec["disk"], rec["vcpus"])
    assert f["OS-FLV-EXT-DATA:ephemeral"] == 0
    # 2.75: "swap" is 0 instead of "" when the flavor has none
    assert f["swap"] == (0 if m >= 75 else "")
    assert f["os-flavor-access:is_public"] is True
    if m < 102:
        assert f["OS-FLV-DISABLED:disabled"] is False and f["rxtx_factor"] == 1.0
    assert f["links"] == [{"rel": "self", "href": api.base + "/v2.1/flavors/1"},
                          {"rel": "bookmark", "href": api.base + "/flavors/1"}]
    if m >= 61:
        spec = api.get_json("/v2.1/flavors/6", version=version)["flavor"]
        assert spec["extra_specs"] == FLAVORS["6"]["extra_specs"]


def _ids(doc):
    return [f["id"] for f in doc["flavors"]]


def test_member_lists_public_flavors_in_flavorid_order(api):
    for path in ("/v2.1/flavors", "/v2.1/flavors/detail"):
        assert _ids(api.get_json(path, token=MEMBER_A)) == PUBLIC
        # a member's is_public is not a filter (only admins have query access to all types)
        assert _ids(api.get_json(path + "?is_public=none", token=MEMBER_B)) == PUBLIC


def test_admin_lists_public_flavors_unless_is_public_says_otherwise(api):
    assert _ids(api.get_json("/v2.1/flavors", token=ADMIN)) == PUBLIC
    assert _ids(api.get_json("/v2.1/flavors?is_public=true", token=ADMIN)) == PUBLIC
    assert _ids(api.get_json("/v2.1/flavors?is_public=None", token=ADMIN)) == sorted(FLAVORS)
    assert _ids(api.get_json("/v2.1/flavors/detail?is_public=false", token=ADMIN)) == PRIVATE
    resp = api.get("/v2.1/flavors?is_public=maybe", token=ADMIN)
    assert resp.status == 400
    assert resp.json() == {"badRequest": {"code": 400,
                                          "message": "Invalid is_public filter [maybe]"}}


def test_private_flavor_show(api):
    fid = PRIVATE[0]
    resp = api.get("/v2.1/flavors/" + fid, token=MEMBER_A)
    assert resp.status == 404
    assert resp.json() == {"itemNotFound": {"code": 404,
                                            "message": "Flavor %s could not be found." % fid}}
    assert api.get_json("/v2.1/flavors/" + fid, token=ADMIN)["flavor"]["id"] == fid


def test_unknown_flavor_is_404(api):
    resp = api.get("/v2.1/flavors/no-such-flavor", token=ADMIN, version="2.61")
    assert resp.status == 404
    assert resp.json()["itemNotFound"]["message"] == "Flavor no-such-flavor could not be found."
    assert resp.header("OpenStack-API-Version") == "compute 2.61"


@pytest.mark.parametrize("collection", ["flavors", "flavors/detail"])
def test_flavor_pagination(api, collection):
    seen, url, pages = [], "/v2.1/%s?limit=2" % collection, 0
    while url:
        doc = api.get_json(url)
        seen += _ids(doc)
        pages += 1
        links = doc.get("flavors_links")
        if len(doc["flavors"]) == 2:
            last = doc["flavors"][-1]["id"]
            assert links == [{"rel": "next", "href": "%s/v2.1/%s?limit=2&marker=%s"
                              % (api.base, collection, last)}]
        else:
            assert links is None
        url = links[0]["href"][len(api.base):] if links else None
    assert seen == PUBLIC
    assert pages == len(PUBLIC) // 2 + 1


def test_flavor_limit_zero_and_markers(api):
    assert api.get_json("/v2.1/flavors?limit=0") == {"flavors": []}
    assert _ids(api.get_json("/v2.1/flavors?marker=3")) == [f for f in PUBLIC if f > "3"]
    for token, marker in ((MEMBER_A, "nope"), (MEMBER_A, PRIVATE[0]), (ADMIN, "nope")):
        resp = api.get("/v2.1/flavors?marker=" + marker, token=token)
        assert resp.status == 400, (token, marker)
        assert resp.json() == {"badRequest": {"code": 400,
                                              "message": "marker [%s] not found" % marker}}
    # an admin finds a private flavor as a marker
    assert api.get("/v2.1/flavors?marker=%s" % PRIVATE[0], token=ADMIN).status == 200


def test_flavors_with_project_id_in_path(api):
    doc = api.get_json("/v2.1/%s/flavors?limit=1" % PROJECT_A)
    assert doc["flavors"][0]["links"] == [
        {"rel": "self", "href": "%s/v2.1/%s/flavors/1" % (api.base, PROJECT_A)},
        {"rel": "bookmark", "href": "%s/%s/flavors/1" % (api.base, PROJECT_A)}]
    assert doc["flavors_links"] == [{"rel": "next", "href": "%s/v2.1/%s/flavors?limit=1&marker=1"
                                     % (api.base, PROJECT_A)}]
    show = api.get_json("/v2.1/%s/flavors/2" % PROJECT_A)["flavor"]
    assert show["links"][0]["href"] == "%s/v2.1/%s/flavors/2" % (api.base, PROJECT_A)
