"""The quick recognizer (_protocol.pyx ``_quick``) against httptools, byte stream by byte stream.

The recognizer may refuse anything (httptools then reads the chunk), but whenever it accepts a
chunk it must have read exactly what httptools reads from the same bytes: one whole GET request,
HTTP/1.1, no body, nothing after it, the same target, the same Host, token and microversion
headers as the protocol collects them, and the same keep-alive.  Hypothesis builds requests from
the pieces real clients send and the ones hostile or broken ones do.
"""
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

httptools = pytest.importorskip("httptools")
_protocol = pytest.importorskip("fastnova._ext._protocol")
quick_parse = _protocol.quick_parse


class Reference:
    """What httptools reads, collected as the protocol collects it (repeated values joined)."""

    NAMES = {b"host": 1, b"x-auth-token": 2, b"openstack-api-version": 3,
             b"x-openstack-nova-api-version": 4}

    def __init__(self, data):
        self.begun = self.completed = 0
        self.url = b""
        self.values = [None] * 5
        self.hosts = 0
        self.body = False
        self.error = None
        self.parser = httptools.HttpRequestParser(self)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self.error = exc
        except httptools.HttpParserError as exc:
            self.error = exc

    def on_message_begin(self):
        self.begun += 1

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        slot = self.NAMES.get(name.lower())
        if slot is None:
            return
        if slot == 1:
            self.hosts += 1
        seen = self.values[slot]
        self.values[slot] = value if seen is None else seen + b", " + value

    def on_body(self, body):
        self.body = True

    def on_message_complete(self):
        self.completed += 1
        self.keep_alive = self.parser.should_keep_alive()
        self.method = self.parser.get_method()
        self.version = self.parser.get_http_version()


def agrees(data, got):
    ref = Reference(data)
    assert ref.error is None, (data, ref.error)
    assert (ref.begun, ref.completed) == (1, 1), data
    assert ref.method == b"GET" and ref.version == "1.1" and not ref.body, data
    assert ref.hosts == 1, data          # HTTP/1.1 without Host is a 400 (httptools' path)
    url, host, token, mv_header, mv_legacy, keep_alive = got
    assert url == ref.url
    assert (host, token, mv_header, mv_legacy) == tuple(ref.values[1:]), data
    assert keep_alive == ref.keep_alive, data


SHOW = b"/v2.1/servers/6a0ad3c4-1b2e-4c4f-9a1e-0e7c1f3d9b11"

# What real clients send, which the recognizer must take (it is the point of it).
CLIENTS = [
    # wrk with the load benchmark's script
    b"GET " + SHOW + b" HTTP/1.1\r\nHost: 127.0.0.1:8774\r\nX-Auth-Token: member:p1\r\n\r\n",
    # python-requests (openstacksdk, novaclient): keystoneauth's session headers
    b"GET " + SHOW + b" HTTP/1.1\r\nHost: nova.example.com:8774\r\n"
    b"User-Agent: openstacksdk/4.0.1 keystoneauth1/5.6.0 python-requests/2.32.3 CPython/3.11.7"
    b"\r\nAccept-Encoding: gzip, deflate\r\nAccept: application/json\r\n"
    b"Connection: keep-alive\r\nOpenStack-API-Version: compute 2.96\r\n"
    b"X-OpenStack-Nova-API-Version: 2.96\r\nX-Auth-Token: gAAAAABm-token_value\r\n\r\n",
    # curl
    b"GET " + SHOW + b" HTTP/1.1\r\nHost: localhost:8774\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\nX-Auth-Token: admin:admin\r\n\r\n",
    # a client that closes after one answer; header names in other cases
    b"GET /v2.1/p1/servers/detail HTTP/1.1\r\nhost: h\r\nCONNECTION: Close\r\n"
    b"x-auth-token:\tadmin:p1\r\n\r\n",
]


@pytest.mark.parametrize("data", CLIENTS)
def test_real_clients_requests_are_taken_and_read_as_httptools_reads_them(data):
    got = quick_parse(data)
    assert got is not None
    agrees(data, got)


def test_fields_read():
    got = quick_parse(CLIENTS[1])
    assert got == (SHOW, b"nova.example.com:8774", b"gAAAAABm-token_value", b"compute 2.96",
                   b"2.96", True)
    assert quick_parse(CLIENTS[3])[5] is False
    assert quick_parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") == (b"/", b"h", None, None, None,
                                                               True)


LEFT = [
    b"GET / HTTP/1.0\r\n\r\n",                                        # HTTP/1.0 keep-alive rules
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",  # pipelined
    b"GET / HTTP/1.1\r\nHost: a\r\n",                                 # not whole yet
    b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /?x=1 HTTP/1.1\r\nHost: a\r\n\r\n",                         # a query: the general path
    b"GET / HTTP/1.1\nHost: a\n\n",                                   # bare LF
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",                  # two Hosts: a 400 there
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Auth-Token: a\r\nX-Auth-Token: b\r\n\r\n",  # joined there
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nProxy-Connection: close\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",                            # space before the colon
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n folded\r\n\r\n",        # obs-fold
    b"GET / HTTP/1.1\r\nHost: a \r\n\r\n",                            # trailing whitespace
    b"GET / HTTP/1.1\r\nHost:\r\n\r\n",                               # empty Host
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: \x01\r\n\r\n",                # a control byte
    b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n",         # obs-text
    b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nX-Auth-Token: a:b\r\n\r\n",                   # no Host: a 400 there
    b"GET / HTTP/1.1\r\nHost: a\r\nX-" + b"a" * 16382 + b": 1\r\n\r\n",  # a line past 16384
]


@pytest.mark.parametrize("data", LEFT)
def test_what_it_leaves_to_httptools(data):
    assert quick_parse(data) is None


def test_limits_are_the_protocols():
    head = (b"GET / HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(10))
            + b"\r\n")
    assert quick_parse(head) is not None
    assert quick_parse(head, max_headers=10) is None
    assert quick_parse(head, max_headers=11) is not None
    assert quick_parse(b"GET /abcdef HTTP/1.1\r\nHost: h\r\n\r\n", max_url=5) is None
    assert quick_parse(b"GET /abcdef HTTP/1.1\r\nHost: h\r\n\r\n", max_url=7) is not None
    assert quick_parse(head, max_head=len(head) - 1) is None
    assert quick_parse(head, max_line=len(b"Hosth") - 1) is None
    assert quick_parse(head, max_line=len(b"Hosth")) is not None


# -- the property -------------------------------------------------------------------------------

NAMES = [b"Host", b"host", b"HOST", b"X-Auth-Token", b"x-auth-token", b"OpenStack-API-Version",
         b"X-OpenStack-Nova-API-Version", b"Connection", b"connection", b"Content-Length",
         b"Transfer-Encoding", b"Upgrade", b"Proxy-Connection", b"Accept", b"User-Agent",
         b"Keep-Alive", b"Expect", b"X-Auth-Tokens", b"Hos", b"X Auth", b"X-\x80", b"",
         b"Content-Length ", b"X_A", b"!#$%&'*+-.^_`|~"]
VALUES = [b"keep-alive", b"Keep-Alive", b"close", b"CLOSE", b"upgrade", b"keep-alive, close",
          b"0", b"5", b"chunked", b"compute 2.79", b"2.1", b"latest", b"admin:admin", b"u:p",
          b"", b" ", b"\t", b"a b", b"127.0.0.1:8774", b"h2c", b"100-continue"]
VALUE_BYTES = st.binary(max_size=12) | st.text(alphabet="ab :\t,\x7f\x00\r\n\x0b~",
                                               max_size=8).map(lambda t: t.encode("latin-1"))
TARGETS = [SHOW, b"/", b"/v2.1", b"/v2.1/servers/detail", b"/v2.1/p1/servers/" + SHOW[14:],
           b"/%7e/a", b"/a?b", b"/a#b", b"*", b"/a\x7fb", b"/caf\xc3\xa9", b"//", b"/a/../b"]
EOL = st.sampled_from([b"\r\n"] * 6 + [b"\n", b"\r", b"\n\r"])


def mostly(clean, odd, weight=6):
    """Clean pieces nearly always, so that many whole requests are taken; odd ones sometimes.
    (The odd choice sits in the middle of the pool: hypothesis favours the ends of a range.)"""
    pool = [True] * (weight // 2) + [False] + [True] * (weight - weight // 2)
    return st.sampled_from(pool).flatmap(lambda ok: clean if ok else odd)


@st.composite
def requests(draw):
    eol = draw(mostly(st.just(b"\r\n"), st.sampled_from([b"\n", b"\r", b"\n\r"]), 12))
    method = draw(mostly(st.just(b"GET"), st.sampled_from([b"HEAD", b"get", b"POST", b"GETX"])))
    target = draw(mostly(st.sampled_from(TARGETS[:5]),
                         st.sampled_from(TARGETS[5:]) | st.binary(min_size=1, max_size=10)
                         .map(lambda b: b"/" + b)))
    version = draw(mostly(st.just(b"HTTP/1.1"), st.sampled_from(
        [b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.10", b"http/1.1", b"HTTP/1.1 "])))
    lines = [method + b" " + target + b" " + version]
    for _ in range(draw(st.integers(0, 6))):
        name = draw(mostly(st.sampled_from(NAMES[:15]), st.sampled_from(NAMES[15:]), 3))
        sep = draw(mostly(st.sampled_from([b": ", b":"]),
                          st.sampled_from([b":  ", b":\t", b" : ", b": \t"]), 3))
        value = draw(mostly(st.sampled_from(VALUES), VALUE_BYTES, 4))
        lines.append(name + sep + value)
        if draw(st.integers(0, 30)) == 0:
            lines.append(b" folded")
    data = eol.join(lines) + eol + eol
    data += draw(mostly(st.just(b""), st.sampled_from([b"GET / HTTP/1.1\r\n\r\n", b"x",
                                                       b"\r\n"])))
    return data


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(requests())
def test_whatever_it_takes_httptools_reads_the_same(data):
    got = quick_parse(data)
    if got is not None:
        agrees(data, got)


@settings(max_examples=1500, deadline=None)
@given(st.binary(max_size=80))
def test_arbitrary_bytes_never_misread(data):
    got = quick_parse(data)
    if got is not None:
        agrees(data, got)
