"""``fastnova serve --auth keystone`` against the session's real keystone (no mocks).

Users with admin, member and reader roles in two projects; tokens from keystone; fastnova
registered in keystone's catalogue and found there by openstacksdk and novaclient.  What a
keystonemiddleware-fronted nova answers is the reference: 401 + ``WWW-Authenticate`` for
missing, malformed, revoked and expired tokens; 503 when keystone is gone for a token not yet
validated; nova's policy 403s; tenant isolation.
"""
from __future__ import annotations

import http.client
import json
import re
import os
import tempfile
import textwrap
import time
import urllib.request

import pytest

from bench.keystone_proxy import CountingProxy
from tests.server import running_server

pytestmark = pytest.mark.timeout(600)

SERVICE_PASSWORD = "fastnova-service-secret"
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"
KSM_401 = {"error": {"code": 401, "title": "Unauthorized",
                     "message": "The request you have made requires authentication."}}


class Cloud:
    """Two projects, their users and tokens, in the session keystone."""

    def __init__(self, ks):
        self.ks = ks
        tag = os.urandom(3).hex()
        self.a = ks.create_project("ka-" + tag)
        self.b = ks.create_project("kb-" + tag)
        self.users = {}
        for name, project, role in (("admin_a", self.a, "admin"), ("member_a", self.a, "member"),
                                    ("reader_a", self.a, "reader"),
                                    ("member_b", self.b, "member")):
            uname = "%s-%s" % (name, tag)
            ks.create_user(uname, "pw", project_id=project, role=role)
            self.users[name] = (uname, project)
        self.service_user = "fastnova-" + tag
        ks.service_user(self.service_user, SERVICE_PASSWORD)

    def token(self, who: str) -> str:
        uname, project = self.users[who]
        return self.ks.token(uname, "pw", project_id=project)

    def config(self, auth_url: str, cache_time: int = 300, policy_file: str | None = None,
               extra: str = "") -> str:
        """A nova.conf-style file: its [keystone_authtoken] section as nova would have it."""
        fd, path = tempfile.mkstemp(prefix="fastnova-ks-", suffix=".conf")
        text = textwrap.dedent("""\
            [DEFAULT]
            debug = False

            [keystone_authtoken]
            www_authenticate_uri = %(www)s
            auth_url = %(auth)s
            auth_type = password
            project_domain_name = Default
            user_domain_name = Default
            project_name = service
            username = %(user)s
            password = %(password)s
            memcached_servers = 127.0.0.1:11211
            service_token_roles_required = True
            token_cache_time = %(cache)d
            """) % {"www": self.ks.url, "auth": auth_url, "user": self.service_user,
                    "password": SERVICE_PASSWORD, "cache": cache_time}
        if policy_file:
            text += "\n[oslo_policy]\npolicy_file = %s\n" % policy_file
        with os.fdopen(fd, "w") as f:
            f.write(text + extra)
        return path


def request(srv, method, path, token=None, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        hdrs = {"OpenStack-API-Version": "compute 2.90"}
        if token is not None:
            hdrs["X-Auth-Token"] = token
        if body is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        conn.request(method, path, body=None if body is None else json.dumps(body),
                     headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, resp.headers, raw
    finally:
        conn.close()


def wait_for(predicate, timeout=60.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture(scope="module")
def cloud(keystone):
    return Cloud(keystone)


@pytest.fixture(scope="module")
def proxy(keystone):
    host_port = keystone.url.split("//")[1].split("/")[0]
    with CountingProxy("127.0.0.1", int(host_port.split(":")[1])) as p:
        yield p


@pytest.fixture(scope="module")
def srv(cloud, proxy):
    conf = cloud.config(proxy.url.rsplit("/v3", 1)[0])
    with running_server(workers=2, demo=1, extra_args=["--auth", "keystone",
                                                       "--config-file", conf,
                                                       "--metrics-bind", "127.0.0.1:0"],
                        start_timeout=60) as s:
        s.config_path = conf
        s.metrics_port = int(s.wait_for(lambda: re.search(
            r"metrics on http://127.0.0.1:(\d+)/", s.log()), 30, "metrics").group(1))
        yield s
    os.unlink(conf)


def token_metrics(srv) -> tuple[float, float]:
    """(token_cache_hits, token_cache_misses) summed over the workers, from /metrics."""
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % srv.metrics_port,
                                timeout=30) as resp:
        text = resp.read().decode()
    found = dict(line.rsplit(" ", 1) for line in text.splitlines()
                 if line.startswith("fastnova_token_cache_"))
    return (float(found["fastnova_token_cache_hits_total"]),
            float(found["fastnova_token_cache_misses_total"]))


def create_server(srv, token, name):
    status, _h, raw = request(srv, "POST", "/v2.1/servers", token, {"server": {
        "name": name, "flavorRef": "1", "imageRef": IMAGE, "networks": "none"}})
    assert status == 202, raw
    return json.loads(raw)["server"]["id"]


def test_missing_and_malformed_tokens_get_keystonemiddlewares_401(srv, keystone):
    for token in (None, "not-a-token", "gAAAAA" + "x" * 180):
        status, headers, raw = request(srv, "GET", "/v2.1/servers", token)
        assert status == 401, (token, raw)
        assert json.loads(raw) == KSM_401
        assert headers["WWW-Authenticate"] == 'Keystone uri="%s"' % keystone.url
    # the version documents answer without identity, as nova's do
    assert request(srv, "GET", "/v2.1/", None)[0] == 200


def test_ignored_options_are_logged_once(srv):
    log = srv.log()
    assert log.count("memcached_servers") == 1, log[-3000:]


def test_reader_member_admin_and_isolation(srv, cloud):
    member_a, reader_a = cloud.token("member_a"), cloud.token("reader_a")
    admin_a, member_b = cloud.token("admin_a"), cloud.token("member_b")
    mine = create_server(srv, member_a, "a-one")
    theirs = create_server(srv, member_b, "b-one")

    # a reader sees its project's servers but cannot create
    status, _h, raw = request(srv, "GET", "/v2.1/servers/%s" % mine, reader_a)
    assert status == 200, raw
    status, _h, raw = request(srv, "POST", "/v2.1/servers", reader_a, {"server": {
        "name": "no", "flavorRef": "1", "imageRef": IMAGE, "networks": "none"}})
    assert status == 403
    assert json.loads(raw) == {"forbidden": {"code": 403, "message":
                               "Policy doesn't allow os_compute_api:servers:create to be "
                               "performed."}}
    # nor a server group (nova/policies/server_groups.py: create is project_member_or_admin),
    # which the member of the same project may create and the reader then see
    group = {"server_group": {"name": "g", "policy": "affinity"}}      # 2.64 on
    status, _h, raw = request(srv, "POST", "/v2.1/os-server-groups", reader_a, group)
    assert status == 403 and b"os-server-groups:create" in raw, raw
    status, _h, raw = request(srv, "POST", "/v2.1/os-server-groups", member_a, group)
    assert status == 200, raw
    gid = json.loads(raw)["server_group"]["id"]
    assert request(srv, "GET", "/v2.1/os-server-groups/%s" % gid, reader_a)[0] == 200
    assert request(srv, "DELETE", "/v2.1/os-server-groups/%s" % gid, reader_a)[0] == 403
    assert request(srv, "GET", "/v2.1/os-server-groups/%s" % gid, member_b)[0] == 403
    # console output is project_member_or_admin (nova/policies/console_output.py)
    status, _h, raw = request(srv, "POST", "/v2.1/servers/%s/action" % mine, reader_a,
                              {"os-getConsoleOutput": {}})
    assert status == 403 and b"os-console-output" in raw, raw

    # a member of A never sees B's servers: not listed, not found, no all_tenants
    listed = {s["id"] for s in json.loads(request(srv, "GET", "/v2.1/servers", member_a)[2])
              ["servers"]}
    assert mine in listed and theirs not in listed
    assert request(srv, "GET", "/v2.1/servers/%s" % theirs, member_a)[0] == 404
    status, _h, raw = request(srv, "GET", "/v2.1/servers?all_tenants=1", member_a)
    assert status == 403 and b"get_all_tenants" in raw
    assert request(srv, "DELETE", "/v2.1/servers/%s" % theirs, member_a)[0] == 404

    # the admin (admin role, project A) sees both, with the admin-only fields
    status, _h, raw = request(srv, "GET", "/v2.1/servers/detail?all_tenants=1", admin_a)
    assert status == 200
    docs = {s["id"]: s for s in json.loads(raw)["servers"]}
    assert {mine, theirs} <= set(docs)
    assert "OS-EXT-SRV-ATTR:host" in docs[theirs]
    status, _h, raw = request(srv, "GET", "/v2.1/servers/%s" % mine, member_a)
    assert "OS-EXT-SRV-ATTR:host" not in json.loads(raw)["server"]
    # the member deletes its own
    assert request(srv, "DELETE", "/v2.1/servers/%s" % mine, member_a)[0] == 204


def test_token_without_project_and_system_scope(srv, cloud, keystone):
    # a member of A with no default project: authenticating without a scope gives a token
    # with no project (and no roles)
    uname = "loner-" + os.urandom(3).hex()
    uid = keystone.create_user(uname, "pw")
    keystone.assign(uid, "member", project_id=cloud.a)
    unscoped, doc = keystone.auth(uname, "pw")
    assert "project" not in doc
    status, _h, raw = request(srv, "GET", "/v2.1/servers", unscoped)
    assert status == 403, raw
    assert json.loads(raw)["forbidden"]["message"] == \
        "Policy doesn't allow os_compute_api:servers:index to be performed."
    system = keystone.token("admin", "keystone-admin-secret", system=True)
    status, _h, raw = request(srv, "GET", "/v2.1/servers", system)
    assert status == 403, raw       # nova's server rules are project-scoped


def test_cold_tokens_cost_one_validation_each(srv, cloud, proxy):
    """Thirty concurrent requests with one cold token, over both workers: one keystone call."""
    import concurrent.futures
    token = cloud.token("member_a")
    before = proxy.validations
    _hits, misses = token_metrics(srv)
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(lambda _i: request(srv, "GET", "/v2.1/servers", token)[0],
                                 range(30)))
    assert statuses == [200] * 30
    assert proxy.validations - before == 1
    assert token_metrics(srv)[1] - misses == 1      # the metric counts keystone's validations
    # and it stays cached
    for _ in range(5):
        assert request(srv, "GET", "/v2.1/servers", token)[0] == 200
    assert proxy.validations - before == 1


def test_expired_token(srv, cloud, keystone):
    """A token from a keystone whose tokens last 15 s (same database and keys as the session's):
    it works, then is refused once it expires although fastnova's cache time is 300 s."""
    short = keystone.sibling(token__expiration=15)
    try:
        uname, project = cloud.users["member_a"]
        token = short.token(uname, "pw", project_id=project)
        status, _h, raw = request(srv, "GET", "/v2.1/servers", token)
    finally:
        short.stop()
    assert status == 200, raw
    wait_for(lambda: request(srv, "GET", "/v2.1/servers", token)[0] == 401, 90,
             "the expired token to be refused")

    # X-Service-Token: a service's token (role "service") lets the expired token through, as
    # keystonemiddleware's allow_expired does; a user's token (no service role) or a bogus one
    # does not, and an invalid service token is a 401 even beside a valid user token
    service = keystone.token(cloud.service_user, SERVICE_PASSWORD, project_name="service")
    status, _h, raw = request(srv, "GET", "/v2.1/servers", token,
                              headers={"X-Service-Token": service})
    assert status == 200, raw
    member = cloud.token("member_a")
    assert request(srv, "GET", "/v2.1/servers", token,
                   headers={"X-Service-Token": member})[0] == 401
    assert request(srv, "GET", "/v2.1/servers", member,
                   headers={"X-Service-Token": "bogus"})[0] == 401
    assert request(srv, "GET", "/v2.1/servers", member,
                   headers={"X-Service-Token": service})[0] == 200
    # a show too: the compiled fast path must hand it to the general path, which reads the
    # service token (it would otherwise find the expired token's cached refusal)
    mine = create_server(srv, member, "svc-show")
    status, _h, raw = request(srv, "GET", "/v2.1/servers/%s" % mine, token,
                              headers={"X-Service-Token": service})
    assert status == 200, raw
    assert request(srv, "GET", "/v2.1/servers/%s" % mine, token)[0] == 401


def test_keystone_stopped_mid_run(srv, cloud, keystone):
    warm, cold = cloud.token("member_a"), cloud.token("reader_a")
    assert request(srv, "GET", "/v2.1/servers", warm)[0] == 200
    keystone.stop()
    try:
        assert request(srv, "GET", "/v2.1/servers", warm)[0] == 200
        status, headers, raw = request(srv, "GET", "/v2.1/servers", cold,
                                       headers={"Accept": "application/json"})
        assert status == 503, raw
        assert b"The Keystone service is temporarily unavailable." in raw
    finally:
        keystone.start()
    assert request(srv, "GET", "/v2.1/servers", cold)[0] == 200


@pytest.fixture(scope="module")
def short(cloud, keystone):
    """A second fastnova: token_cache_time 2 s and a policy file of its own."""
    policy = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    policy.write("{}\n")
    policy.close()
    conf = cloud.config(keystone.url, cache_time=2, policy_file=policy.name)
    with running_server(workers=2, demo=1, extra_args=["--auth", "keystone",
                                                       "--config-file", conf],
                        start_timeout=60) as s:
        s.policy_path = policy.name
        yield s
    os.unlink(conf)
    os.unlink(policy.name)


def test_revoked_token_stops_within_cache_time(short, cloud, keystone):
    token = cloud.token("member_a")
    assert request(short, "GET", "/v2.1/servers", token)[0] == 200
    keystone.revoke(token)
    wait_for(lambda: request(short, "GET", "/v2.1/servers", token)[0] == 401, 60,
             "the revoked token to be refused")


def test_policy_file_override_takes_effect(short, cloud):
    member = cloud.token("member_a")
    assert request(short, "GET", "/v2.1/servers", member)[0] == 200
    with open(short.policy_path, "w") as f:
        f.write('"os_compute_api:servers:index": "role:admin"\n')

    def refused():
        status, _h, raw = request(short, "GET", "/v2.1/servers", member)
        return status == 403 and json.loads(raw) == {"forbidden": {
            "code": 403,
            "message": "Policy doesn't allow os_compute_api:servers:index to be performed."}}
    wait_for(refused, 60, "the override to apply")
    # a rule the file does not name keeps nova's default
    assert request(short, "GET", "/v2.1/servers/detail", member)[0] == 200


def test_openstacksdk_and_novaclient_through_the_catalogue(srv, cloud, keystone):
    import openstack
    from keystoneauth1 import session as ks_session
    from keystoneauth1.identity import v3
    from novaclient import client as nova_client

    # fastnova's compute endpoint in a region of its own: the session's nova cloud (when a
    # test before this one started it) has put nova-api in RegionOne's catalogue already
    region = "Fastnova-%d" % srv.port
    keystone.register_service("compute", "fastnova", "http://127.0.0.1:%d/v2.1" % srv.port,
                              region=region)
    uname, project = cloud.users["member_a"]
    conn = openstack.connect(auth_url=keystone.url, username=uname, password="pw",
                             project_id=project, user_domain_name="Default",
                             region_name=region, compute_api_version="2.90")
    server = conn.compute.create_server(name="sdk-one", flavor_id="1", image_id=IMAGE,
                                        networks="none")
    assert server.id in {s.id for s in conn.compute.servers()}
    assert conn.compute.get_server(server.id).name == "sdk-one"

    auth = v3.Password(auth_url=keystone.url, username=uname, password="pw",
                       project_id=project, user_domain_name="Default")
    nova = nova_client.Client("2.90", session=ks_session.Session(auth=auth),
                              region_name=region)
    assert server.id in {s.id for s in nova.servers.list()}
    assert nova.servers.get(server.id).name == "sdk-one"
    nova.servers.delete(server.id)
    wait_for(lambda: server.id not in {s.id for s in nova.servers.list()}, 60,
             "the server to go")
