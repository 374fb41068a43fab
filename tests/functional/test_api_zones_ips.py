"""os-availability-zone (list for everyone, detail for admins) from the services the cells
report, and /servers/{id}/ips[/{network}], against the real server; the openstack CLI's
`availability zone list`."""
from __future__ import annotations

import pytest

from tests.conftest import sample, start_server
from tests.daily_support import ADMIN, MEMBER_A, MEMBER_B, Client, cli_json, sdk


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=5) as srv:
        yield srv


@pytest.fixture(scope="module")
def c(api):
    return Client(api)


def test_zone_list_from_demo_and_simulated_cell(c):
    status, doc = c.call("GET", "/v2.1/os-availability-zone", token=MEMBER_A)
    assert status == 200
    names = [z["zoneName"] for z in doc["availabilityZoneInfo"]]
    assert names == ["az-east", "az-west", "nova"]          # sorted; "internal" hidden
    for zone in doc["availabilityZoneInfo"]:
        assert zone["zoneState"] == {"available": True} and zone["hosts"] is None
    expected = sample("os-availability-zone", "availability-zone-list-resp.json")
    assert set(doc["availabilityZoneInfo"][0]) == set(expected["availabilityZoneInfo"][0])


def test_zone_detail_is_admin_only_and_lists_hosts(c):
    status, doc = c.call("GET", "/v2.1/os-availability-zone/detail", token=MEMBER_A)
    assert status == 403 and doc["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:os-availability-zone:detail to be performed."
    status, doc = c.call("GET", "/v2.1/os-availability-zone/detail", token=ADMIN)
    zones = {z["zoneName"]: z for z in doc["availabilityZoneInfo"]}
    assert set(zones) == {"az-east", "az-west", "internal", "nova"}
    assert zones["internal"]["hosts"]["cell1-conductor"]["nova-conductor"]["available"] is True
    nova_hosts = zones["nova"]["hosts"]
    assert "cell1-compute-1" in nova_hosts and "compute-01" in nova_hosts
    assert set(nova_hosts["cell1-compute-1"]["nova-compute"]) == {"available", "active",
                                                                  "updated_at"}
    assert "compute-02" in zones["az-east"]["hosts"]


def test_cli_and_sdk_zone_list(api):
    listed = cli_json(api, MEMBER_A, "availability", "zone", "list", "--compute")
    assert sorted(z["Zone Name"] for z in listed) == ["az-east", "az-west", "nova"]
    conn = sdk(api, MEMBER_A)
    assert sorted(z.name for z in conn.compute.availability_zones()) == \
        ["az-east", "az-west", "nova"]


def test_server_ips(c):
    sid = c.create_server("ips1", networks=[{"uuid": "3cb9bc59-5699-4588-a4b1-b87f96708bc6"}])
    status, doc = c.call("GET", "/v2.1/servers/%s/ips" % sid)
    assert status == 200               # shown while building too (an empty map then)
    server = c.wait_active(sid)
    status, doc = c.call("GET", "/v2.1/servers/%s/ips" % sid)
    assert status == 200
    assert set(doc["addresses"]) == set(server["addresses"])
    label = next(iter(doc["addresses"]))
    want = [{"version": a["version"], "addr": a["addr"]} for a in server["addresses"][label]]
    assert doc["addresses"][label] == want
    expected = sample("server-ips", "server-ips-resp.json")
    assert set(doc["addresses"][label][0]) == set(expected["addresses"]["private"][0])
    status, doc = c.call("GET", "/v2.1/servers/%s/ips/%s" % (sid, label))
    assert status == 200 and doc == {label: want}
    status, doc = c.call("GET", "/v2.1/servers/%s/ips/nonet" % sid)
    assert status == 404 and doc["itemNotFound"]["message"] == \
        "Instance is not a member of specified network"
    assert c.call("GET", "/v2.1/servers/%s/ips" % sid, token=MEMBER_B)[0] == 404
    assert c.call("GET", "/v2.1/servers/%s/ips" % sid, token=ADMIN)[0] == 200
    status, doc = c.call("GET", "/v2.1/servers/%s/ips?x=1" % sid, version="2.102")
    assert status == 400
    conn = sdk(c.api, MEMBER_A)
    server = conn.compute.get_server(sid)
    assert set(server.addresses) == {label}


def test_cli_server_show_addresses(api, c):
    sid = c.create_server("ips2", networks=[{"uuid": "3cb9bc59-5699-4588-a4b1-b87f96708bc6"}])
    server = c.wait_active(sid)
    shown = cli_json(api, MEMBER_A, "server", "show", sid)
    label = next(iter(server["addresses"]))
    assert shown["addresses"] == {label: [a["addr"] for a in server["addresses"][label]]}
