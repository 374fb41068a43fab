# cython: language_level=3
"""The compiled fast path of the commonest request: ``GET /v2.1/servers/{id}`` that succeeds.

Clients poll servers by id all day (``wait_for_server``, Horizon, Terraform).  Once the caller's
token, microversion header and Host have been answered once by the general path (fastnova.api.app
memoizes them), such a request needs no routing, parsing or error handling: one dict lookup each,
one LMDB get, one assembly, one framing.  Anything else (another path, a query string, a memo
miss, an unknown or foreign server, an error) returns None and the general path answers, so the
two can never disagree: tests/test_fastpath.py compares their answers byte for byte.
"""
from fastnova.api.context import Context
from fastnova.api.response import JSON, frame
from fastnova.store.layout import ROLE_ADMIN, ROLE_MEMBER, VIEW_SHOW
from fastnova._ext._speedups import show_doc

cdef str PREFIX = "/v2.1/servers/"
cdef Py_ssize_t PREFIX_LEN = 14
cdef Py_ssize_t UUID_LEN = 36


cdef class FastShow:
    cdef object app, reader, identity, versions, hosts, links, ids, dates

    def __init__(self, app):
        self.app = app
        # The reader's environment and handles are looked up per request, not kept: the
        # commands runtime re-points them at its writer's environment (one LMDB open per
        # process) after this object is made.
        self.reader = app.reader
        self.identity = app._identity
        self.versions = app._versions
        self.hosts = app._hosts
        self.links = app._links
        self.ids = app.ids
        self.dates = app.dates

    cpdef object answer(self, req):
        """The framed 200 answer, or None: let the general path answer."""
        cdef str path = req.path
        if len(path) != PREFIX_LEN + UUID_LEN or not path.startswith(PREFIX) \
                or req.method != "GET" or req.query:
            return None
        cdef str uuid = path[PREFIX_LEN:]
        if "/" in uuid or "%" in uuid:
            return None
        ctx = self.identity.get(req.token)
        if type(ctx) is not Context:
            return None
        version = self.versions.get((req.mv_header, req.mv_legacy))
        if type(version) is not tuple:
            return None
        host_url = self.hosts.get(req.host)
        if type(host_url) is not str:
            return None
        # nova puts the caller's project id in links when it appears anywhere in the URL.
        links = self.links.get((host_url, False,
                                "/" + ctx.project_id if ctx.project_id in path else ""))
        if links is None:
            return None
        return self._show(req, ctx, version, links, uuid)

    cdef object _show(self, req, ctx, tuple version, links, str uuid):
        cdef bint admin = ctx.is_admin
        reader = self.reader
        txn = reader.env.begin(buffers=False)
        try:
            blob = txn.get(uuid.encode(), db=reader.servers)
        finally:
            txn.abort()
        if blob is None:
            return None
        doc = show_doc(blob, version[0], (ROLE_ADMIN if admin else ROLE_MEMBER) | VIEW_SHOW,
                       None if admin else ctx.project_id.encode(), links.root, links.vroot)
        if doc is None:
            return None
        return frame(200, b'{"server":' + doc + b"}", JSON, version[1], self.dates.get(),
                     self.ids.next(), req.keep_alive)
