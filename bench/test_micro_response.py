"""Response framing: status line, headers, request ids and Date around a body."""
import pytest

from fastnova.api.response import JSON, DateCache, RequestIds, frame

VERSION_HEADERS = (b"OpenStack-API-Version: compute 2.1\r\nX-OpenStack-Nova-API-Version: 2.1\r\n"
                   b"Vary: OpenStack-API-Version, X-OpenStack-Nova-API-Version\r\n")


@pytest.mark.parametrize("size", [1500, 150_000])
def test_frame(benchmark, size):
    body = b"x" * size
    date = DateCache().get()
    rid = RequestIds().next()
    out = benchmark(frame, 200, body, JSON, VERSION_HEADERS, date, rid, True)
    assert out.endswith(body)


def test_request_id(benchmark):
    ids = RequestIds()
    assert benchmark(ids.next).startswith(b"req-")


def test_date_header(benchmark):
    dates = DateCache()
    assert benchmark(dates.get).startswith(b"Date: ")
