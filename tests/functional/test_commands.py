"""Commands against the real server, embedded default (no PostgreSQL, no RabbitMQ): the store is
the record and the in-process simulated cell moves servers along (fastnova.outbound.simcell_embedded)."""
from __future__ import annotations


import pytest

from tests.commands_support import IMAGE, PROJECT, serve

OTHER = "bob:8ab7c0b1c3a84c1e9d2a5b3e4f6a7b8c"
ADMIN = "admin:admin"


@pytest.fixture(scope="module")
def srv():
    with serve("--sim-step", "0.03", workers=2) as s:
        yield s


def _active(srv, **extra):
    status, headers, body = srv.create(**extra)
    assert status == 202, body
    uuid = body["server"]["id"]
    srv.wait_status(uuid, "ACTIVE")
    return uuid


def test_create_answers_as_nova_and_reads_its_own_write(srv):
    status, headers, body = srv.create(name="web", metadata={"role": "web"})
    assert status == 202
    server = body["server"]
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}
    assert server["security_groups"] == [{"name": "default"}]
    assert len(server["adminPass"]) == 12
    assert headers["location"] == server["links"][0]["href"]
    assert headers["openstack-api-version"] == "compute 2.79"
    shown = srv.show(server["id"])          # read-your-writes: visible at once
    assert shown["status"] == "BUILD" and shown["metadata"] == {"role": "web"}
    assert shown["image"]["id"] == IMAGE and shown["tenant_id"] == PROJECT
    srv.wait_status(server["id"], "ACTIVE")
    active = srv.show(server["id"])
    assert active["addresses"]["private"][0]["addr"].startswith("10.0.")
    assert active["OS-SRV-USG:launched_at"] and active["hostId"]


def test_create_then_delete_is_gone(srv):
    uuid = _active(srv)
    status, _, body = srv.call("DELETE", "/v2.1/servers/" + uuid)
    assert status == 204 and body is None
    assert srv.show(uuid)["OS-EXT-STS:task_state"] == "deleting"
    srv.wait_status(uuid, 404)
    # repeating the request is safe: nova's 404
    assert srv.call("DELETE", "/v2.1/servers/" + uuid)[0] == 404


def test_delete_while_building_is_local(srv):
    status, _, body = srv.create()
    uuid = body["server"]["id"]
    assert srv.call("DELETE", "/v2.1/servers/" + uuid)[0] == 204
    assert srv.show(uuid) == 404
    # The cell must not bring it back: it works its casts in order, so once a server created
    # after this one is ACTIVE, whatever it would have sent for this one has been applied.
    after = _active(srv, name="after")
    assert srv.show(uuid) == 404
    assert srv.call("DELETE", "/v2.1/servers/" + after)[0] == 204    # its quota back
    srv.wait_status(after, 404)


@pytest.mark.parametrize("mv,server,message", [
    ("2.79", {"name": "x", "flavorRef": "1"}, "'networks' is a required property"),
    ("2.1", {"name": "", "flavorRef": "1"}, "Invalid input for field/attribute name"),
    ("2.1", {"name": " x", "flavorRef": "1", "imageRef": IMAGE},
     "An invalid 'name' value was provided. The name must be: printable characters. "
     "Can not start or end with whitespace."),
    ("2.1", {"name": "x", "flavorRef": "1", "imageRef": "nope"}, "imageRef"),
    ("2.1", {"name": "x", "flavorRef": "1", "imageRef": IMAGE, "bogus": 1},
     "Additional properties are not allowed ('bogus' was unexpected)"),
    ("2.51", {"name": "x", "flavorRef": "1", "imageRef": IMAGE, "networks": "auto",
              "tags": ["a"]}, "Additional properties are not allowed ('tags' was unexpected)"),
    ("2.1", {"name": "x", "flavorRef": "1"}, "Missing imageRef attribute"),
    ("2.1", {"name": "x", "flavorRef": "999", "imageRef": IMAGE},
     "Flavor 999 could not be found."),
    ("2.1", {"name": "x", "flavorRef": "1", "imageRef": IMAGE, "min_count": 3,
             "max_count": 2}, "min_count must be <= max_count"),
    ("2.1", {"name": "x", "flavorRef": "1", "imageRef": IMAGE, "key_name": "nokey"},
     "Invalid key_name provided."),
    ("2.1", {"name": "x", "flavorRef": "1", "imageRef": IMAGE,
             "networks": [{"uuid": "not-a-uuid"}]},
     "Bad networks format: network uuid is not in proper format (not-a-uuid)"),
])
def test_schema_and_validation_errors_are_novas_400(srv, mv, server, message):
    status, _, body = srv.call("POST", "/v2.1/servers", {"server": server}, mv=mv)
    assert status == 400, body
    assert message in body["badRequest"]["message"]


def test_malformed_body_and_media_type(srv):
    status, _, body = srv.call("POST", "/v2.1/servers", raw="{nope")
    assert (status, body["badRequest"]["message"]) == (400, "Malformed request body")
    status, _, body = srv.call("POST", "/v2.1/servers", raw="<x/>",
                               headers={"Content-Type": "application/xml"})
    assert status == 415 and body["badMediaType"]["message"] == "Unsupported Content-Type"


def test_actions_follow_novas_states(srv):
    uuid = _active(srv)
    act = lambda body, **kw: srv.call("POST", "/v2.1/servers/%s/action" % uuid, body, **kw)  # noqa
    assert act({"os-start": None})[0] == 409            # ACTIVE cannot start
    status, _, body = act({"os-start": None})
    assert body["conflictingRequest"]["message"] == (
        "Cannot 'start' instance %s while it is in vm_state active" % uuid)
    assert act({"reboot": {"type": "SOFT"}})[0] == 202
    assert srv.show(uuid)["status"] == "REBOOT"
    assert act({"reboot": {"type": "SOFT"}})[0] == 409  # task_state rebooting
    srv.wait_status(uuid, "ACTIVE")
    assert act({"os-stop": None})[0] == 202
    srv.wait_status(uuid, "SHUTOFF")
    assert act({"pause": None})[0] == 409
    assert act({"os-start": None})[0] == 202
    srv.wait_status(uuid, "ACTIVE")
    for action, status in (("pause", "PAUSED"), ("unpause", "ACTIVE"), ("suspend", "SUSPENDED"),
                           ("resume", "ACTIVE")):
        assert act({action: None})[0] == 202, action
        srv.wait_status(uuid, status)
    assert act({"resize": {"flavorRef": "2"}})[0] == 202
    srv.wait_status(uuid, "VERIFY_RESIZE")
    assert srv.show(uuid)["flavor"]["ram"] == 2048
    assert act({"revertResize": None})[0] == 202
    srv.wait_status(uuid, "ACTIVE")
    assert srv.show(uuid)["flavor"]["ram"] == 512
    assert act({"resize": {"flavorRef": "1"}})[2]["badRequest"]["message"] == \
        "When resizing, instances must change flavor!"
    assert act({"resize": {"flavorRef": "2"}})[0] == 202
    srv.wait_status(uuid, "VERIFY_RESIZE")
    assert act({"confirmResize": None})[0] == 204
    srv.wait_status(uuid, "ACTIVE")
    status, headers, body = act({"rebuild": {"imageRef": IMAGE, "name": "rebuilt"}})
    assert status == 202 and body["server"]["name"] == "rebuilt" and body["server"]["adminPass"]
    srv.wait_status(uuid, "ACTIVE")
    status, _, body = act({"createImage": {"name": "snap"}}, mv="2.45")
    assert status == 202 and "image_id" in body
    assert act({"nosuch": None})[2]["badRequest"]["message"] == "There is no such action: nosuch"


def test_lock_rules(srv):
    uuid = _active(srv)
    act = lambda body, **kw: srv.call("POST", "/v2.1/servers/%s/action" % uuid, body, **kw)  # noqa
    assert act({"lock": {"locked_reason": "maintenance"}}, mv="2.73")[0] == 202
    shown = srv.show(uuid, mv="2.73")
    assert shown["locked"] is True and shown["locked_reason"] == "maintenance"
    status, _, body = act({"os-stop": None})
    assert status == 409 and body["conflictingRequest"]["message"] == \
        "Instance %s is locked" % uuid
    assert srv.call("DELETE", "/v2.1/servers/" + uuid)[0] == 409
    assert act({"os-stop": None}, token=ADMIN)[0] == 202       # admin passes the lock
    srv.wait_status(uuid, "SHUTOFF")
    assert act({"unlock": None})[0] == 202
    assert srv.show(uuid)["locked"] is False
    # locked by an admin: the owner may not unlock (unlock_override is admin-only)
    assert act({"lock": None}, token=ADMIN)[0] == 202
    status, _, body = act({"unlock": None})
    assert status == 403 and "unlock_override" in body["forbidden"]["message"]
    assert act({"unlock": None}, token=ADMIN)[0] == 202


def test_other_projects_servers_are_not_found(srv):
    uuid = _active(srv)
    assert srv.call("POST", "/v2.1/servers/%s/action" % uuid, {"os-stop": None},
                    token=OTHER)[0] == 404
    assert srv.call("DELETE", "/v2.1/servers/" + uuid, token=OTHER)[0] == 404


def test_update_server(srv):
    uuid = _active(srv)
    status, _, body = srv.call("PUT", "/v2.1/servers/" + uuid,
                               {"server": {"name": "new", "description": "d"}}, mv="2.19")
    assert status == 200 and body["server"]["name"] == "new"
    assert body["server"]["description"] == "d"
    assert "OS-EXT-STS:vm_state" not in body["server"]          # reduced before 2.75
    status, _, body = srv.call("PUT", "/v2.1/servers/" + uuid, {"server": {"name": "n2"}},
                               mv="2.75")
    assert body["server"]["OS-EXT-STS:vm_state"] == "active"
    assert srv.call("PUT", "/v2.1/servers/" + uuid, {"server": {"foo": 1}})[0] == 400


def test_metadata(srv):
    uuid = _active(srv, metadata={"a": "1"})
    base = "/v2.1/servers/%s/metadata" % uuid
    assert srv.call("GET", base)[2] == {"metadata": {"a": "1"}}
    assert srv.call("POST", base, {"metadata": {"b": "2"}})[2] == \
        {"metadata": {"a": "1", "b": "2"}}
    assert srv.call("PUT", base + "/c", {"meta": {"c": "3"}})[2] == {"meta": {"c": "3"}}
    status, _, body = srv.call("PUT", base + "/c", {"meta": {"d": "3"}})
    assert (status, body["badRequest"]["message"]) == (400, "Request body and URI mismatch")
    assert srv.call("GET", base + "/c")[2] == {"meta": {"c": "3"}}
    assert srv.call("DELETE", base + "/c")[0] == 204
    assert srv.call("GET", base + "/c")[2]["itemNotFound"]["message"] == \
        "Metadata item was not found"
    assert srv.call("PUT", base, {"metadata": {"z": "9"}})[2] == {"metadata": {"z": "9"}}
    assert srv.show(uuid)["metadata"] == {"z": "9"}
    too_many = {"k%d" % i: "v" for i in range(129)}
    status, _, body = srv.call("PUT", base, {"metadata": too_many})
    assert status == 403 and body["forbidden"]["message"] == \
        "Maximum number of metadata items exceeds 128"


def test_tags(srv):
    uuid = _active(srv)
    base = "/v2.1/servers/%s/tags" % uuid
    assert srv.call("GET", base, mv="2.25")[0] == 404
    status, headers, _ = srv.call("PUT", base + "/blue", mv="2.26")
    assert status == 201 and headers["location"].endswith("/servers/%s/tags/blue" % uuid)
    assert srv.call("PUT", base + "/blue", mv="2.26")[0] == 204
    assert srv.call("GET", base + "/blue", mv="2.26")[0] == 204
    assert srv.call("GET", base + "/red", mv="2.26")[0] == 404
    assert srv.call("PUT", base, {"tags": ["x", "y"]}, mv="2.26")[2] == {"tags": ["x", "y"]}
    assert srv.show(uuid, mv="2.26")["tags"] == ["x", "y"]
    assert srv.call("DELETE", base + "/x", mv="2.26")[0] == 204
    assert srv.call("DELETE", base, mv="2.26")[0] == 204
    assert srv.call("GET", base, mv="2.26")[2] == {"tags": []}


def test_limits_and_quota(srv):
    fresh = "quota:" + "abcdef0123456789abcdef0123456789"
    status, _, body = srv.call("GET", "/v2.1/limits", token=fresh, mv="2.57")
    absolute = body["limits"]["absolute"]
    assert absolute["maxTotalInstances"] == 10 and absolute["totalInstancesUsed"] == 0
    assert "maxPersonality" not in absolute and "maxImageMeta" not in absolute
    legacy = srv.call("GET", "/v2.1/limits", token=fresh, mv="2.1")[2]["limits"]["absolute"]
    assert legacy["maxImageMeta"] == 128 and legacy["maxTotalFloatingIps"] == -1
    for i in range(5):
        assert srv.call("POST", "/v2.1/servers", {"server": {
            "name": "q%d" % i, "flavorRef": "4", "imageRef": IMAGE}},
            token=fresh, mv="2.1")[0] == 202
    absolute = srv.call("GET", "/v2.1/limits", token=fresh)[2]["limits"]["absolute"]
    assert (absolute["totalInstancesUsed"], absolute["totalCoresUsed"]) == (5, 20)
    status, _, body = srv.call("POST", "/v2.1/servers", {"server": {
        "name": "over", "flavorRef": "4", "imageRef": IMAGE}}, token=fresh, mv="2.1")
    assert status == 403
    assert body["forbidden"]["message"] == (
        "Quota exceeded for cores: Requested 4, but already used 20 of 20 cores")


def test_multi_create_and_reservation_id(srv):
    status, _, body = srv.call("POST", "/v2.1/servers", {"server": {
        "name": "many", "flavorRef": "1", "imageRef": IMAGE, "min_count": 2, "max_count": 2,
        "return_reservation_id": True}}, mv="2.1")
    assert status == 202 and body["reservation_id"].startswith("r-")
