"""Keystone's side of the test cloud: service users, the catalogue, and a project for the tests.

Plain REST calls to keystone's v3 API (as admin), so the set-up needs nothing beyond the stdlib:
the service users nova, placement and glance (each with the ``admin`` and ``service`` roles in
the ``service`` project, which ``service_token_roles_required`` asks for), one catalogue entry
per service with its public, internal and admin endpoints, and a ``demo`` project whose ``demo``
user is a member.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request


class Identity:
    """An admin session on keystone (one token for the whole set-up)."""

    def __init__(self, url: str, password: str, region: str = "RegionOne",
                 admin_user: str = "admin", admin_project: str = "admin"):
        self.url = url.rstrip("/")
        self.region = region
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": admin_user, "domain": {"id": "default"}, "password": password}}},
            "scope": {"project": {"name": admin_project, "domain": {"id": "default"}}}}}
        _, headers = self._call("POST", "/auth/tokens", body, token=None)
        self.token = headers["X-Subject-Token"]

    def _call(self, method, path, body=None, token=""):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token is not None:
            req.add_header("X-Auth-Token", token or self.token)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                raw = resp.read()
                return (json.loads(raw) if raw else {}), resp.headers
        except urllib.error.HTTPError as err:
            raise RuntimeError("keystone %s %s: %d %s" % (method, path, err.code,
                                                         err.read()[:500])) from None

    def find(self, kind: str, name: str, **extra):
        query = "&".join(["name=" + name] + ["%s=%s" % kv for kv in extra.items()])
        found = self._call("GET", "/%s?%s" % (kind, query))[0][kind]
        return found[0]["id"] if found else None

    def ensure(self, kind: str, name: str, **fields) -> str:
        """The id of the named project/user/role/service, created when missing."""
        found = self.find(kind, name)
        if found:
            return found
        singular = kind[:-1]
        return self._call("POST", "/" + kind, {singular: dict(fields, name=name)})[0][singular]["id"]

    def grant(self, project_id: str, user_id: str, role: str):
        role_id = self.ensure("roles", role)
        self._call("PUT", "/projects/%s/users/%s/roles/%s" % (project_id, user_id, role_id))

    def user(self, name: str, password: str, project: str, roles) -> str:
        project_id = self.ensure("projects", project, domain_id="default")
        user_id = self.ensure("users", name, domain_id="default", password=password,
                              default_project_id=project_id)
        for role in roles:
            self.grant(project_id, user_id, role)
        return user_id

    def service(self, name: str, kind: str, url: str):
        """A catalogue entry: the service and its three endpoints in this region."""
        service_id = self.ensure("services", name, type=kind)
        for interface in ("public", "internal", "admin"):
            self._call("POST", "/endpoints", {"endpoint": {
                "service_id": service_id, "interface": interface, "url": url,
                "region_id": self.region}})


def service_user_conf(section: str, keystone_url: str, user: str, password: str,
                      region: str, extra: str = "") -> str:
    """A keystoneauth password section of an oslo.config file ([keystone_authtoken] etc.)."""
    return """[%s]
auth_type = password
auth_url = %s
www_authenticate_uri = %s
username = %s
password = %s
project_name = service
user_domain_name = Default
project_domain_name = Default
region_name = %s
%s
""" % (section, keystone_url, keystone_url, user, password, region, extra)
