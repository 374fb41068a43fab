"""os-server-groups against the real server: shapes per microversion (2.13, 2.15, 2.64),
policy, quota, pages, membership from the "group" hint and server_groups in the server view
(2.71); openstacksdk, novaclient and the openstack CLI."""
from __future__ import annotations

import pytest

from tests.conftest import PROJECT_A, start_server
from tests.daily_support import ADMIN, MEMBER_A, MEMBER_B, Client, cli_json, novaclient_for, \
    openstack_cli, sdk

SG = "/v2.1/os-server-groups"


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=5) as srv:
        yield srv


@pytest.fixture(scope="module")
def c(api):
    return Client(api)


def test_shapes_per_microversion(c):
    status, doc = c.call("POST", SG, {"server_group": {"name": "g1",
                                                       "policies": ["affinity"]}})
    assert status == 200
    assert set(doc["server_group"]) == {"id", "name", "policies", "members", "metadata"}
    gid = doc["server_group"]["id"]
    shown = c.call("GET", SG + "/" + gid, version="2.13")[1]["server_group"]
    assert shown["project_id"] == PROJECT_A and shown["user_id"] == "demo"
    shown = c.call("GET", SG + "/" + gid, version="2.64")[1]["server_group"]
    assert shown["policy"] == "affinity" and shown["rules"] == {} and "policies" not in shown
    status, doc = c.call("POST", SG, {"server_group": {
        "name": "g2", "policy": "anti-affinity", "rules": {"max_server_per_host": 2}}},
        version="2.64")
    assert status == 200 and doc["server_group"]["rules"] == {"max_server_per_host": 2}
    assert c.call("DELETE", SG + "/" + doc["server_group"]["id"])[0] == 204


@pytest.mark.parametrize("version,body,needle", [
    ("2.1", {"server_group": {"name": "x", "policies": ["soft-affinity"]}}, "is not one of"),
    ("2.15", {"server_group": {"name": "x", "policies": ["affinity", "anti-affinity"]}},
     "is too long"),
    ("2.64", {"server_group": {"name": "x", "policies": ["affinity"]}}, "'policy' is a "
                                                                        "required property"),
    ("2.64", {"server_group": {"name": "x", "policy": "affinity",
                               "rules": {"max_server_per_host": 2}}},
     "Only anti-affinity policy supports rules."),
    ("2.64", {"server_group": {"name": "", "policy": "affinity"}}, "name"),
])
def test_bad_input(c, version, body, needle):
    status, doc = c.call("POST", SG, body, version=version)
    assert status == 400, doc
    assert needle in doc["badRequest"]["message"]


def test_other_projects_group_is_403_missing_is_404(c):
    gid = c.call("POST", SG, {"server_group": {"name": "mine", "policies": ["affinity"]}})[1][
        "server_group"]["id"]
    status, doc = c.call("GET", SG + "/" + gid, token=MEMBER_B)
    assert status == 403 and doc["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:os-server-groups:show to be performed."
    assert c.call("DELETE", SG + "/" + gid, token=MEMBER_B)[0] == 403
    assert gid not in [g["id"] for g in c.call("GET", SG, token=MEMBER_B)[1]["server_groups"]]
    assert gid in [g["id"] for g in c.call("GET", SG + "?all_projects=1",
                                           token=ADMIN)[1]["server_groups"]]
    status, doc = c.call("GET", SG + "/00000000-0000-0000-0000-000000000000")
    assert status == 404 and doc["itemNotFound"]["message"] == \
        "Instance group 00000000-0000-0000-0000-000000000000 could not be found."
    assert c.call("DELETE", SG + "/" + gid)[0] == 204
    assert c.call("GET", SG + "/" + gid)[0] == 404


def test_pages_with_limit_and_offset(c):
    token = "pg:abcdef0123"
    made = [c.call("POST", SG, {"server_group": {"name": "p%d" % i, "policies": ["affinity"]}},
                   token=token)[1]["server_group"]["id"] for i in range(5)]
    listed = [g["id"] for g in c.call("GET", SG, token=token)[1]["server_groups"]]
    assert listed == made
    page = c.call("GET", SG + "?limit=2&offset=1", token=token)[1]["server_groups"]
    assert [g["id"] for g in page] == made[1:3]
    status, doc = c.call("GET", SG + "?limit=x", token=token)
    assert status == 400
    status, doc = c.call("GET", SG + "?bogus=1", token=token, version="2.75")
    assert status == 400 and "Additional properties" in doc["badRequest"]["message"]


def test_quota():
    with start_server(demo_count=1, workers=1,
                      extra=("--quota", "server_groups=1,server_group_members=1")) as small:
        c = Client(small)
        gid = c.call("POST", SG, {"server_group": {"name": "a", "policies": ["affinity"]}})[1][
            "server_group"]["id"]
        status, doc = c.call("POST", SG, {"server_group": {"name": "b",
                                                           "policies": ["affinity"]}})
        assert status == 403 and doc["forbidden"]["message"] == \
            "Quota exceeded, too many server groups."
        absolute = c.call("GET", "/v2.1/limits")[1]["limits"]["absolute"]
        assert absolute["totalServerGroupsUsed"] == 1 and absolute["maxServerGroups"] == 1
        c.create_server("m1", hints={"group": gid})
        status, doc = c.call("POST", "/v2.1/servers", {
            "server": {"name": "m2", "flavorRef": "1", "networks": "none",
                       "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"},
            "os:scheduler_hints": {"group": gid}}, version="2.37")
        assert status == 403 and doc["forbidden"]["message"] == \
            "Quota exceeded, too many servers in group"


def test_membership_from_hint_and_server_view(c):
    gid = c.call("POST", SG, {"server_group": {"name": "web", "policies": ["anti-affinity"]}})[
        1]["server_group"]["id"]
    sid = c.create_server("member1", hints={"group": gid})
    assert c.call("GET", SG + "/" + gid)[1]["server_group"]["members"] == [sid]
    server = c.call("GET", "/v2.1/servers/" + sid, version="2.71")[1]["server"]
    assert server["server_groups"] == [gid]
    assert "server_groups" not in c.call("GET", "/v2.1/servers/" + sid,
                                         version="2.70")[1]["server"]
    status, doc = c.call("POST", "/v2.1/servers", {
        "server": {"name": "m", "flavorRef": "1", "networks": "none",
                   "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"},
        "os:scheduler_hints": {"group": "11111111-2222-3333-4444-555555555555"}},
        version="2.37")
    assert status == 400 and doc["badRequest"]["message"] == \
        "Instance group 11111111-2222-3333-4444-555555555555 could not be found."
    c.wait_active(sid)
    other = c.call("POST", SG, {"server_group": {"name": "tmp", "policies": ["affinity"]}})[1][
        "server_group"]["id"]
    kept = c.create_server("member2", hints={"group": other})
    assert c.call("DELETE", SG + "/" + other)[0] == 204
    assert c.call("GET", "/v2.1/servers/" + kept, version="2.71")[1]["server"][
        "server_groups"] == []
    assert c.call("DELETE", "/v2.1/servers/" + sid)[0] == 204
    c.wait(lambda: c.call("GET", SG + "/" + gid)[1]["server_group"]["members"] == [],
           what="deleted member gone from the group")


def test_clients(api):
    token = "cl:0123abcd"
    made = cli_json(api, token, "server", "group", "create", "--policy", "affinity", "clig")
    assert made["name"] == "clig" and made["policy"] == "affinity"
    listed = cli_json(api, token, "server", "group", "list")
    assert [g["Name"] for g in listed] == ["clig"]
    conn = sdk(api, token)
    assert [g.name for g in conn.compute.server_groups()] == ["clig"]
    nova = novaclient_for(api, token)
    assert nova.server_groups.get(made["id"]).name == "clig"
    openstack_cli(api, token, "server", "group", "delete", made["id"])
    assert cli_json(api, token, "server", "group", "list") == []
