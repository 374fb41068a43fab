"""The compiled assembly and its pure-Python twin give the same bytes, for every gate.

FASTNOVA_REQUIRE_EXT=1 (set by .ci/run) makes a missing compiled module a failure here instead
of a skip, so a broken build cannot hide behind the twin.
"""
import os
import random

import orjson
import pytest

from fastnova import demo
from fastnova.record import normalize
from fastnova.store import assemble, layout as L
from fastnova.views.flavors import render_flavor
from fastnova.views.servers import render_server

try:
    from fastnova._ext import _speedups
except ImportError:  # pragma: no cover - exercised when the build is missing
    _speedups = None
    if os.environ.get("FASTNOVA_REQUIRE_EXT") == "1":
        raise

IMPLS = [pytest.param(assemble, id="pure"),
         pytest.param(_speedups, id="compiled",
                      marks=pytest.mark.skipif(_speedups is None, reason="not built"))]
ROOT = b"http://api.example.com:8774/6f70656e737461636b20342065766572"
VROOT = b"http://api.example.com:8774/v2.1/6f70656e737461636b20342065766572"
MASKS = [role | view for role in (L.ROLE_ADMIN, L.ROLE_MEMBER)
         for view in (L.VIEW_SHOW, L.VIEW_DETAIL, L.VIEW_INDEX)]


def _blobs(n=40):
    out = []
    for i in range(n):
        rec = normalize(demo.server(i))
        out.append((rec["project_id"], L.pack_blob(rec["project_id"], render_server(rec),
                                                   deleted=(i % 9 == 0))))
    return out


BLOBS = _blobs()


@pytest.mark.parametrize("impl", IMPLS)
def test_show_doc_matches_pure_twin_for_every_gate(impl):
    for project, blob in BLOBS:
        for minor in (0, 1, 2, 3, 9, 16, 26, 47, 63, 71, 73, 90, 96, 98, 100, 104, 255):
            for mask in MASKS:
                want = assemble.show_doc(blob, minor, mask, None, ROOT, VROOT)
                got = impl.show_doc(blob, minor, mask, None, ROOT, VROOT)
                assert got == want
                if want is not None:
                    doc = orjson.loads(got)          # valid JSON, markers all replaced
                    assert b"\x01" not in got and b"\x02" not in got
                    assert isinstance(doc, dict) and "id" in doc


@pytest.mark.parametrize("impl", IMPLS)
def test_show_doc_hides_other_projects_and_deleted(impl):
    for i, (project, blob) in enumerate(BLOBS):
        mine = impl.show_doc(blob, 1, L.ROLE_MEMBER | L.VIEW_SHOW, project.encode(), ROOT, VROOT)
        other = impl.show_doc(blob, 1, L.ROLE_MEMBER | L.VIEW_SHOW, b"someone-else", ROOT,
                              VROOT)
        assert other is None
        assert (mine is None) == (i % 9 == 0)


@pytest.mark.parametrize("impl", IMPLS)
def test_page_docs_joins_documents(impl):
    blobs = [b for _, b in BLOBS]
    for minor in (1, 47, 100):
        for mask in MASKS:
            got = impl.page_docs(blobs, minor, mask, ROOT, VROOT)
            docs = orjson.loads(b"[" + got + b"]")
            assert len(docs) == len(blobs)
            assert got == assemble.page_docs(blobs, minor, mask, ROOT, VROOT)
    assert impl.page_docs([], 1, MASKS[0], ROOT, VROOT) == b""


@pytest.mark.parametrize("impl", IMPLS)
def test_links_use_the_given_prefixes(impl):
    _, blob = BLOBS[1]
    doc = orjson.loads(impl.show_doc(blob, 1, L.ROLE_MEMBER | L.VIEW_SHOW, None, b"http://h",
                                     b"http://h/v2.1"))
    hrefs = {link["rel"]: link["href"] for link in doc["links"]}
    assert hrefs["self"] == "http://h/v2.1/servers/" + doc["id"]
    assert hrefs["bookmark"] == "http://h/servers/" + doc["id"]
    assert doc["flavor"]["links"][0]["href"].startswith("http://h/flavors/")


@pytest.mark.parametrize("impl", IMPLS)
def test_flavor_blobs(impl):
    for frec in demo.flavor_records():
        blob = L.pack_blob("", render_flavor(frec))
        for minor in (1, 55, 61, 75, 102):
            got = impl.show_doc(blob, minor, L.ROLE_MEMBER | L.VIEW_DETAIL, None, ROOT, VROOT)
            assert got == assemble.show_doc(blob, minor, L.ROLE_MEMBER | L.VIEW_DETAIL, None,
                                            ROOT, VROOT)
            assert orjson.loads(got)["id"] == frec["id"]


@pytest.mark.parametrize("impl", IMPLS)
def test_corrupt_blobs_raise_value_error_never_crash(impl):
    rng = random.Random(7)
    _, blob = BLOBS[2]
    cases = [b"", b"\x00", b"\x02\x00\x00\x00\x00\x00", blob[:3], blob[:10],
             blob[: len(blob) // 2], blob[:-1]]
    cases += [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))) for _ in range(200)]
    for bad in cases:
        try:
            impl.show_doc(bad, 1, L.ROLE_ADMIN | L.VIEW_SHOW, None, ROOT, VROOT)
        except ValueError:
            pass
