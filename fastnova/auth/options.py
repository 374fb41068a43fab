"""keystonemiddleware's ``[keystone_authtoken]`` options, read from a plain dict of strings.

The dict comes from nova.conf's section as it is (``--config-file``) and from serve's
``--keystone-*`` flags.  Options fastnova uses are parsed here; the ones it has no use for
(memcached, TLS to memcached, auth_version, …) are accepted and named once in the log as
ignored, so a nova.conf works unchanged.  docs/auth.md lists both.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

LOG = logging.getLogger("fastnova.auth")

USED = ("www_authenticate_uri", "auth_uri", "auth_url", "auth_type", "username", "password",
        "project_name", "project_id", "user_domain_name", "user_domain_id",
        "project_domain_name", "project_domain_id", "service_token_roles",
        "service_token_roles_required", "token_cache_time", "region_name", "interface",
        "cafile", "insecure", "http_connect_timeout")


def _bool(value: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a boolean: %r" % value)


def _list(value: str) -> list[str]:
    return [item.strip() for item in str(value).split(",") if item.strip()]


@dataclass
class AuthtokenOptions:
    auth_url: str
    username: str
    password: str
    www_authenticate_uri: str = ""
    auth_type: str = "password"
    project_name: str | None = None
    project_id: str | None = None
    user_domain_name: str | None = "Default"
    user_domain_id: str | None = None
    project_domain_name: str | None = "Default"
    project_domain_id: str | None = None
    service_token_roles: list[str] = field(default_factory=lambda: ["service"])
    service_token_roles_required: bool = True
    token_cache_time: int = 300
    region_name: str | None = None
    interface: str = "internal"
    cafile: str | None = None
    insecure: bool = False
    http_connect_timeout: float = 10.0
    ignored: list[str] = field(default_factory=list)

    @classmethod
    def from_section(cls, section: dict) -> "AuthtokenOptions":
        """Parse ``[keystone_authtoken]``; ValueError names what is missing or malformed."""
        opts = {k.strip().lower(): str(v).strip() for k, v in section.items()}
        missing = [k for k in ("auth_url", "username", "password") if not opts.get(k)]
        if missing:
            raise ValueError("[keystone_authtoken] needs %s" % ", ".join(missing))
        auth_type = opts.get("auth_type", "password")
        if auth_type not in ("password", "v3password"):
            raise ValueError("[keystone_authtoken] auth_type %r: fastnova supports password"
                             % auth_type)
        out = cls(auth_url=opts["auth_url"].rstrip("/"), username=opts["username"],
                  password=opts["password"], auth_type=auth_type)
        out.www_authenticate_uri = opts.get("www_authenticate_uri") or opts.get("auth_uri") or ""
        for name in ("project_name", "project_id", "user_domain_id", "project_domain_id",
                     "region_name", "cafile"):
            if opts.get(name):
                setattr(out, name, opts[name])
        for name in ("user_domain_name", "project_domain_name", "interface"):
            if opts.get(name):
                setattr(out, name, opts[name])
        if "service_token_roles" in opts:
            out.service_token_roles = _list(opts["service_token_roles"])
        if "service_token_roles_required" in opts:
            out.service_token_roles_required = _bool(opts["service_token_roles_required"])
        if "insecure" in opts:
            out.insecure = _bool(opts["insecure"])
        if opts.get("token_cache_time"):
            out.token_cache_time = int(opts["token_cache_time"])
        if opts.get("http_connect_timeout"):
            out.http_connect_timeout = float(opts["http_connect_timeout"])
        out.ignored = sorted(k for k in opts if k not in USED)
        return out

    def log_ignored(self) -> None:
        """Once, at start-up (serve calls it in the master, not in every worker)."""
        if self.ignored:
            LOG.info("[keystone_authtoken]: fastnova does not use %s; ignored",
                     ", ".join(self.ignored))
        if not self.www_authenticate_uri:
            LOG.warning("[keystone_authtoken] www_authenticate_uri is not set: 401 answers "
                        "point clients at auth_url (%s)", self.auth_url)
        if not self.service_token_roles_required:
            LOG.warning("[keystone_authtoken] service_token_roles_required = False: any valid "
                        "token is accepted as a service token")

    @property
    def challenge_uri(self) -> str:
        return self.www_authenticate_uri or self.auth_url

    @property
    def identity_url(self) -> str:
        """Where tokens are validated: auth_url's v3 API."""
        url = self.auth_url
        return url if url.endswith("/v3") else url + "/v3"
