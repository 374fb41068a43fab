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


@pytest.mark.parametrize("pieces,marks", [(5, 1), (31, 1), (32, 1), (33, 1), (40, 0),
                                          (1, 47), (1, 48), (1, 49), (3, 30), (60, 3)])
def test_many_pieces_and_markers_match_the_pure_twin(pieces, marks):
    """The compiled measure() notes up to 32 selected pieces and 48 link markers for write();
    past that, write() searches again.  Both ways give the pure twin's bytes."""
    if _speedups is None:
        pytest.skip("not built")
    rng = random.Random(pieces * 100 + marks)
    parts = []
    for i in range(pieces):
        text = ['"k%d":"' % i]
        for _ in range(marks):
            text.append(rng.choice(("\x01", "\x02")) + "/x" * rng.randrange(3) + "-")
        parts.append((1, 200, L.ROLE_MEMBER | L.VIEW_SHOW, ("".join(text) + '"').encode()))
        parts.append((150, 200, L.ROLE_MEMBER | L.VIEW_SHOW, b'"late%d":1' % i))
    blob = L.pack_blob("p", parts)
    for minor in (1, 160):
        want = assemble.show_doc(blob, minor, L.ROLE_MEMBER | L.VIEW_SHOW, None, ROOT, VROOT)
        assert _speedups.show_doc(blob, minor, L.ROLE_MEMBER | L.VIEW_SHOW, None, ROOT,
                                  VROOT) == want
        assert b"\x01" not in want and b"\x02" not in want
        assert want.count(b"http://") == pieces * marks
        assert _speedups.page_docs([blob, blob], minor, L.ROLE_MEMBER | L.VIEW_SHOW, ROOT,
                                   VROOT) == want + b"," + want


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
