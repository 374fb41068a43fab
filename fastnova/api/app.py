"""One request, start to finish: identity, route, microversion, handler, framed response.

The order follows nova's pipeline: the version documents answer without identity; under /v2.1
keystone (here: the configured identity scheme) answers 401 first, then the router (a plain 404 for
no route), then the microversion (400/406 without version headers), then the URL's project id
(400 when it is not the caller's), then the controller.
"""
from __future__ import annotations

import functools
import inspect
import logging
import re
from urllib.parse import unquote

from fastnova.api import errors, flavors, front, health, media, router, servers, versions
from fastnova.commands import (actions as cmd_actions, create as cmd_create,
                               limits as cmd_limits, metadata as cmd_metadata,
                               servers as cmd_servers, tags as cmd_tags)
from fastnova.api.context import noauth
from fastnova.api.microversion import negotiate, version_headers
from fastnova.api.query import Query
from fastnova.api.response import JSON, DateCache, RequestIds, frame, relay
from fastnova.api.upstream import Relayed
from fastnova._ext import compiled
from fastnova.config import current as current_settings

LOG = logging.getLogger("fastnova.api")
_HOST_RE = re.compile(r"^[A-Za-z0-9.\-_:\[\]]{1,255}$")

_HANDLERS = {
    router.SERVER_SHOW: servers.show,
    router.SERVERS_INDEX: lambda *a: servers.listing(*a, detail=False),
    router.SERVERS_DETAIL: lambda *a: servers.listing(*a, detail=True),
    router.FLAVOR_SHOW: flavors.show,
    router.FLAVORS_INDEX: lambda *a: flavors.listing(*a, detail=False),
    router.FLAVORS_DETAIL: lambda *a: flavors.listing(*a, detail=True),
    # fastnova.commands: async handlers answering (status, body[, headers])
    router.SERVER_CREATE: cmd_create.create,
    router.SERVER_UPDATE: cmd_servers.update,
    router.SERVER_DELETE: cmd_servers.delete,
    router.SERVER_ACTION: cmd_actions.action,
    router.METADATA_INDEX: cmd_metadata.index,
    router.METADATA_SHOW: cmd_metadata.show,
    router.METADATA_CREATE: cmd_metadata.create,
    router.METADATA_UPDATE_ALL: cmd_metadata.update_all,
    router.METADATA_UPDATE: cmd_metadata.update,
    router.METADATA_DELETE: cmd_metadata.delete,
    router.TAGS_INDEX: cmd_tags.index,
    router.TAG_CHECK: cmd_tags.check,
    router.TAG_ADD: cmd_tags.add,
    router.TAGS_UPDATE_ALL: cmd_tags.update_all,
    router.TAG_DELETE: cmd_tags.delete,
    router.TAGS_DELETE_ALL: cmd_tags.delete_all,
    router.LIMITS: cmd_limits.index,
    # fastnova.resources: the route carries (handler, path arguments)
    router.RESOURCE: lambda app, req, ctx, minor, rt, links: rt.arg[0](
        app, req, ctx, minor, rt.arg[1], links),
}


# The policy rule nova checks for each route (server actions: per action, in
# fastnova.commands.actions).  Flavor reads have none in nova.
ROUTE_RULES = {
    router.SERVERS_INDEX: "os_compute_api:servers:index",
    router.SERVERS_DETAIL: "os_compute_api:servers:detail",
    router.SERVER_SHOW: "os_compute_api:servers:show",
    router.SERVER_CREATE: "os_compute_api:servers:create",
    router.SERVER_UPDATE: "os_compute_api:servers:update",
    router.SERVER_DELETE: "os_compute_api:servers:delete",
    router.METADATA_INDEX: "os_compute_api:server-metadata:index",
    router.METADATA_SHOW: "os_compute_api:server-metadata:show",
    router.METADATA_CREATE: "os_compute_api:server-metadata:create",
    router.METADATA_UPDATE_ALL: "os_compute_api:server-metadata:update_all",
    router.METADATA_UPDATE: "os_compute_api:server-metadata:update",
    router.METADATA_DELETE: "os_compute_api:server-metadata:delete",
    router.TAGS_INDEX: "os_compute_api:os-server-tags:index",
    router.TAG_CHECK: "os_compute_api:os-server-tags:show",
    router.TAG_ADD: "os_compute_api:os-server-tags:update",
    router.TAGS_UPDATE_ALL: "os_compute_api:os-server-tags:update_all",
    router.TAG_DELETE: "os_compute_api:os-server-tags:delete",
    router.TAGS_DELETE_ALL: "os_compute_api:os-server-tags:delete_all",
    router.LIMITS: "os_compute_api:limits",
}


class Request:
    """What the protocol hands over: the parts of an HTTP request that nova's answer depends on."""

    __slots__ = ("method", "path", "query", "host", "token", "mv_header", "mv_legacy",
                 "keep_alive", "body", "content_type", "raw_headers", "accept", "service_token",
                 "rid", "route")

    def __init__(self, method="GET", path="/", query="", host=None, token=None,
                 mv_header=None, mv_legacy=None, keep_alive=True, body=b"", content_type=None,
                 raw_headers=(), accept=None, service_token=None):
        self.accept = accept
        self.route = 0                      # the router's kind once routed (metrics' label)
        self.rid = None         # this request's id (req-<uuid>), set when it is handled
        self.service_token = service_token
        self.body = body
        self.content_type = content_type
        self.raw_headers = raw_headers      # every (name, value) as sent, for forwarding
        self.method = method
        self.path = path
        self.query = query
        self.host = host
        self.token = token
        self.mv_header = mv_header
        self.mv_legacy = mv_legacy
        self.keep_alive = keep_alive


class Links:
    """The request's link prefixes, as bytes for the markers and as text for next links."""

    __slots__ = ("root", "vroot", "vroot_str")

    def __init__(self, host_url: str, legacy: bool, project_segment: str):
        version = "/v2" if legacy else "/v2.1"
        self.vroot_str = host_url + version + project_segment
        self.root = (host_url + project_segment).encode()
        self.vroot = self.vroot_str.encode()


class Memo(dict):
    """A bounded memo for pure functions of request headers.

    Clients repeat the same token, microversion header and Host on every request; answering
    those from a dict instead of re-parsing saves ~5 us a request (measured in-process).  When
    full it is simply cleared: cheaper than LRU bookkeeping, and hostile variety cannot grow it.
    """

    def __init__(self, fn, size=4096):
        super().__init__()
        self.fn = fn
        self.size = size

    def __missing__(self, key):
        value = self.fn(*key) if isinstance(key, tuple) else self.fn(key)
        if len(self) >= self.size:
            self.clear()
        self[key] = value
        return value


class App:
    def __init__(self, reader, server_name: str = "localhost:8774",
                 public_endpoint: str | None = None, authenticate=noauth, upstream=None,
                 policy=None, commands: str = "local"):
        self.reader = reader
        self.upstream = upstream
        # "upstream": commands go to nova-api (fastnova.api.front); "local": fastnova's own.
        self.commands = commands if upstream is not None else "local"
        self.server_name = server_name
        self.public_endpoint = public_endpoint.rstrip("/") if public_endpoint else None
        self.policy = policy
        self.max_limit = current_settings().max_limit        # nova's [api] max_limit
        self.dates = DateCache()
        self.ids = RequestIds()
        if hasattr(authenticate, "resolve"):
            # keystone (fastnova.auth.authtoken): its memo is token -> Context, expiring;
            # a miss is awaited.
            self.auth = authenticate
            self._identity = authenticate.memo
        else:
            # noauth: a pure function of the token, memoised for good.
            self.auth = None
            if policy is not None and authenticate is noauth:
                authenticate = functools.partial(noauth, policy=policy)
            self._identity = Memo(_raising(authenticate))
        self.authenticate = authenticate
        self._versions = Memo(_raising(_negotiate))
        self._hosts = Memo(_raising(self._host_url))
        self._links = Memo(Links)
        self._media = Memo(media.negotiate)
        self.fast = _fast_path(self)
        self.health = health.Health(self)

    def forget_callers(self) -> None:
        """The policy file changed: callers' memoised identities and answers go."""
        self._identity.clear()
        if self.fast is not None:
            self.fast.forget_callers()

    def handle(self, req: Request):
        """The framed answer: bytes, or (for a handler that awaits) a coroutine giving bytes."""
        if self.fast is not None:
            try:
                answer = self.fast.answer(req)
            except Exception:     # never the client's problem: log it, let the general path try
                LOG.exception("fast path failed on %s %s", req.method, req.path)
                answer = None
            if answer is not None:
                return answer
        return self._handle(req)

    def _handle(self, req: Request):
        rid = req.rid = self.ids.next()
        try:
            answer = self._dispatch(req)
        except Exception as exc:  # a bug must cost one 500, never the worker
            answer = self._error(req, exc, rid)
        if type(answer) is not tuple and inspect.isawaitable(answer):
            return self._finish(req, rid, answer)
        return self._frame(req, rid, answer)

    async def _finish(self, req, rid, pending) -> bytes:
        try:
            answer = await pending
        except Exception as exc:
            answer = self._error(req, exc, rid)
        return self._frame(req, rid, answer)

    def _frame(self, req, rid, answer) -> bytes:
        if type(answer) is Relayed:
            return relay(answer, self.dates.get(), req.keep_alive, req.method == "HEAD")
        status, body, ctype, extra = answer
        if req.accept and ctype == JSON and status != 401 and body is not errors.JSON_NOT_FOUND:
            # nova's faults and documents take the Accept header's type (keystonemiddleware's
            # 401 is not nova's)
            ctype = self._media[req.accept, req.content_type][0]
        return frame(status, body, ctype, extra, self.dates.get(), rid, req.keep_alive,
                     head_only=req.method == "HEAD")

    @staticmethod
    def _error(req, exc, rid=b"-"):
        if isinstance(exc, errors.ApiError):
            return exc.status, exc.body, exc.content_type, getattr(exc, "extra", b"")
        # The request id, as the client got it in x-openstack-request-id, ties the two.
        LOG.error("[%s] unexpected error answering %s %s", rid.decode("latin-1"), req.method,
                  req.path, exc_info=exc)
        body = errors.fault_body(500, "Unexpected API Error. Please report this at "
                                      "http://bugs.launchpad.net/nova/ and attach the Nova "
                                      "API log if possible.")
        return 500, body, JSON, b""

    def host_url(self, req: Request) -> str:
        return _unwrap(self._hosts[req.host])

    def _host_url(self, host) -> str:
        if self.public_endpoint:
            return self.public_endpoint
        host = host or self.server_name
        if not _HOST_RE.match(host):
            raise errors.bad_request("Invalid Host header")
        return "http://" + host

    def _dispatch(self, req: Request):
        path = router.normalize(unquote(req.path) if "%" in req.path else req.path)
        if path in health.PATHS:
            req.route = health.ROUTE
            return self.health.answer(req)
        rt = router.route(req.method, path)
        req.route = rt.kind
        kind = rt.kind
        if kind in (router.VERSION_LIST, router.VERSION_CHOICES) and \
                (req.accept or req.content_type):
            # A path naming no version: a version parameter of Content-Type or Accept picks
            # the version document's app (nova's URL map), which answers any path with it.
            legacy = self._media[req.accept, req.content_type][1]
            if legacy is not None:
                rt = router.Route(router.VERSION_DOC, legacy)
                kind = rt.kind
        if kind == router.VERSION_LIST:
            media.check_body_type(req.content_type)
            return 200, versions.version_list(self.host_url(req)), JSON, b""
        if kind == router.VERSION_CHOICES:
            media.check_body_type(req.content_type)
            return 300, versions.choices(self.host_url(req), path), JSON, b""
        if kind == router.VERSION_DOC:
            minor, extra = self._microversion(req, rt)
            try:
                media.check_body_type(req.content_type)
            except errors.ApiError as err:
                err.extra = extra
                raise
            return 200, versions.version_doc(self.host_url(req), rt.legacy), JSON, extra
        if self.upstream is not None and self._upstream_answers(req, rt):
            if self.commands == "upstream":
                return front.forward(self, req, rt)
            return self._forward(req)
        if self.auth is None:
            ctx = _unwrap(self._identity[req.token])
        else:
            ctx = self.auth.lookup(req.token, getattr(req, "service_token", None))
            if ctx is None:
                return self._authenticated_later(req, rt, path)
        return self._serve(req, rt, path, ctx)

    async def _authenticated_later(self, req: Request, rt, path: str):
        """A token not in memory: wait for its validation, then answer as usual."""
        try:
            ctx = await self.auth.resolve(req.token, getattr(req, "service_token", None))
        except errors.ApiError as err:
            if err.status == 503:
                from fastnova.auth.authtoken import unavailable
                raise unavailable(req.accept) from err
            raise
        answer = self._serve(req, rt, path, ctx)
        if type(answer) is not tuple and inspect.isawaitable(answer):
            answer = await answer
        return answer

    def _serve(self, req: Request, rt, path: str, ctx):
        kind = rt.kind
        if kind == router.NO_ROUTE:
            raise errors.route_not_found(req.accept)
        minor, extra = self._microversion(req, rt)
        try:
            media.check_body_type(req.content_type)     # wsgi.Resource, before the controller
            if rt.project_id is not None and rt.project_id != ctx.project_id:
                raise errors.bad_request(
                    "Malformed request URL: URL's project_id '%s' doesn't match Context's "
                    "project_id '%s'" % (rt.project_id, ctx.project_id))
            if kind == router.NOT_SERVED:
                raise errors.fault(501, "fastnova does not serve %s %s; configure an upstream "
                                        "nova-api for it." % (req.method, path))
            rule = ROUTE_RULES.get(kind)
            if rule is not None:
                ctx.authorize(rule)
            if kind in _SERVER_ROUTES and rt.arg:
                rt.arg = _canonical_arg(self.reader, rt.arg)
            segment = "/" + ctx.project_id if ctx.project_id and _project_in_url(
                req, kind, minor, ctx.project_id) else ""
            links = self._links[self.host_url(req), rt.legacy, segment]
            body = _HANDLERS[kind](self, req, ctx, minor, rt, links)
        except errors.ApiError as err:
            err.extra = extra
            raise
        if type(body) is not bytes and inspect.isawaitable(body):
            return self._versioned(body, extra)
        return 200, body, JSON, extra

    @staticmethod
    async def _versioned(pending, extra):
        """A command's answer: (status, body) or (status, body, headers), with version headers."""
        try:
            result = await pending
        except errors.ApiError as err:
            err.extra = extra
            raise
        if isinstance(result, tuple):
            status, body, *more = result
            return status, body, JSON, extra + (more[0] if more else b"")
        return 200, result, JSON, extra

    def _upstream_answers(self, req: Request, rt) -> bool:
        """With an upstream: what fastnova does not serve (unknown paths, resources and actions
        included) goes there in every mode; in front mode every command too."""
        kind = rt.kind
        if kind in (router.NOT_SERVED, router.NO_ROUTE):
            return True
        if kind == router.RESOURCE:
            # issue 20's resources (key pairs, groups, actions, quotas, ...): with an upstream
            # nova they are its own data, so they are forwarded; without one, served here
            return True
        if self.commands == "upstream" and front.forwards(req.method, kind):
            return True
        return kind == router.SERVER_ACTION and not cmd_actions.handles(req.body)

    def _forward(self, req: Request):
        target = req.path + ("?" + req.query if req.query else "")
        return self.upstream.forward(req.method, target, req.raw_headers, req.body, req.host)

    def _microversion(self, req: Request, rt) -> tuple[int, bytes]:
        if rt.legacy:
            return 1, b""
        return _unwrap(self._versions[req.mv_header, req.mv_legacy])


_SERVER_ROUTES = frozenset((
    router.SERVER_SHOW, router.SERVER_UPDATE, router.SERVER_DELETE, router.SERVER_ACTION,
    router.METADATA_INDEX, router.METADATA_SHOW, router.METADATA_CREATE,
    router.METADATA_UPDATE_ALL, router.METADATA_UPDATE, router.METADATA_DELETE,
    router.TAGS_INDEX, router.TAG_CHECK, router.TAG_ADD, router.TAGS_UPDATE_ALL,
    router.TAG_DELETE, router.TAGS_DELETE_ALL))


def _canonical_arg(reader, arg):
    """The route's server id as the configured database would match it (reader's
    canonical_server_id): the id alone, or the first of (id, key)."""
    if isinstance(arg, tuple):
        return (reader.canonical_server_id(arg[0]),) + arg[1:]
    return reader.canonical_server_id(arg)


def _project_in_url(req: Request, kind: int, minor: int, project_id: str) -> bool:
    """nova's view builders put the project id in links when it occurs in ``request.url``, after
    the query schema stripped the parameters it does not know (webob rewrites QUERY_STRING):
    a project id in an unknown parameter does not count."""
    if project_id in req.path:
        return True
    if not req.query or project_id not in req.query:
        return False
    if kind in (router.SERVER_SHOW, router.FLAVOR_SHOW):
        return False                    # no known parameters (2.102+: any is a 400)
    if kind in (router.SERVERS_INDEX, router.SERVERS_DETAIL):
        known = servers.known_params(minor)
    elif kind in (router.FLAVORS_INDEX, router.FLAVORS_DETAIL):
        known = flavors.KNOWN_PARAMS
    else:
        return True
    try:
        pairs = Query(req.query).pairs
    except errors.ApiError:
        return False                    # the handler answers this query's 400
    return any(k in known and project_id in k + "=" + v for k, v in pairs)


def _fast_path(app):
    """The compiled GET /servers/{id} fast path (fastnova/_ext/_fastpath.pyx), unless
    FASTNOVA_PURE=1 or it is not built (FASTNOVA_REQUIRE_EXT=1: not built is an error)."""
    if getattr(app.reader, "servers", None) is None:
        return None
    fast_show = compiled("_fastpath", "FastShow")
    return None if fast_show is None else fast_show(app)


def _negotiate(header, legacy):
    minor = negotiate(header, legacy)
    return minor, version_headers(minor)


class _Raised:
    """A memoized error: the same bad header gets the same answer without re-parsing."""

    __slots__ = ("error",)

    def __init__(self, error):
        self.error = error


def _raising(fn):
    def wrapped(*args):
        try:
            return fn(*args)
        except errors.ApiError as err:
            return _Raised(err)
    return wrapped


def _unwrap(value):
    if type(value) is _Raised:
        raise errors.ApiError(value.error.status, value.error.body, value.error.content_type,
                              value.error.versioned, value.error.extra)
    return value
