"""The real clients, unchanged, against the real server: openstacksdk and python-novaclient.

Both discover the compute endpoint's version document, negotiate a microversion, list servers
following nova's pagination (next links for openstacksdk, markers for novaclient's limit=-1),
show a server and list flavors.  What they see must be what a raw GET returns.
"""
from __future__ import annotations

import warnings

import pytest

from tests.conftest import (ADMIN, BIG_ALL, BIG_COUNT, BIG_OWN, BIG_RECS, MEMBER_A,
                            PROJECT_A)

COUNT = BIG_COUNT
RECS, ALL, OWN = BIG_RECS, BIG_ALL, BIG_OWN


@pytest.fixture(scope="module")
def api(big_api):
    return big_api


def sdk(api, token):
    import openstack
    warnings.filterwarnings("ignore", module="openstack")
    endpoint = api.base + "/v2.1"
    return openstack.connection.Connection(
        auth_type="admin_token", auth={"endpoint": endpoint, "token": token},
        compute_endpoint_override=endpoint, compute_api_version="2")


def novaclient_for(api, token, version):
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token
    from novaclient import client
    endpoint = api.base + "/v2.1"
    return client.Client(version, session=session.Session(auth=Token(endpoint, token)),
                         endpoint_override=endpoint)


# -- openstacksdk ---------------------------------------------------------------------------------

# openstacksdk builds a Resource per server (~15 ms each for a detail document, client side),
# so the detail walks stay small; the 1200-server walk uses the index view.

@pytest.mark.parametrize("details,limit", [(True, 40), (False, None), (False, 7)])
def test_sdk_lists_own_servers_with_pagination(api, details, limit):
    conn = sdk(api, MEMBER_A)
    kw = {} if limit is None else {"limit": limit}
    servers = list(conn.compute.servers(details=details, paginated=True, **kw))
    assert [s.id for s in servers] == OWN
    raw = {s["id"]: s for s in api.get_json("/v2.1/servers" + ("/detail" if details else ""),
                                            version="2.100")["servers"]}
    for server in servers[:10]:
        assert server.name == raw[server.id]["name"]
        if details:
            assert server.status == raw[server.id]["status"]
            assert server.addresses == raw[server.id]["addresses"]


def test_sdk_admin_pages_past_max_limit(api):
    conn = sdk(api, ADMIN)
    servers = list(conn.compute.servers(details=False, all_projects=True))
    assert [s.id for s in servers] == ALL      # 1000 + 200: followed the next link


def test_sdk_show_matches_raw_get(api):
    conn = sdk(api, MEMBER_A)
    sid = OWN[3]
    server = conn.compute.get_server(sid)
    version = conn.compute.get_endpoint_data().max_microversion
    raw = api.get_json("/v2.1/servers/" + sid, version="2.100")["server"]
    assert server.id == raw["id"] and server.name == raw["name"]
    assert server.status == raw["status"]
    assert server.addresses == raw["addresses"]
    assert server.metadata == raw["metadata"]
    assert server.created_at == raw["created"]
    assert server.flavor.original_name == raw["flavor"]["original_name"]
    if raw["image"]:
        assert server.image.id == raw["image"]["id"]
    assert str(version) in ("2.104", "(2, 104)")


def test_sdk_member_cannot_get_other_projects_server(api):
    import openstack.exceptions
    conn = sdk(api, MEMBER_A)
    other = next(sid for sid in ALL if sid not in set(OWN))
    with pytest.raises(openstack.exceptions.NotFoundException):
        conn.compute.get_server(other)


def test_sdk_lists_flavors(api):
    conn = sdk(api, MEMBER_A)
    flavors = list(conn.compute.flavors())
    raw = api.get_json("/v2.1/flavors/detail", version="2.100")["flavors"]
    assert [f.id for f in flavors] == [f["id"] for f in raw]
    assert [(f.name, f.ram, f.vcpus, f.disk) for f in flavors] == [
        (f["name"], f["ram"], f["vcpus"], f["disk"]) for f in raw]
    assert list(conn.compute.flavors(details=False))[0].id == raw[0]["id"]


# -- python-novaclient ---------------------------------------------------------------------------

def _nova_versions():
    import novaclient
    return ["2.1", "2.47", novaclient.API_MAX_VERSION.get_string()]


@pytest.mark.parametrize("version", _nova_versions())
def test_novaclient_lists_gets_and_flavors(api, version):
    nc = novaclient_for(api, MEMBER_A, version)
    servers = nc.servers.list(limit=-1)  # pages with markers until an empty page
    assert [s.id for s in servers] == OWN
    raw = {s["id"]: s for s in api.get_json("/v2.1/servers/detail", version=version)["servers"]}
    for s in servers[:20]:
        assert s.to_dict() == raw[s.id]
    one = nc.servers.get(OWN[5])
    assert one.to_dict() == api.get_json("/v2.1/servers/" + OWN[5], version=version)["server"]
    flavors = nc.flavors.list()
    assert [f.to_dict() for f in flavors] == api.get_json(
        "/v2.1/flavors/detail", version=version)["flavors"]


def test_novaclient_admin_all_tenants_pages_with_markers(api):
    nc = novaclient_for(api, ADMIN, _nova_versions()[-1])
    servers = nc.servers.list(search_opts={"all_tenants": 1}, limit=-1)
    assert [s.id for s in servers] == ALL
    small = nc.servers.list(search_opts={"all_tenants": 1}, limit=5, detailed=False)
    assert [s.id for s in small] == ALL[:5]


def test_novaclient_not_found(api):
    from novaclient import exceptions
    nc = novaclient_for(api, MEMBER_A, "2.1")
    with pytest.raises(exceptions.NotFound) as err:
        nc.servers.get("00000000-0000-4000-8000-000000000000")
    assert "could not be found" in str(err.value)
    assert err.value.request_id.startswith("req-")
