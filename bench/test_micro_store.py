"""Store lookup through StoreReader: the one-transaction reads a request makes."""
import itertools

import orjson

from fastnova._ext import show_doc
from fastnova.api.context import Context
from fastnova.api.query import Query
from fastnova.query import params, plan
from fastnova.store.layout import ROLE_MEMBER, VIEW_INDEX

MEMBER = "6f70656e737461636b20342065766572"


def test_show_lookup_begin_get_abort(benchmark, reader, member_ids):
    """What a show costs in the store: a read transaction, one get, the end of the txn."""
    ids = itertools.cycle(member_ids)

    def lookup():
        with reader.begin() as txn:
            return reader.server_blob(txn, next(ids))

    assert benchmark(lookup) is not None


def test_get_in_open_txn(benchmark, reader, member_ids):
    with reader.begin() as txn:
        blob = benchmark(reader.server_blob, txn, member_ids[len(member_ids) // 2])
    assert blob is not None


def _page(reader, query: str, ctx):
    """A page as the servers handler reads it: parse the query, plan, walk, get the blobs."""
    with reader.begin() as txn:
        spec = params.parse(Query(query), 100, ctx, True, flavour=reader.db_flavour,
                            flavor_exists=lambda fid: True)
        return [reader.server_blob(txn, u) for u in plan.page(reader, txn, spec)]


def test_page_100_member(benchmark, reader):
    ctx = Context("demo", MEMBER, False)
    assert len(benchmark(_page, reader, "limit=100", ctx)) == 100


def test_page_1000_all_tenants(benchmark, reader):
    ctx = Context("admin", MEMBER, True)
    assert len(benchmark(_page, reader, "limit=1000&all_tenants=1", ctx)) == 1000


def test_page_2_after_marker(benchmark, reader):
    """The second page: the marker is the last server of the first page."""
    ctx = Context("demo", MEMBER, False)
    first = _page(reader, "limit=50", ctx)
    marker = orjson.loads(show_doc(first[-1], 1, ROLE_MEMBER | VIEW_INDEX, None, b"", b""))["id"]
    second = benchmark(_page, reader, "limit=50&marker=" + marker, ctx)
    assert len(second) == 50 and not set(second) & set(first)
