"""Errors are data: nova's fault bodies as prebuilt templates, and the exception that carries one.

nova wraps every error in ``{"<faultName>": {"code": N, "message": "..."}}`` where the name comes
from the status (wsgi.Fault._fault_names); anything else is "computeFault".  The exception classes
are plain Python, shared by the compiled and the pure code.
"""
from __future__ import annotations

import orjson

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}

# webob's plain-text 404, which nova's router returns for a path no route matches.
PLAIN_NOT_FOUND = b"404 Not Found\n\nThe resource could not be found.\n\n   "

# keystonemiddleware answers an unauthenticated request before nova sees it, with its own shape.
UNAUTHORIZED_BODY = orjson.dumps({"error": {
    "code": 401, "title": "Unauthorized",
    "message": "The request you have made requires authentication."}})


class ApiError(Exception):
    """An answer that is an error: status, body and whether nova's version headers go with it.

    ``versioned`` is False for errors raised before the microversion is known (nova adds its
    version headers to a fault only when the request's version was set).
    """

    def __init__(self, status: int, body: bytes, content_type: bytes = b"application/json",
                 versioned: bool = True, extra: bytes = b""):
        super().__init__(status)
        self.status = status
        self.body = body
        self.content_type = content_type
        self.versioned = versioned
        # Header lines that go with the answer (nova's version headers once they are known).
        self.extra = extra


def fault_body(status: int, message: str) -> bytes:
    name = FAULT_NAMES.get(status, "computeFault")
    return orjson.dumps({name: {"code": status, "message": message}})


def fault(status: int, message: str, versioned: bool = True) -> ApiError:
    return ApiError(status, fault_body(status, message), versioned=versioned)


def bad_request(message: str) -> ApiError:
    return fault(400, message)


def not_found(message: str) -> ApiError:
    return fault(404, message)


def server_not_found(uuid: str) -> ApiError:
    return fault(404, "Instance %s could not be found." % uuid)


def flavor_not_found(flavorid: str) -> ApiError:
    return fault(404, "Flavor %s could not be found." % flavorid)


_NOT_FOUND_TEXT = "The resource could not be found.<br /><br />\n\n\n"
HTML_NOT_FOUND = (b"<html>\n <head>\n  <title>404 Not Found</title>\n </head>\n <body>\n"
                  b"  <h1>404 Not Found</h1>\n  " + _NOT_FOUND_TEXT.encode() +
                  b" </body>\n</html>")
JSON_NOT_FOUND = orjson.dumps({"message": _NOT_FOUND_TEXT, "code": "404 Not Found",
                               "title": "Not Found"})


def route_not_found(accept: str | None = None) -> ApiError:
    """webob's HTTPNotFound, which nova's router returns for a path no route matches: HTML,
    JSON or plain text by the Accept header (offers text/html, then application/json)."""
    kind = best_offer(accept, ("text/html", "application/json"))
    if kind == "text/html":
        return ApiError(404, HTML_NOT_FOUND, b"text/html; charset=UTF-8", versioned=False)
    if kind == "application/json":
        return ApiError(404, JSON_NOT_FOUND, b"application/json", versioned=False)
    return ApiError(404, PLAIN_NOT_FOUND, b"text/plain; charset=UTF-8", versioned=False)


def best_offer(accept: str | None, offers) -> str | None:
    """The first offer with the highest q that some media range of ``accept`` admits (RFC 7231
    5.3.2: the most specific range decides an offer's q).  None when nothing is acceptable or
    the header is absent or empty."""
    if not accept:
        return None
    ranges = []
    for item in accept.split(","):
        parts = [p.strip() for p in item.split(";")]
        media, q = parts[0].lower(), 1.0
        for param in parts[1:]:
            if param.lower().startswith("q="):
                try:
                    q = float(param[2:])
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((media, q))
    best, best_q = None, 0.0
    for offer in offers:
        kind, _, _sub = offer.partition("/")
        q, specificity = None, -1
        for media, mq in ranges:
            mkind, _, msub = media.partition("/")
            if media == offer:
                spec = 2
            elif msub == "*" and mkind == kind:
                spec = 1
            elif media == "*/*":
                spec = 0
            else:
                continue
            if spec > specificity:
                q, specificity = mq, spec
        if q is not None and q > best_q:
            best, best_q = offer, q
    return best


def unauthorized() -> ApiError:
    return ApiError(401, UNAUTHORIZED_BODY, versioned=False)
