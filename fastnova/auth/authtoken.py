"""``--auth keystone``: validate tokens as keystonemiddleware's auth_token does, once per host.

A request's token is looked up, in order, in
  1. this worker's memo (a dict: token -> Context) - the hot path, ~a dict lookup;
  2. the shared cache every worker maps (fastnova.auth.cache, LMDB) - a few microseconds;
  3. keystone, ``GET /v3/auth/tokens`` with ``X-Subject-Token`` - one round trip, made once
     however many requests (in this worker: one future; across workers: a claim in the shared
     cache) wait for the same token.
Each hit is trusted until ``min(validated + token_cache_time, expires_at)``.

Answers are keystonemiddleware's: 401 ``{"error": {...}}`` with ``WWW-Authenticate: Keystone
uri="<www_authenticate_uri>"`` for a missing, invalid or expired token (or an invalid service
token), and webob's 503 "The Keystone service is temporarily unavailable." when keystone cannot
be asked.  ``X-Service-Token``: validated the same way; with one of ``service_token_roles`` it
lets an expired user token through (``allow_expired``), and with
``service_token_roles_required`` a service token without those roles is refused.
"""
from __future__ import annotations

import asyncio
import logging
import time

import orjson

from fastnova.api import errors
from fastnova.api.context import Context
from fastnova.auth.cache import SharedTokenCache, digest
from fastnova.auth.client import KeystoneClient, KeystoneUnavailable, parse_time
from fastnova.serve import metrics

LOG = logging.getLogger("fastnova.auth")
CLAIM_LEASE = 30.0          # a worker that died mid-validation holds a token this long at most
POLL = 0.003                # a waiting worker looks for the claimant's answer this often
MEMO_MAX = 200000

_WEBOB_503 = ("The server is currently unavailable. Please try again at a later time.",
              "The Keystone service is temporarily unavailable.")


def unavailable(accept: str | None) -> errors.ApiError:
    """webob's HTTPServiceUnavailable as keystonemiddleware raises it, rendered by Accept."""
    head, detail = _WEBOB_503
    kind = errors.best_offer(accept, ("text/html", "application/json"))
    if kind == "text/html":
        body = ("<html>\n <head>\n  <title>503 Service Unavailable</title>\n </head>\n <body>\n"
                "  <h1>503 Service Unavailable</h1>\n  %s<br /><br />\n%s\n\n\n </body>\n"
                "</html>" % (head, detail)).encode()
        return errors.ApiError(503, body, b"text/html; charset=UTF-8", versioned=False)
    if kind == "application/json":
        body = orjson.dumps({"message": "%s<br /><br />\n%s\n\n" % (head, detail),
                             "code": "503 Service Unavailable", "title": "Service Unavailable"})
        return errors.ApiError(503, body, b"application/json", versioned=False)
    body = ("503 Service Unavailable\n\n%s\n\n %s  " % (head, detail)).encode()
    return errors.ApiError(503, body, b"text/plain; charset=UTF-8", versioned=False)


class Invalid:
    """A memoised 'keystone said no' (kept as long as a valid token would be)."""

    __slots__ = ("until",)

    def __init__(self, until: float):
        self.until = until


def identity_of(doc: dict) -> dict:
    """What nova's context takes from a validated token document."""
    user = doc.get("user") or {}
    project = doc.get("project") or {}
    domain = doc.get("domain") or {}
    system = doc.get("system") or {}
    return {
        "user_id": user.get("id"), "user_name": user.get("name"),
        "user_domain_id": (user.get("domain") or {}).get("id"),
        "project_id": project.get("id"), "project_name": project.get("name"),
        "project_domain_id": (project.get("domain") or {}).get("id"),
        "domain_id": domain.get("id"),
        "system_scope": "all" if system.get("all") else None,
        "roles": [r["name"] for r in doc.get("roles") or ()],
        "is_admin_project": bool(doc.get("is_admin_project", True)),
        "expires": parse_time(doc["expires_at"]),
    }


class KeystoneAuth:
    def __init__(self, options, data_dir: str, policy):
        self.options = options
        self.policy = policy
        self.client = KeystoneClient(options)
        self.shared = SharedTokenCache(data_dir)
        self.memo = {}              # token -> Context | Invalid (the fast path reads it too)
        self.inflight = {}          # digest -> Future, this worker's single flight
        self.challenge = b'WWW-Authenticate: Keystone uri="%s"\r\n' % (
            options.challenge_uri.encode("latin-1"))

    def unauthorized(self) -> errors.ApiError:
        err = errors.unauthorized()
        err.content_type = b"application/json; charset=UTF-8"
        err.extra = self.challenge
        return err

    # -- the synchronous look-up (hot path) -----------------------------------------------

    def lookup(self, token, service_token=None):
        """A Context from memory, an ApiError raised, or None: resolve() must be awaited."""
        if not token:
            raise self.unauthorized()
        if service_token is not None:
            return None
        hit = self.memo.get(token)
        if hit is not None and hit.until > time.time():
            if type(hit) is Invalid:
                raise self.unauthorized()
            return hit
        return None

    # -- validation -------------------------------------------------------------------------

    async def resolve(self, token, service_token=None) -> Context:
        allow_expired = False
        if service_token is not None:
            service = await self._validated(service_token, False)
            if type(service) is Invalid:
                raise self.unauthorized()
            roles_ok = bool(set(self.options.service_token_roles) & set(service.roles))
            if self.options.service_token_roles_required and not roles_ok:
                raise self.unauthorized()
            allow_expired = roles_ok
        ctx = await self._validated(token, allow_expired)
        if type(ctx) is Invalid:
            raise self.unauthorized()
        return ctx

    async def _validated(self, token: str, allow_expired: bool):
        now = time.time()
        if not allow_expired:
            hit = self.memo.get(token)
            if hit is not None and hit.until > now:
                return hit
        key = digest(token, allow_expired)
        cached = self.shared.get(key, now)
        if cached is not None:
            metrics.count("token_cache_hits")      # another worker (or an earlier life) asked
            return self._remember(token, allow_expired, *cached)
        pending = self.inflight.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(token, allow_expired, key))
            self.inflight[key] = pending
            pending.add_done_callback(lambda _f: self.inflight.pop(key, None))
        try:
            return await asyncio.shield(pending)
        except KeystoneUnavailable as exc:
            LOG.error("unable to validate token: %s", exc)
            raise _Unavailable() from exc

    async def _fetch(self, token: str, allow_expired: bool, key: bytes):
        deadline = time.time() + CLAIM_LEASE
        while not self.shared.claim(key, CLAIM_LEASE):
            await asyncio.sleep(POLL)           # another worker asks keystone: wait for it
            cached = self.shared.get(key)
            if cached is not None:
                metrics.count("token_cache_hits")
                return self._remember(token, allow_expired, *cached)
            if time.time() > deadline:
                break
        metrics.count("token_cache_misses")        # one keystone validation
        try:
            doc = await self.client.validate(token, allow_expired)
        except BaseException:
            self.shared.release(key)
            raise
        now = time.time()
        until = now + self.options.token_cache_time
        identity = None
        if doc is not None:
            identity = identity_of(doc)
            if not allow_expired:
                if identity["expires"] <= now:
                    identity = None
                else:
                    until = min(until, identity["expires"])
        self.shared.put(key, until, identity)
        return self._remember(token, allow_expired, until, identity)

    def _remember(self, token, allow_expired, until, identity):
        if identity is None:
            entry = Invalid(until)
        else:
            entry = Context(identity["user_id"], identity["project_id"],
                            roles=identity["roles"], system_scope=identity["system_scope"],
                            domain_id=identity["domain_id"],
                            user_domain_id=identity["user_domain_id"],
                            project_domain_id=identity["project_domain_id"],
                            is_admin_project=identity["is_admin_project"], until=until,
                            policy=self.policy, user_name=identity["user_name"],
                            project_name=identity["project_name"])
        if not allow_expired:
            if len(self.memo) >= MEMO_MAX:
                self.memo.clear()
            self.memo[token] = entry
        return entry


class _Unavailable(errors.ApiError):
    """503, rendered by the request's Accept header when the app frames it."""

    def __init__(self):
        super().__init__(503, b"", versioned=False)
