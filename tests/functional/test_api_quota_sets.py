"""os-quota-sets against the real server: show/defaults/detail per microversion, admin update
and delete per project and per user, nova's 400s and 403s, and that the values are the ones
create enforces; the openstack CLI's `quota show`/`quota set` need keystone, so openstacksdk
and novaclient drive them here."""
from __future__ import annotations

import pytest

from tests.conftest import PROJECT_A, start_server
from tests.daily_support import ADMIN, MEMBER_A, MEMBER_B, Client, novaclient_for, sdk

QS = "/v2.1/os-quota-sets/"
PROJECT = "0123456789abcdef0123"
USER_TOKEN = "quser:" + PROJECT


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=5) as srv:
        yield srv


@pytest.fixture(scope="module")
def c(api):
    return Client(api)


def test_show_and_defaults_per_microversion(c):
    doc = c.call("GET", QS + PROJECT_A, token=MEMBER_A, version="2.1")[1]["quota_set"]
    assert doc["id"] == PROJECT_A and doc["instances"] == 10 and doc["cores"] == 20
    assert doc["floating_ips"] == -1 and doc["fixed_ips"] == -1
    assert doc["injected_file_path_bytes"] == 255
    doc = c.call("GET", QS + PROJECT_A, token=MEMBER_A, version="2.36")[1]["quota_set"]
    assert "floating_ips" not in doc and "injected_files" in doc
    doc = c.call("GET", QS + PROJECT_A, token=MEMBER_A, version="2.57")[1]["quota_set"]
    assert set(doc) == {"id", "cores", "instances", "key_pairs", "metadata_items", "ram",
                        "server_groups", "server_group_members"}
    defaults = c.call("GET", QS + PROJECT_A + "/defaults", token=MEMBER_B)[1]["quota_set"]
    assert defaults["instances"] == 10
    status, doc = c.call("GET", QS + PROJECT_A, token=MEMBER_B)
    assert status == 403 and doc["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:os-quota-sets:show to be performed."
    status, doc = c.call("GET", QS + PROJECT_A + "?foo=1", token=MEMBER_A, version="2.75")
    assert status == 400


def test_detail_counts_usage(c):
    doc = c.call("GET", QS + PROJECT_A + "/detail", token=MEMBER_A)[1]["quota_set"]
    demo_servers = doc["instances"]["in_use"]
    assert demo_servers >= 1 and doc["instances"]["limit"] == 10
    assert doc["instances"]["reserved"] == 0 and doc["cores"]["in_use"] >= demo_servers


def test_admin_update_is_what_create_enforces(c):
    body = {"quota_set": {"instances": 1}}
    status, doc = c.call("PUT", QS + PROJECT, body, token=MEMBER_A)
    assert status == 403
    status, doc = c.call("PUT", QS + PROJECT, body, token=ADMIN)
    assert status == 200 and doc["quota_set"]["instances"] == 1 and "id" not in doc["quota_set"]
    assert c.call("GET", QS + PROJECT, token=USER_TOKEN)[1]["quota_set"]["instances"] == 1
    c.create_server("only", token=USER_TOKEN)
    status, doc = c.call("POST", "/v2.1/servers", {"server": {
        "name": "two", "flavorRef": "1", "networks": "none",
        "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"}}, token=USER_TOKEN, version="2.37")
    assert status == 403 and "Quota exceeded for instances" in doc["forbidden"]["message"]
    limits = c.call("GET", "/v2.1/limits", token=USER_TOKEN)[1]["limits"]["absolute"]
    assert limits["maxTotalInstances"] == 1
    status, doc = c.call("PUT", QS + PROJECT, {"quota_set": {"instances": 0}}, token=ADMIN)
    assert status == 400 and doc["badRequest"]["message"] == \
        "Quota limit 0 for instances must be greater than or equal to already used and " \
        "reserved 1."
    assert c.call("PUT", QS + PROJECT, {"quota_set": {"instances": 0, "force": True}},
                  token=ADMIN)[0] == 200
    assert c.call("DELETE", QS + PROJECT, token=ADMIN)[0] == 202
    assert c.call("GET", QS + PROJECT, token=USER_TOKEN)[1]["quota_set"]["instances"] == 10


@pytest.mark.parametrize("body,needle", [
    ({"quota_set": {"instances": -2}}, "instances"),
    ({"quota_set": {"instances": "many"}}, "instances"),
    ({"quota_set": {"bogus": 1}}, "Additional properties"),
    ({"quota_set": {"floating_ips": 1}}, "Additional properties"),
])
def test_update_bad_input(c, body, needle):
    status, doc = c.call("PUT", QS + PROJECT, body, token=ADMIN, version="2.36")
    assert status == 400, doc
    assert needle in doc["badRequest"]["message"]


def test_per_user_quota(c):
    project = "fedcba98765432100000"
    alice = "alice:" + project
    status, doc = c.call("PUT", QS + project + "?user_id=alice", {"quota_set": {"key_pairs": 1}},
                         token=ADMIN)
    assert status == 200 and doc["quota_set"]["key_pairs"] == 1
    assert c.call("GET", QS + project + "?user_id=alice", token=alice)[1]["quota_set"][
        "key_pairs"] == 1
    assert c.call("GET", QS + project, token=alice)[1]["quota_set"]["key_pairs"] == 100
    pub = ("ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQDx8nkQv/zgGgB4rMYmIf+6A4l6Rr+o/6lHBQdW5aYd44b"
           "d8JttDCE/F/pNRr0lRE+PiqSPO8nDPHw0010JeMH9gYgnnFlyY3/OcJ02RhIPyyxYpv9FhY+2YiUkpwFOc"
           "LImyrxEsYXpD/0d3ac30bNH6Sw9JD9UZHYcpSxsIbECHw== x")
    assert c.call("POST", "/v2.1/os-keypairs", {"keypair": {"name": "a", "public_key": pub}},
                  token=alice)[0] == 200
    status, doc = c.call("POST", "/v2.1/os-keypairs", {"keypair": {"name": "b",
                                                                   "public_key": pub}},
                         token=alice)
    assert status == 403
    status, doc = c.call("PUT", QS + project + "?user_id=alice", {"quota_set": {
        "instances": 11}}, token=ADMIN)
    assert status == 400 and doc["badRequest"]["message"] == \
        "Quota limit 11 for instances must be less than or equal to 10."
    assert c.call("DELETE", QS + project + "?user_id=alice", token=ADMIN)[0] == 202
    assert c.call("POST", "/v2.1/os-keypairs", {"keypair": {"name": "b", "public_key": pub}},
                  token=alice)[0] == 200


def test_clients(api):
    conn = sdk(api, ADMIN)
    qs = conn.compute.get_quota_set(PROJECT_A)
    assert qs.instances == 10
    nova = novaclient_for(api, ADMIN)
    nova.quotas.update("abcabcabc", cores=7)
    assert nova.quotas.get("abcabcabc").cores == 7
    assert nova.quotas.defaults("abcabcabc").cores == 20
    nova.quotas.delete("abcabcabc")
    assert nova.quotas.get("abcabcabc").cores == 20
