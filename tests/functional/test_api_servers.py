"""GET /servers, /servers/detail, /servers/{id} against nova's samples, per microversion and role.

nova facts used (nova 34):
- samples: servers/[vX.Y/]server-get-resp.json, servers-details-resp.json, servers-list-resp.json
  and os-server-tags/v2.26/ (highest vX.Y <= the version asked for); samples up to 2.73 are
  admin views, from 2.90 member views.
- policies (nova/policies/extended_server_attributes.py, servers.py): OS-EXT-SRV-ATTR:* is
  ADMIN (hostname for everyone from 2.90), host_status is ADMIN, all_tenants is ADMIN.
- common.ViewBuilder._get_project_id: the project id appears in links when the caller's project
  id is in the request URL; wsgi.Resource: a URL project id other than the caller's is a 400.
"""
from __future__ import annotations

import re

import pytest

from tests.conftest import (ADMIN, MEMBER_A, MEMBER_B, PROJECT_A, PROJECT_B, DEMO_COUNT,
                            assert_same_shape, check_request_ids, demo_servers, minor, sample)

VERSIONS = ["2.1", "2.3", "2.9", "2.16", "2.19", "2.26", "2.47", "2.63", "2.73", "2.90", "2.96",
            "2.98", "2.100", "latest"]
# Sample folders that show another situation than an ordinary server (down cell).
NOT_ORDINARY = ("v2.69",)

EXT_2_1 = {"OS-EXT-SRV-ATTR:host", "OS-EXT-SRV-ATTR:instance_name",
           "OS-EXT-SRV-ATTR:hypervisor_hostname"}
EXT_2_3 = {"OS-EXT-SRV-ATTR:reservation_id", "OS-EXT-SRV-ATTR:launch_index",
           "OS-EXT-SRV-ATTR:kernel_id", "OS-EXT-SRV-ATTR:ramdisk_id",
           "OS-EXT-SRV-ATTR:root_device_name", "OS-EXT-SRV-ATTR:user_data"}
TIME_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def admin_only(m: int) -> set:
    keys = set(EXT_2_1)
    if m >= 3:
        keys |= EXT_2_3
        if m < 90:
            keys.add("OS-EXT-SRV-ATTR:hostname")
    if m >= 16:
        keys.add("host_status")
    return keys


def _servers():
    return demo_servers()


def reference_server(project=PROJECT_A) -> dict:
    """An ACTIVE server of ``project`` with an image, security groups and no fault."""
    for rec in _servers():
        if (rec["project_id"] == project and rec["vm_state"] == "active"
                and rec["task_state"] is None and rec["image"] and rec["addresses"]):
            return rec
    raise AssertionError("no reference server in the demo data")


def server_sample(version: str, view: str) -> dict:
    m = minor(version)
    if 26 <= m < 47:
        name = "server-tags-show-details-resp.json" if view == "show" \
            else "servers-tags-details-resp.json"
        doc = sample("os-server-tags", name, "2.26")
    else:
        name = "server-get-resp.json" if view == "show" else "servers-details-resp.json"
        doc = sample("servers", name, version, skip=NOT_ORDINARY)
    return doc["server"] if view == "show" else doc["servers"][0]


def expected_keys(version: str, view: str, admin: bool) -> set:
    m = minor(version)
    keys = set(server_sample(version, view))
    return keys | admin_only(m) if admin else keys - admin_only(m)


# -- shapes per microversion ----------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("who", ["member", "admin"])
def test_show_matches_sample(api, version, who):
    rec = reference_server()
    token = ADMIN if who == "admin" else MEMBER_A
    resp = api.get("/v2.1/servers/" + rec["id"], token=token, version=version)
    assert resp.status == 200, resp
    doc = resp.json()
    assert list(doc) == ["server"]
    server = doc["server"]
    assert set(server) == expected_keys(version, "show", who == "admin")
    assert_same_shape(server, server_sample(version, "show"))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("who", ["member", "admin"])
def test_detail_matches_sample(api, version, who):
    rec = reference_server()
    token = ADMIN if who == "admin" else MEMBER_A
    doc = api.get_json("/v2.1/servers/detail", token=token, version=version)
    assert set(doc) == {"servers"}      # fewer than 1000 servers: no next link
    by_id = {s["id"]: s for s in doc["servers"]}
    server = by_id[rec["id"]]
    assert set(server) == expected_keys(version, "detail", who == "admin")
    assert_same_shape(server, server_sample(version, "detail"))
    # Admin-only members exactly follow the role on every server of the page.
    hidden = admin_only(minor(version))
    for s in doc["servers"]:
        if who == "admin":
            assert hidden <= set(s), s["id"]
        else:
            assert not hidden & set(s), s["id"]


@pytest.mark.parametrize("version", VERSIONS)
def test_index_matches_sample(api, version):
    doc = api.get_json("/v2.1/servers?limit=5", version=version)
    ref = sample("servers", "servers-list-resp.json", version, skip=NOT_ORDINARY)
    assert set(doc) == set(ref) == {"servers", "servers_links"}
    for server in doc["servers"]:
        assert set(server) == set(ref["servers"][0]) == {"id", "name", "links"}
        assert_same_shape(server, ref["servers"][0])
    assert_same_shape(doc["servers_links"], ref["servers_links"])


def test_show_values_of_reference_server(api):
    rec = reference_server()
    s = api.get_json("/v2.1/servers/" + rec["id"], version="2.1")["server"]
    base = api.base
    assert s["id"] == rec["id"] and s["name"] == rec["name"]
    assert s["tenant_id"] == PROJECT_A and s["user_id"] == rec["user_id"]
    assert s["status"] == "ACTIVE" and s["OS-EXT-STS:vm_state"] == "active"
    assert s["links"] == [
        {"rel": "self", "href": "%s/v2.1/servers/%s" % (base, rec["id"])},
        {"rel": "bookmark", "href": "%s/servers/%s" % (base, rec["id"])},
    ]
    fid = rec["flavor"]["id"]
    assert s["flavor"] == {"id": fid, "links": [
        {"rel": "bookmark", "href": "%s/flavors/%s" % (base, fid)}]}
    iid = rec["image"]["id"]
    assert s["image"] == {"id": iid, "links": [
        {"rel": "bookmark", "href": "%s/images/%s" % (base, iid)}]}
    assert TIME_Z.match(s["created"]) and TIME_Z.match(s["updated"])
    assert s["metadata"] == rec["metadata"]
    assert set(s["addresses"]) == set(rec["addresses"])
    for label, addrs in s["addresses"].items():
        assert sorted(a["addr"] for a in addrs) == sorted(a["addr"] for a in rec["addresses"][label])
        # nova lists fixed addresses before floating ones
        types = [a["OS-EXT-IPS:type"] for a in addrs]
        assert types == sorted(types, key=lambda t: t == "floating")


def test_2_47_embeds_the_flavor(api):
    rec = reference_server()
    s = api.get_json("/v2.1/servers/" + rec["id"], version="2.47")["server"]
    f = rec["flavor"]
    assert s["flavor"] == {"vcpus": f["vcpus"], "ram": f["ram"], "disk": f["disk"],
                           "ephemeral": f["ephemeral"], "swap": f["swap"],
                           "original_name": f["name"], "extra_specs": f["extra_specs"]}


def test_show_view_and_detail_view_agree(api):
    """A server's document in the detail list is its show document (without server_groups)."""
    rec = reference_server()
    for version, token in (("2.1", MEMBER_A), ("2.70", ADMIN), ("latest", MEMBER_A)):
        show = api.get_json("/v2.1/servers/" + rec["id"], token=token, version=version)["server"]
        detail = {s["id"]: s for s in api.get_json(
            "/v2.1/servers/detail", token=token, version=version)["servers"]}[rec["id"]]
        show.pop("server_groups", None)
        assert show == detail


# -- project id in the path -----------------------------------------------------------------------

@pytest.mark.parametrize("suffix", ["servers", "servers/detail", "servers/{id}"])
def test_with_project_id_in_path(api, suffix):
    rec = reference_server()
    path = suffix.format(id=rec["id"])
    plain = api.get_json("/v2.1/" + path, version="2.60")
    scoped = api.get_json("/v2.1/%s/%s" % (PROJECT_A, path), version="2.60")
    one = lambda d: d["server"] if "server" in d else d["servers"][0]  # noqa: E731
    a, b = one(plain), one(scoped)
    assert a["id"] == b["id"]
    assert a["links"][0]["href"] == "%s/v2.1/servers/%s" % (api.base, a["id"])
    assert b["links"][0]["href"] == "%s/v2.1/%s/servers/%s" % (api.base, PROJECT_A, a["id"])
    assert b["links"][1]["href"] == "%s/%s/servers/%s" % (api.base, PROJECT_A, a["id"])
    if isinstance(b.get("image"), dict):
        assert b["image"]["links"][0]["href"] == "%s/%s/images/%s" % (
            api.base, PROJECT_A, b["image"]["id"])


def test_project_segment_when_project_id_anywhere_in_url(api):
    """_get_project_id looks for the caller's project id anywhere in request.url (tenant_id is
    a known index parameter, so nova's query schema keeps it; a member's is ignored)."""
    doc = api.get_json("/v2.1/servers?limit=1&tenant_id=" + PROJECT_A)
    assert doc["servers"][0]["links"][0]["href"].startswith(
        "%s/v2.1/%s/servers/" % (api.base, PROJECT_A))


@pytest.mark.parametrize("suffix", ["servers", "servers/detail", "servers/{id}", "flavors",
                                    "flavors/detail", "flavors/1"])
def test_mismatching_project_id_is_400(api, suffix):
    rec = reference_server()
    for token, ctx in ((MEMBER_A, PROJECT_A), (ADMIN, PROJECT_A)):
        resp = api.get("/v2.1/%s/%s" % (PROJECT_B, suffix.format(id=rec["id"])), token=token,
                       version="2.10")
        assert resp.status == 400, resp
        assert resp.json() == {"badRequest": {"code": 400, "message": (
            "Malformed request URL: URL's project_id '%s' doesn't match Context's project_id "
            "'%s'" % (PROJECT_B, ctx))}}
        assert resp.header("OpenStack-API-Version") == "compute 2.10"


def test_non_hex_project_segment_is_no_route(api):
    resp = api.get("/v2.1/not-a-project/servers")
    assert resp.status == 404
    assert resp.header("Content-Type").startswith("text/plain")


# -- tenant isolation ---------------------------------------------------------------------------

def test_member_sees_only_own_project(api):
    for token, project in ((MEMBER_A, PROJECT_A), (MEMBER_B, PROJECT_B)):
        doc = api.get_json("/v2.1/servers/detail", token=token, version="latest")
        want = {s["id"] for s in _servers() if s["project_id"] == project}
        assert {s["id"] for s in doc["servers"]} == want
        assert {s["tenant_id"] for s in doc["servers"]} == {project}
        index = api.get_json("/v2.1/servers", token=token)
        assert {s["id"] for s in index["servers"]} == want


def test_other_projects_server_is_404_for_member_and_visible_to_admin(api):
    rec = reference_server(PROJECT_A)
    resp = api.get("/v2.1/servers/" + rec["id"], token=MEMBER_B, version="2.20")
    assert resp.status == 404
    assert resp.json() == {"itemNotFound": {
        "code": 404, "message": "Instance %s could not be found." % rec["id"]}}
    check_request_ids(resp)
    admin_b = "admin:" + PROJECT_B
    s = api.get_json("/v2.1/servers/" + rec["id"], token=admin_b, version="2.20")["server"]
    assert s["tenant_id"] == PROJECT_A
    assert admin_only(20) <= set(s)


def test_unknown_server_is_404(api):
    uuid = "9e1b7a35-3f6e-4c2b-8b8a-000000000000"
    resp = api.get("/v2.1/servers/" + uuid, token=ADMIN)
    assert resp.status == 404
    assert resp.json()["itemNotFound"]["message"] == "Instance %s could not be found." % uuid


@pytest.mark.parametrize("value", ["", "1", "true", "True", "yes"])
@pytest.mark.parametrize("view", ["index", "detail"])
def test_all_tenants_is_admin_only(api, value, view):
    path = "/v2.1/servers" + ("/detail" if view == "detail" else "")
    resp = api.get(path + "?all_tenants=" + value, token=MEMBER_A)
    assert resp.status == 403, resp
    assert resp.json() == {"forbidden": {"code": 403, "message": (
        "Policy doesn't allow os_compute_api:servers:%s:get_all_tenants to be performed."
        % view)}}
    doc = api.get_json(path + "?all_tenants=" + value, token=ADMIN)
    assert len(doc["servers"]) == DEMO_COUNT
    assert len({s["id"] for s in doc["servers"]}) == DEMO_COUNT


def test_all_tenants_false_is_own_project(api):
    doc = api.get_json("/v2.1/servers?all_tenants=0", token=MEMBER_A)
    assert {s["id"] for s in doc["servers"]} == {
        s["id"] for s in _servers() if s["project_id"] == PROJECT_A}


def test_admin_without_all_tenants_sees_own_project(api):
    doc = api.get_json("/v2.1/servers", token=ADMIN)
    assert {s["id"] for s in doc["servers"]} == {
        s["id"] for s in _servers() if s["project_id"] == PROJECT_A}


# -- links carry the Host the client used -------------------------------------------------------

@pytest.mark.parametrize("host", ["compute.example.org:8774", "nova.example.org",
                                  "127.0.0.1:9", "[::1]:8774"])
def test_links_use_the_host_header(api, host):
    rec = reference_server()
    s = api.get_json("/v2.1/servers/" + rec["id"], host=host)["server"]
    assert s["links"][0]["href"] == "http://%s/v2.1/servers/%s" % (host, rec["id"])
    assert s["links"][1]["href"] == "http://%s/servers/%s" % (host, rec["id"])
    page = api.get_json("/v2.1/servers/detail?limit=1", host=host)
    assert page["servers_links"][0]["href"].startswith("http://%s/v2.1/servers/detail?" % host)
    assert page["servers"][0]["flavor"]["links"][0]["href"].startswith("http://%s/flavors/" % host)


def test_deleted_servers_are_absent(tmp_path):
    from tests.conftest import run_store_script, start_server
    recs = demo_servers(40)
    gone = [r for r in recs if r["project_id"] == PROJECT_A][:3]
    with start_server(demo_count=40, workers=1) as srv:
        assert srv.get("/v2.1/servers/" + gone[0]["id"]).status == 200
        run_store_script(srv.data_dir, "\n".join(
            "with w.batch() as b: b.delete_server(%r, 2)" % r["id"] for r in gone))
        for r in gone:
            assert srv.get("/v2.1/servers/" + r["id"]).status == 404
            assert srv.get("/v2.1/servers/" + r["id"], token=ADMIN).status == 404
        for path, token in (("/v2.1/servers/detail", MEMBER_A),
                            ("/v2.1/servers?all_tenants=1", ADMIN)):
            ids = {s["id"] for s in srv.get_json(path, token=token)["servers"]}
            assert not ids & {r["id"] for r in gone}
        walked = []
        url = "/v2.1/servers?limit=2"
        while url:
            doc = srv.get_json(url)
            walked += [s["id"] for s in doc["servers"]]
            links = doc.get("servers_links")
            url = links[0]["href"][len(srv.base):] if links else None
        expected = [r["id"] for r in recs if r["project_id"] == PROJECT_A and r not in gone]
        assert sorted(walked) == sorted(expected) and len(walked) == len(set(walked))
