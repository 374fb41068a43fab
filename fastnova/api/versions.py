"""The version documents: ``GET /`` (list), ``GET /v2.1[/]`` and ``GET /v2[/]`` (one version),
and nova's 300 Multiple Choices for any other path outside the versioned prefixes."""
from __future__ import annotations

import orjson

MAX_VERSION = "2.104"
MIN_VERSION = "2.1"
_DOCS_LINK = {"rel": "describedby", "type": "text/html", "href": "http://docs.openstack.org/"}

VERSIONS = {
    "v2.0": {"id": "v2.0", "status": "DEPRECATED", "version": "", "min_version": "",
             "updated": "2025-07-04T12:00:00Z", "path": "v2",
             "media": "application/vnd.openstack.compute+json;version=2"},
    "v2.1": {"id": "v2.1", "status": "CURRENT", "version": MAX_VERSION,
             "min_version": MIN_VERSION, "updated": "2013-07-23T11:33:21Z", "path": "v2.1",
             "media": "application/vnd.openstack.compute+json;version=2.1"},
}


def _media(v):
    return [{"base": "application/json", "type": v["media"]}]


def _summary(v, host):
    return {"id": v["id"], "status": v["status"], "version": v["version"],
            "min_version": v["min_version"], "updated": v["updated"],
            "links": [{"rel": "self", "href": "%s/%s/" % (host, v["path"])}]}


def version_list(host: str) -> bytes:
    return orjson.dumps({"versions": [_summary(VERSIONS[k], host) for k in sorted(VERSIONS)]})


def version_doc(host: str, legacy: bool) -> bytes:
    v = VERSIONS["v2.0" if legacy else "v2.1"]
    doc = {"id": v["id"], "status": v["status"], "version": v["version"],
           "min_version": v["min_version"], "updated": v["updated"],
           "links": [{"rel": "self", "href": "%s/%s/" % (host, v["path"])}, dict(_DOCS_LINK)],
           "media-types": _media(v)}
    return orjson.dumps({"version": doc})


def choices(host: str, path: str) -> bytes:
    out = []
    for key in sorted(VERSIONS):
        v = VERSIONS[key]
        href = "/".join(p.strip("/") for p in (host, v["path"], path) if p)
        out.append({"id": v["id"], "status": v["status"],
                    "links": [{"rel": "self", "href": href}], "media-types": _media(v)})
    return orjson.dumps({"choices": out})
