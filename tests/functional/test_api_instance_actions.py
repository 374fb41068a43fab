"""os-instance-actions against the real server: every command records its action and request
id, the embedded simulated cell adds the events through the feed path; list and show per
microversion (2.21, 2.51, 2.58, 2.62, 2.66, 2.84), policy, pages and changes-since; the
openstack CLI's `server event list/show`."""
from __future__ import annotations

import pytest

from tests.conftest import sample, start_server
from tests.daily_support import ADMIN, MEMBER_A, MEMBER_B, Client, cli_json, sdk

IA = "/v2.1/servers/%s/os-instance-actions"


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=5) as srv:
        yield srv


@pytest.fixture(scope="module")
def c(api):
    return Client(api)


@pytest.fixture(scope="module")
def stopped(c):
    """A server created, then stopped: two actions, each finished by its events."""
    sid = c.create_server("acts")
    c.wait_active(sid)
    assert c.call("POST", "/v2.1/servers/%s/action" % sid, {"os-stop": None})[0] == 202
    c.wait(lambda: c.call("GET", "/v2.1/servers/" + sid)[1]["server"]["status"] == "SHUTOFF",
           what="SHUTOFF")

    def finished():
        acts = c.call("GET", IA % sid)[1]["instanceActions"]
        if len(acts) < 2:
            return None
        done = [c.call("GET", (IA % sid) + "/" + a["request_id"], token=ADMIN,
                       version="2.84")[1]["instanceAction"] for a in acts]
        return done if all(e["finish_time"] for a in done for e in a["events"]) and \
            all(a["events"] for a in done) else None
    return sid, c.wait(finished, what="events finished")


def test_list_records_every_command_newest_first(c, stopped):
    sid, _full = stopped
    status, doc = c.call("GET", IA % sid)
    assert status == 200
    acts = doc["instanceActions"]
    assert [a["action"] for a in acts] == ["stop", "create"]
    expected = sample("os-instance-actions", "instance-actions-list-resp.json")
    assert set(acts[0]) == set(expected["instanceActions"][0])
    assert acts[0]["request_id"].startswith("req-") and acts[0]["user_id"] == "demo"
    assert "updated_at" in c.call("GET", IA % sid, version="2.58")[1]["instanceActions"][0]


def test_request_id_is_the_commands_own(c):
    sid = c.create_server("rid")
    rid = c.last_headers["x-openstack-request-id"]
    status, doc = c.call("GET", (IA % sid) + "/" + rid)
    assert status == 200 and doc["instanceAction"]["action"] == "create"


def test_show_events_per_microversion_and_role(c, stopped):
    sid, full = stopped
    stop = full[0]
    assert stop["action"] == "stop"
    event = stop["events"][0]
    assert event["event"] == "compute_stop_instance" and event["result"] == "Success"
    assert event["host"].startswith("cell1-compute-") and len(event["hostId"]) == 56
    assert set(event) == set(sample("os-instance-actions", "instance-action-get-resp.json",
                                    "2.84")["instanceAction"]["events"][0])
    path = (IA % sid) + "/" + stop["request_id"]
    member = c.call("GET", path, version="2.50")[1]["instanceAction"]
    assert "events" not in member
    member = c.call("GET", path, version="2.51")[1]["instanceAction"]
    assert set(member["events"][0]) == {"event", "start_time", "finish_time", "result"}
    member = c.call("GET", path, version="2.62")[1]["instanceAction"]
    assert "hostId" in member["events"][0] and "host" not in member["events"][0]
    admin = c.call("GET", path, token=ADMIN, version="2.61")[1]["instanceAction"]
    assert "traceback" in admin["events"][0] and "host" not in admin["events"][0]
    assert c.call("GET", path, token=MEMBER_B)[0] == 404
    status, doc = c.call("GET", (IA % sid) + "/req-nope")
    assert status == 404 and doc["itemNotFound"]["message"] == "Action req-nope not found"


def test_pages_and_changes_since(c, stopped):
    sid, full = stopped
    status, doc = c.call("GET", (IA % sid) + "?limit=1", version="2.58")
    assert [a["action"] for a in doc["instanceActions"]] == ["stop"]
    nxt = doc["links"][0]["href"]
    assert "marker=" + full[0]["request_id"] in nxt
    status, doc = c.call("GET", nxt.split(c.api.base, 1)[1], version="2.58")
    assert [a["action"] for a in doc["instanceActions"]] == ["create"]
    status, doc = c.call("GET", (IA % sid) + "?marker=req-x", version="2.58")
    assert status == 400 and doc["badRequest"]["message"] == "Marker None could not be found."
    since = full[0]["updated_at"]
    status, doc = c.call("GET", (IA % sid) + "?changes-since=" + since, version="2.58")
    assert [a["action"] for a in doc["instanceActions"]] == ["stop"]
    status, doc = c.call("GET", (IA % sid) + "?changes-before=" + full[1]["updated_at"],
                         version="2.66")
    assert [a["action"] for a in doc["instanceActions"]] == ["create"]
    status, doc = c.call("GET", (IA % sid) + "?changes-before=2000-01-01T00:00:00Z",
                         version="2.65")
    assert status == 400
    status, doc = c.call("GET", (IA % sid) + "?changes-since=2030-01-01T00:00:00Z&"
                         "changes-before=2020-01-01T00:00:00Z", version="2.66")
    assert status == 400 and doc["badRequest"]["message"] == \
        "The value of changes-since must be less than or equal to changes-before."
    status, doc = c.call("GET", (IA % sid) + "?changes-since=yesterday", version="2.58")
    assert status == 400


def test_deleted_servers_actions_from_2_21(c):
    sid = c.create_server("gone")
    c.wait_active(sid)
    assert c.call("DELETE", "/v2.1/servers/" + sid)[0] == 204
    c.wait(lambda: c.call("GET", "/v2.1/servers/" + sid)[0] == 404, what="deleted")
    assert c.call("GET", IA % sid, version="2.20")[0] == 404
    status, doc = c.call("GET", IA % sid, version="2.21")
    assert [a["action"] for a in doc["instanceActions"]] == ["delete", "create"]


def test_clients(api, c, stopped):
    sid, full = stopped
    listed = cli_json(api, MEMBER_A, "server", "event", "list", sid)
    assert [e["Action"] for e in listed] == ["stop", "create"]
    shown = cli_json(api, ADMIN, "server", "event", "show", sid, full[0]["request_id"])
    assert shown["action"] == "stop" and shown["events"][0]["event"] == "compute_stop_instance"
    conn = sdk(api, MEMBER_A)
    assert [a.action for a in conn.compute.server_actions(sid)] == ["stop", "create"]
