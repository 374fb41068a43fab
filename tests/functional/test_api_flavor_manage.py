"""Flavors, complete: extra specs (read for everyone, write for admins, validated from 2.86),
flavor access, and flavor create/update/delete for admins, against the real server; the
openstack CLI's `flavor show` and `flavor set --property` among them."""
from __future__ import annotations

import pytest

from tests.conftest import PROJECT_A, PROJECT_B, sample, start_server
from tests.daily_support import ADMIN, MEMBER_A, MEMBER_B, Client, cli_json, novaclient_for, sdk

ES = "/v2.1/flavors/%s/os-extra_specs"


@pytest.fixture(scope="module")
def api():
    with start_server(demo_count=5) as srv:
        yield srv


@pytest.fixture(scope="module")
def c(api):
    return Client(api)


def _flavor(c, fid, **extra):
    body = {"flavor": dict({"name": "f" + fid, "ram": 512, "vcpus": 1, "disk": 1, "id": fid},
                           **extra)}
    status, doc = c.call("POST", "/v2.1/flavors", body, token=ADMIN, version="2.75")
    assert status == 200, doc
    return doc["flavor"]


def test_create_update_delete(c):
    req = sample("flavor-access", "flavor-create-req.json")
    status, doc = c.call("POST", "/v2.1/flavors", req, token=MEMBER_A)
    assert status == 403 and doc["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:os-flavor-manage:create to be performed."
    status, doc = c.call("POST", "/v2.1/flavors", dict(req, flavor=dict(
        req["flavor"], id="mf1", name="made", description="d1")), token=ADMIN, version="2.75")
    assert status == 200
    flavor = doc["flavor"]
    assert flavor["id"] == "mf1" and flavor["description"] == "d1"
    assert flavor["extra_specs"] == {} and flavor["os-flavor-access:is_public"] is False
    shown = c.call("GET", "/v2.1/flavors/mf1", token=ADMIN, version="2.75")[1]["flavor"]
    assert shown == flavor
    # private and not shared: the member does not see it
    assert c.call("GET", "/v2.1/flavors/mf1", token=MEMBER_A)[0] == 404
    status, doc = c.call("POST", "/v2.1/flavors", {"flavor": dict(req["flavor"], id="mf1")},
                         token=ADMIN)
    assert status == 409 and doc["conflictingRequest"]["message"] == \
        "Flavor with ID mf1 already exists."
    status, doc = c.call("POST", "/v2.1/flavors", {"flavor": dict(req["flavor"], id="mf2",
                                                                  name="made")}, token=ADMIN)
    assert status == 409 and "Flavor with name made already exists." in str(doc)
    # description update from 2.55 only
    assert c.call("PUT", "/v2.1/flavors/mf1", {"flavor": {"description": "x"}}, token=ADMIN,
                  version="2.54")[0] == 404
    status, doc = c.call("PUT", "/v2.1/flavors/mf1", {"flavor": {"description": "d2"}},
                         token=ADMIN, version="2.55")
    assert status == 200 and doc["flavor"]["description"] == "d2"
    assert c.call("DELETE", "/v2.1/flavors/mf1", token=MEMBER_A)[0] == 403
    assert c.call("DELETE", "/v2.1/flavors/mf1", token=ADMIN)[0] == 202
    assert c.call("GET", "/v2.1/flavors/mf1", token=ADMIN)[0] == 404
    assert c.call("DELETE", "/v2.1/flavors/mf1", token=ADMIN)[0] == 404


@pytest.mark.parametrize("flavor,needle", [
    ({"name": "x", "ram": 0, "vcpus": 1, "disk": 1}, "ram"),
    ({"name": "x", "ram": 1, "vcpus": 1}, "'disk' is a required property"),
    ({"name": " x", "ram": 1, "vcpus": 1, "disk": 1}, "name"),
    ({"name": "x", "ram": 1, "vcpus": 1, "disk": 1, "id": " a"}, "id"),
    ({"name": "x", "ram": 1, "vcpus": 1, "disk": 1, "bogus": 1}, "Additional properties"),
])
def test_create_bad_input(c, flavor, needle):
    status, doc = c.call("POST", "/v2.1/flavors", {"flavor": flavor}, token=ADMIN)
    assert status == 400, doc
    assert needle in doc["badRequest"]["message"]


def test_extra_specs_read_write_and_policy(c):
    _flavor(c, "es1")
    req = sample("flavor-extra-specs", "flavor-extra-specs-create-req.json")
    status, doc = c.call("POST", ES % "es1", req, token=MEMBER_A)
    assert status == 403 and "os-flavor-extra-specs:create" in doc["forbidden"]["message"]
    status, doc = c.call("POST", ES % "es1", req, token=ADMIN)
    assert status == 200 and doc == req
    assert c.call("GET", ES % "es1", token=MEMBER_A)[1] == req
    assert c.call("GET", ES % "es1" + "/hw:numa_nodes", token=MEMBER_B)[1] == \
        {"hw:numa_nodes": "1"}
    status, doc = c.call("GET", ES % "es1" + "/nope", token=MEMBER_B)
    assert status == 404 and doc["itemNotFound"]["message"] == \
        "Flavor es1 has no extra specs with key nope."
    status, doc = c.call("PUT", ES % "es1" + "/hw:numa_nodes", {"hw:numa_nodes": 2},
                         token=ADMIN)
    assert status == 200 and doc == {"hw:numa_nodes": 2}
    assert c.call("GET", ES % "es1" + "/hw:numa_nodes")[1] == {"hw:numa_nodes": "2"}
    status, doc = c.call("PUT", ES % "es1" + "/hw:numa_nodes", {"other": "2"}, token=ADMIN)
    assert status == 400 and doc["badRequest"]["message"] == "Request body and URI mismatch"
    # the flavor documents show them from 2.61
    shown = c.call("GET", "/v2.1/flavors/es1", version="2.61")[1]["flavor"]
    assert shown["extra_specs"] == {"hw:cpu_policy": "shared", "hw:numa_nodes": "2"}
    assert c.call("DELETE", ES % "es1" + "/hw:cpu_policy", token=MEMBER_A)[0] == 403
    assert c.call("DELETE", ES % "es1" + "/hw:cpu_policy", token=ADMIN)[0] == 200
    assert c.call("DELETE", ES % "es1" + "/hw:cpu_policy", token=ADMIN)[0] == 404
    assert c.call("GET", ES % "nosuch", token=ADMIN)[0] == 404


@pytest.mark.parametrize("specs,message", [
    ({"hw:cpu_policy": "fast"}, "Validation failed; 'fast' is not one of: dedicated, "
                                "shared, mixed."),
    ({"hw:numa_nodes": "x"}, "Validation failed; 'x' is not a valid integer value."),
    ({"hw:not_a_thing": "1"}, "Validation failed; extra spec 'hw:not_a_thing' does not "
                              "appear to be a valid extra spec."),
    ({"hw:cpu_realtime": "maybe"}, "Validation failed; 'maybe' is not a valid boolean-like "
                                   "value."),
    ({"resources:VCPU": "x"}, "Validation failed; 'x' is not a valid integer value."),
    ({"trait:HW_CPU_X86_AVX": "wanted"}, "Validation failed; 'wanted' is not one of: "
                                         "required, forbidden."),
])
def test_extra_specs_validated_from_2_86(c, specs, message):
    _flavor(c, "v%d" % abs(hash(str(specs)) % 100000))
    fid = "v%d" % abs(hash(str(specs)) % 100000)
    status, doc = c.call("POST", ES % fid, {"extra_specs": specs}, token=ADMIN, version="2.86")
    assert status == 400 and doc["badRequest"]["message"] == message
    # before 2.86 anything goes
    assert c.call("POST", ES % fid, {"extra_specs": specs}, token=ADMIN, version="2.85")[0] \
        == 200


def test_extra_specs_that_pass(c):
    _flavor(c, "ok1")
    good = {"hw:cpu_policy": "dedicated", "resources1:CUSTOM_GPU": "2",
            "trait:CUSTOM_FAST": "required", "trait:HW_CPU_X86_AVX2": "forbidden",
            "resources:VCPU": "2", "unknownns:whatever": "x", "plain": "y",
            "aggregate_instance_extra_specs:ssd": "true", "hw:numa_cpus.0": "0,1"}
    status, doc = c.call("POST", ES % "ok1", {"extra_specs": good}, token=ADMIN,
                         version="2.86")
    assert status == 200, doc


def test_flavor_access(c):
    _flavor(c, "pv1", **{"os-flavor-access:is_public": False})
    path = "/v2.1/flavors/pv1/os-flavor-access"
    assert c.call("GET", path, token=ADMIN)[1] == {"flavor_access": []}
    body = {"addTenantAccess": {"tenant": PROJECT_A}}
    assert c.call("POST", "/v2.1/flavors/pv1/action", body, token=MEMBER_A)[0] == 403
    status, doc = c.call("POST", "/v2.1/flavors/pv1/action", body, token=ADMIN)
    assert status == 200
    assert doc == {"flavor_access": [{"flavor_id": "pv1", "tenant_id": PROJECT_A}]}
    assert c.call("POST", "/v2.1/flavors/pv1/action", body, token=ADMIN)[0] == 409
    # now project A sees it, B does not
    assert c.call("GET", "/v2.1/flavors/pv1", token=MEMBER_A)[0] == 200
    assert c.call("GET", "/v2.1/flavors/pv1", token=MEMBER_B)[0] == 404
    assert c.call("GET", ES % "pv1", token=MEMBER_B)[0] == 404
    assert c.call("GET", path, token=MEMBER_A)[0] == 403
    status, doc = c.call("POST", "/v2.1/flavors/pv1/action",
                         {"removeTenantAccess": {"tenant": PROJECT_B}}, token=ADMIN)
    assert status == 404 and doc["itemNotFound"]["message"] == \
        "Flavor access not found for pv1 / %s combination." % PROJECT_B
    assert c.call("POST", "/v2.1/flavors/pv1/action",
                  {"removeTenantAccess": {"tenant": PROJECT_A}}, token=ADMIN)[0] == 200
    assert c.call("GET", "/v2.1/flavors/pv1", token=MEMBER_A)[0] == 404
    status, doc = c.call("GET", "/v2.1/flavors/1/os-flavor-access", token=ADMIN)
    assert status == 404 and doc["itemNotFound"]["message"] == \
        "Access list not available for public flavors."
    status, doc = c.call("POST", "/v2.1/flavors/1/action", body, token=ADMIN, version="2.7")
    assert status == 409 and doc["conflictingRequest"]["message"] == \
        "Can not add access to a public flavor."


def test_openstack_cli_flavor_show_and_sdk_set_property(api, c):
    # `openstack flavor set` resolves projects in keystone first (identity v3), so the
    # property is set with openstacksdk and novaclient here; `flavor show` needs compute only.
    _flavor(c, "cli1")
    conn = sdk(api, ADMIN)
    conn.compute.create_flavor_extra_specs("cli1", {"hw:cpu_policy": "dedicated"})
    shown = cli_json(api, MEMBER_A, "flavor", "show", "cli1")
    assert shown["id"] == "cli1" and shown["ram"] == 512
    assert shown["properties"] == {"hw:cpu_policy": "dedicated"}
    nova = novaclient_for(c.api, ADMIN)
    flavor = nova.flavors.get("cli1")
    flavor.set_keys({"hw:numa_nodes": "1"})
    assert flavor.get_keys() == {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}
    from novaclient import exceptions
    with pytest.raises(exceptions.BadRequest):
        flavor.set_keys({"hw:cpu_policy": "fast"})
    flavor.unset_keys(["hw:numa_nodes"])
    assert cli_json(api, MEMBER_A, "flavor", "show", "cli1")["properties"] == \
        {"hw:cpu_policy": "dedicated"}
    assert conn.compute.get_flavor("cli1").extra_specs == {"hw:cpu_policy": "dedicated"}
