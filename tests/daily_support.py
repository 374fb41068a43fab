"""Helpers for the everyday-API tests (issue 20): JSON requests with bodies, and the clients.

    with start_server(demo_count=20) as api:
        c = Client(api)
        status, doc = c.call("POST", "/v2.1/os-keypairs", {"keypair": {...}}, version="2.2")
"""
from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
import warnings

from tests.conftest import ADMIN, MEMBER_A, MEMBER_B, PROJECT_A, PROJECT_B  # noqa: F401


class Client:
    def __init__(self, api):
        self.api = api

    def call(self, method, path, body=None, token=MEMBER_A, version=None, headers=None):
        conn = http.client.HTTPConnection(self.api.host, self.api.port, timeout=60)
        try:
            hdrs = {"X-Auth-Token": token} if token else {}
            if version:
                hdrs["OpenStack-API-Version"] = "compute " + version
            data = None
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else json.dumps(body)
                hdrs["Content-Type"] = "application/json"
            hdrs.update(headers or {})
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            self.last_headers = resp.headers
            return resp.status, (json.loads(raw) if raw.strip() else None)
        finally:
            conn.close()

    def wait(self, predicate, timeout=30.0, what="condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError("timed out waiting for " + what)

    def create_server(self, name, token=MEMBER_A, version="2.37", **extra):
        server = {"name": name, "flavorRef": "1", "networks": "none",
                  "imageRef": "70a599e0-31e7-49b7-b260-868f441e862b"}
        hints = extra.pop("hints", None)
        server.update(extra)
        body = {"server": server}
        if hints:
            body["os:scheduler_hints"] = hints
        status, doc = self.call("POST", "/v2.1/servers", body, token=token, version=version)
        assert status == 202, (status, doc)
        return doc["server"]["id"]

    def wait_active(self, sid, token=MEMBER_A):
        def active():
            status, doc = self.call("GET", "/v2.1/servers/" + sid, token=token)
            return status == 200 and doc["server"]["status"] == "ACTIVE" and doc["server"]
        return self.wait(active, what="server %s ACTIVE" % sid)


def openstack_cli(api, token, *args, version="2.latest", check=True):
    """The real ``openstack`` CLI (python-openstackclient) against the server: the noauth2 token
    goes as a keystoneauth ``admin_token`` with the compute endpoint given."""
    endpoint = api.base + "/v2.1"
    cmd = [os.path.join(os.path.dirname(sys.executable), "openstack"),
           "--os-auth-type", "admin_token", "--os-token", token, "--os-endpoint", endpoint,
           "--os-compute-api-version", version] + list(args)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, OS_CLOUD="", OS_ENDPOINT_OVERRIDE=endpoint))
    if check:
        assert out.returncode == 0, (cmd, out.stdout, out.stderr)
    return out


def cli_json(api, token, *args, **kw):
    out = openstack_cli(api, token, *args, "-f", "json", **kw)
    return json.loads(out.stdout) if out.stdout.strip() else None


def sdk(api, token):
    import openstack
    warnings.filterwarnings("ignore", module="openstack")
    endpoint = api.base + "/v2.1"
    return openstack.connection.Connection(
        auth_type="admin_token", auth={"endpoint": endpoint, "token": token},
        compute_endpoint_override=endpoint, compute_api_version="2")


def novaclient_for(api, token, version="2.96"):
    from keystoneauth1 import session
    from keystoneauth1.token_endpoint import Token
    from novaclient import client
    endpoint = api.base + "/v2.1"
    return client.Client(version, session=session.Session(auth=Token(endpoint, token)),
                         endpoint_override=endpoint)


def cli_with_keystone(api, keystone, token, *args, tmp_dir, version="2.latest", check=True):
    """The ``openstack`` CLI for the commands that first check for identity v3 (``keypair *``,
    ``server list``): a clouds.yaml points identity at the session's real keystone (only its
    version document is read) and compute at fastnova with the noauth2 token."""
    path = os.path.join(tmp_dir, "clouds.yaml")
    with open(path, "w") as f:
        f.write("clouds:\n  fastnova:\n    auth_type: admin_token\n    auth:\n"
                "      endpoint: %s/v2.1\n      token: '%s'\n"
                "    compute_endpoint_override: %s/v2.1\n"
                "    identity_endpoint_override: %s\n    identity_api_version: '3'\n"
                % (api.base, token, api.base, keystone.url))
    cmd = [os.path.join(os.path.dirname(sys.executable), "openstack"), "--os-cloud",
           "fastnova", "--os-compute-api-version", version] + list(args)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                         env=dict(env, OS_CLIENT_CONFIG_FILE=path))
    if check:
        assert out.returncode == 0, (cmd, out.stdout, out.stderr)
    return out
