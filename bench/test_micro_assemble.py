"""Page assembly: select a blob's pieces for (microversion, role, view), fill the links, join.

The pure twin and the compiled module run the same cases (the ``assembly`` fixture), so their
ratio is read straight off one table.
"""
import pytest

from bench.conftest import MEMBER
from fastnova.store import layout as L

ROOT = b"http://127.0.0.1:8774"
VROOT = b"http://127.0.0.1:8774/v2.1"
MEMBER_SHOW = L.ROLE_MEMBER | L.VIEW_SHOW
MEMBER_DETAIL = L.ROLE_MEMBER | L.VIEW_DETAIL


@pytest.fixture(scope="module")
def blobs(reader, member_ids):
    with reader.begin() as txn:
        return [reader.server_blob(txn, u) for u in member_ids]


@pytest.mark.parametrize("minor", [1, 100])
def test_show_doc(benchmark, assembly, blobs, minor):
    # The owner check runs too, as it does for every member's show.
    doc = benchmark(assembly.show_doc, blobs[0], minor, MEMBER_SHOW, MEMBER.encode(), ROOT,
                    VROOT)
    assert doc.startswith(b"{")


@pytest.mark.parametrize("size", [100, 400])
def test_page_docs_detail(benchmark, assembly, blobs, size):
    page = blobs[:size]
    body = benchmark(assembly.page_docs, page, 1, MEMBER_DETAIL, ROOT, VROOT)
    assert body.count(b'"id"') >= len(page)


def test_page_docs_index100(benchmark, assembly, blobs):
    body = benchmark(assembly.page_docs, blobs[:100], 1, L.ROLE_MEMBER | L.VIEW_INDEX, ROOT,
                     VROOT)
    assert body.startswith(b"{")
