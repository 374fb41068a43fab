"""The keystone calls fastnova makes: its own service token, and ``GET /v3/auth/tokens``.

The HTTP client is the upstream one (fastnova.api.upstream: pooled keep-alive connections,
httptools), so a validation costs one round trip on an open connection.  The service token is
fetched with the ``password`` method of ``[keystone_authtoken]`` and renewed two minutes before it
expires (keystoneauth's margin), or at once when keystone says it is no longer valid.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
import time
from datetime import datetime

import orjson

from fastnova.api.errors import ApiError
from fastnova.api.upstream import Upstream

LOG = logging.getLogger("fastnova.auth")
RENEW_MARGIN = 120.0


class KeystoneUnavailable(Exception):
    """keystone could not be reached or answered with a server error: nova's 503."""


class ServiceAuthFailed(KeystoneUnavailable):
    """fastnova's own credentials were refused: every validation fails, as a 503 would."""


def parse_time(text: str) -> float:
    """keystone's ISO 8601 UTC time (``2026-12-06T04:56:08.000000Z``) as a Unix time."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n"):
        key, _sep, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


class KeystoneClient:
    def __init__(self, options):
        self.options = options
        self.http = Upstream(options.identity_url)
        if self.http.ssl is not None:
            ctx = ssl.create_default_context(cafile=options.cafile)
            if options.insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self.http.ssl = ctx
        self.service_token = None
        self.service_expires = 0.0
        self._renewing = None
        self.calls = 0              # validations asked of keystone (bench and tests read it)

    async def _call(self, method: str, target: str, headers, body: bytes = b""):
        try:
            return await asyncio.wait_for(
                self.http.forward(method, target, headers, body, None),
                self.options.http_connect_timeout + 20.0)
        except (ApiError, asyncio.TimeoutError, OSError) as exc:
            raise KeystoneUnavailable(repr(exc)) from exc

    def _auth_body(self) -> bytes:
        o = self.options
        user = {"name": o.username, "password": o.password,
                "domain": {"id": o.user_domain_id} if o.user_domain_id
                else {"name": o.user_domain_name}}
        auth = {"identity": {"methods": ["password"], "password": {"user": user}}}
        if o.project_id:
            auth["scope"] = {"project": {"id": o.project_id}}
        elif o.project_name:
            domain = ({"id": o.project_domain_id} if o.project_domain_id
                      else {"name": o.project_domain_name})
            auth["scope"] = {"project": {"name": o.project_name, "domain": domain}}
        return orjson.dumps({"auth": auth})

    async def _authenticate(self) -> str:
        answer = await self._call("POST", "/auth/tokens?nocatalog",
                                  [(b"Content-Type", b"application/json")], self._auth_body())
        if answer.status >= 500:
            raise KeystoneUnavailable("keystone answered %d to fastnova's authentication"
                                      % answer.status)
        if answer.status != 201:
            LOG.error("keystone refused fastnova's own credentials (%s, user %s): %d",
                      self.options.auth_url, self.options.username, answer.status)
            raise ServiceAuthFailed("service authentication refused: %d" % answer.status)
        token = _header(answer.headers, b"x-subject-token")
        self.service_expires = parse_time(orjson.loads(answer.body)["token"]["expires_at"])
        self.service_token = token
        return token

    async def token(self) -> str:
        """fastnova's service token, fetched or renewed when needed (one fetch at a time)."""
        if self.service_token and time.time() < self.service_expires - RENEW_MARGIN:
            return self.service_token
        if self._renewing is None:
            self._renewing = asyncio.ensure_future(self._authenticate())
            self._renewing.add_done_callback(self._renewed)
        return await asyncio.shield(self._renewing)

    def _renewed(self, fut):
        self._renewing = None
        if not fut.cancelled():
            fut.exception()         # retrieved here; callers awaiting it see it too

    async def validate(self, token: str, allow_expired: bool = False):
        """keystone's token document for ``token``, or None when keystone says it is not
        valid (404, or 401 for a malformed one).  KeystoneUnavailable: no answer / 5xx."""
        target = "/auth/tokens?nocatalog" + ("&allow_expired=1" if allow_expired else "")
        try:
            subject = token.encode("latin-1")
        except UnicodeEncodeError:
            return None
        if not subject or b"\r" in subject or b"\n" in subject:
            return None
        for attempt in (0, 1):
            service = await self.token()
            self.calls += 1
            answer = await self._call("GET", target, [
                (b"X-Auth-Token", service.encode("latin-1")), (b"X-Subject-Token", subject),
                (b"Accept", b"application/json")])
            if answer.status == 200:
                return orjson.loads(answer.body)["token"]
            if answer.status == 401 and attempt == 0:
                self.service_token = None       # ours expired or was revoked: renew, retry
                continue
            if answer.status in (400, 401, 403, 404):
                return None
            raise KeystoneUnavailable("keystone answered %d validating a token" % answer.status)
        return None
