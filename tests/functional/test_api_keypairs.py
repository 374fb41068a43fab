"""os-keypairs against the real server: nova's shapes per microversion, policy, pages, quota,
bad input, and the key pair's use by POST /servers (key_name) — raw HTTP, openstacksdk,
novaclient and the openstack CLI."""
from __future__ import annotations

import pytest

from tests.conftest import sample, start_server
from tests.daily_support import ADMIN, MEMBER_A, MEMBER_B, Client, novaclient_for, sdk

PUB = sample("os-keypairs", "keypairs-import-post-req.json")["keypair"]["public_key"]
KP = "/v2.1/os-keypairs"


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=10) as srv:
        yield srv


@pytest.fixture(scope="module")
def c(api):
    return Client(api)


def test_generate_before_2_92_and_shapes(c):
    status, doc = c.call("POST", KP, {"keypair": {"name": "gen1"}}, version="2.1")
    assert status == 200
    kp = doc["keypair"]
    assert set(kp) == {"fingerprint", "name", "private_key", "public_key", "user_id"}
    assert kp["private_key"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert kp["public_key"].startswith("ssh-rsa ") and kp["public_key"].endswith(
        " Generated-by-Nova")
    status, doc = c.call("POST", KP, {"keypair": {"name": "gen2", "type": "ssh"}},
                         version="2.2")
    assert status == 201 and doc["keypair"]["type"] == "ssh"
    status, doc = c.call("POST", KP, {"keypair": {"name": "gen3"}}, version="2.92")
    assert status == 400
    assert "'public_key' is a required property" in doc["badRequest"]["message"]


def test_import_fingerprint_show_and_delete(c):
    status, doc = c.call("POST", KP, {"keypair": {"name": "imp", "public_key": PUB}},
                         version="2.2")
    assert status == 201
    assert doc["keypair"]["fingerprint"] == "1e:2c:9b:56:79:4b:45:77:f9:ca:7a:98:2c:b0:d5:3c"
    assert "private_key" not in doc["keypair"]
    status, doc = c.call("GET", KP + "/imp", version="2.2")
    assert status == 200
    expected = sample("os-keypairs", "keypairs-get-resp.json", "2.2")["keypair"]
    assert set(doc["keypair"]) == set(expected)
    assert doc["keypair"]["deleted"] is False and isinstance(doc["keypair"]["id"], int)
    status, doc = c.call("GET", KP + "/imp", version="2.1")
    assert "type" not in doc["keypair"]
    assert c.call("POST", KP, {"keypair": {"name": "imp", "public_key": PUB}})[0] == 409
    assert c.call("GET", KP + "/imp", token=MEMBER_B)[0] == 404
    assert c.call("DELETE", KP + "/imp", version="2.2")[0] == 204
    status, doc = c.call("GET", KP + "/imp")
    assert status == 404
    assert doc["itemNotFound"]["message"] == "Keypair imp not found for user demo"
    assert c.call("DELETE", KP + "/imp")[0] == 404


@pytest.mark.parametrize("body,needle", [
    ({"keypair": {"name": "bad/name", "public_key": PUB}}, "does not match"),
    ({"keypair": {"name": "", "public_key": PUB}}, "name"),
    ({"keypair": {"name": "x", "public_key": "not a key"}},
     "Keypair data is invalid: failed to generate fingerprint"),
    ({"keypair": {"name": "x", "public_key": PUB, "extra": 1}}, "Additional properties"),
    ({"keypair": {"name": "x", "type": "rsa", "public_key": PUB}}, "is not one of"),
    ({"nokeypair": {}}, "'keypair' is a required property"),
])
def test_bad_input_is_400(c, body, needle):
    status, doc = c.call("POST", KP, body, version="2.2")
    assert status == 400, doc
    assert needle in doc["badRequest"]["message"]


def test_names_with_at_and_dot_from_2_92(c):
    name = "me.and.myself@this.nice.domain.com mooh."
    assert c.call("POST", KP, {"keypair": {"name": name, "public_key": PUB}},
                  version="2.91")[0] == 400
    status, doc = c.call("POST", KP, {"keypair": {"name": name, "public_key": PUB}},
                         version="2.92")
    assert status == 201 and doc["keypair"]["name"] == name


def test_admin_user_id_and_policy(c):
    body = {"keypair": {"name": "forbob", "public_key": PUB, "user_id": "bob"}}
    status, doc = c.call("POST", KP, body, token=MEMBER_A, version="2.10")
    assert status == 403
    assert doc["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:os-keypairs:create to be performed."
    assert c.call("POST", KP, body, token=ADMIN, version="2.10")[0] == 201
    status, doc = c.call("GET", KP + "?user_id=bob", token=ADMIN, version="2.10")
    assert [k["keypair"]["name"] for k in doc["keypairs"]] == ["forbob"]
    assert c.call("GET", KP + "?user_id=bob", token=MEMBER_A, version="2.10")[0] == 403
    assert c.call("GET", KP + "/forbob", token=MEMBER_B)[0] == 200     # bob's own
    assert c.call("GET", KP + "/forbob?user_id=bob", token=ADMIN, version="2.10")[0] == 200
    assert c.call("DELETE", KP + "/forbob?user_id=bob", token=ADMIN, version="2.10")[0] == 204
    status, doc = c.call("GET", KP + "?foo=1", token=ADMIN, version="2.75")
    assert status == 400 and "Additional properties" in doc["badRequest"]["message"]


def test_pages_from_2_35(c):
    user = "pager:0123456789abcdef"
    names = ["p%02d" % i for i in range(7)]
    for name in reversed(names):
        assert c.call("POST", KP, {"keypair": {"name": name, "public_key": PUB}},
                      token=user, version="2.35")[0] == 201
    seen, path = [], KP + "?limit=3"
    while path:
        status, doc = c.call("GET", path, token=user, version="2.35")
        assert status == 200
        seen += [k["keypair"]["name"] for k in doc["keypairs"]]
        nxt = doc.get("keypairs_links")
        path = nxt[0]["href"].split(c.api.base, 1)[1] if nxt else None
    assert seen == names
    status, doc = c.call("GET", KP + "?limit=2&marker=p03", token=user, version="2.35")
    assert [k["keypair"]["name"] for k in doc["keypairs"]] == ["p04", "p05"]
    status, doc = c.call("GET", KP + "?marker=nope", token=user, version="2.35")
    assert status == 400 and doc["badRequest"]["message"] == "Marker nope could not be found."
    status, doc = c.call("GET", KP + "?limit=2", token=user, version="2.34")
    assert len(doc["keypairs"]) == 7 and "keypairs_links" not in doc      # no pages before


def test_quota_counts_per_user():
    with start_server(demo_count=0, workers=1, extra=("--quota", "key_pairs=2")) as small:
        c = Client(small)
        for i in range(2):
            assert c.call("POST", KP, {"keypair": {"name": "q%d" % i, "public_key": PUB}})[0] \
                == 200
        status, doc = c.call("POST", KP, {"keypair": {"name": "q9", "public_key": PUB}})
        assert status == 403
        assert doc["forbidden"]["message"] == "Quota exceeded, too many key pairs."
        # another user of the same project has a count of their own
        assert c.call("POST", KP, {"keypair": {"name": "q9", "public_key": PUB}},
                      token="other:" + MEMBER_A.split(":")[1])[0] == 200


def test_server_create_key_name(c):
    user = "kn:00112233445566778899"
    status, doc = c.call("POST", "/v2.1/servers", {"server": {
        "name": "k", "flavorRef": "1", "networks": "none", "key_name": "missing",
        "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"}}, token=user, version="2.37")
    assert status == 400 and doc["badRequest"]["message"] == "Invalid key_name provided."
    assert c.call("POST", KP, {"keypair": {"name": "mine", "public_key": PUB}},
                  token=user)[0] == 200
    sid = c.create_server("withkey", token=user, key_name="mine")
    status, doc = c.call("GET", "/v2.1/servers/" + sid, token=user)
    assert doc["server"]["key_name"] == "mine"


def test_sdks(api, c):
    # The openstack CLI's keypair commands look the user up in keystone (identity v3) first,
    # even for one's own key pairs, so they need a keystone; the SDK and novaclient do not.
    token = "cli:0a0b0c0d0e0f"
    conn = sdk(api, token)
    made = conn.compute.create_keypair(name="sdkgen")
    assert made.private_key.startswith("-----BEGIN RSA PRIVATE KEY-----")
    conn.compute.create_keypair(name="sdkkey", public_key=PUB)
    assert [k.name for k in conn.compute.keypairs()] == ["sdkgen", "sdkkey"]
    assert conn.compute.get_keypair("sdkkey").fingerprint.startswith("1e:2c")
    nova = novaclient_for(api, token)
    assert sorted(k.name for k in nova.keypairs.list()) == ["sdkgen", "sdkkey"]
    assert nova.keypairs.get("sdkkey").public_key == PUB
    nova.keypairs.delete("sdkkey")
    conn.compute.delete_keypair("sdkgen")
    assert list(conn.compute.keypairs()) == []


def test_longest_names_nova_allows_fit_the_store(c):
    # nova's columns: 255-character user id and key pair name; together past LMDB's key size
    user, name = "u" * 255, "n" * 255
    body = {"keypair": {"name": name, "public_key": PUB, "user_id": user}}
    assert c.call("POST", KP, body, token=ADMIN, version="2.10")[0] == 201
    status, doc = c.call("GET", "%s/%s?user_id=%s" % (KP, name, user), token=ADMIN,
                         version="2.10")
    assert status == 200 and doc["keypair"]["name"] == name
    listed = c.call("GET", KP + "?user_id=" + user, token=ADMIN, version="2.35")[1]
    assert [k["keypair"]["name"] for k in listed["keypairs"]] == [name]
    project = "p" * 255
    assert c.call("PUT", "/v2.1/os-quota-sets/%s?user_id=%s" % (project, user),
                  {"quota_set": {"cores": 3}}, token=ADMIN)[0] == 200
    assert c.call("GET", "/v2.1/os-quota-sets/%s?user_id=%s" % (project, user),
                  token=ADMIN)[1]["quota_set"]["cores"] == 3
