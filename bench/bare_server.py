"""A bare uvloop + httptools server answering fixed bytes from memory: the second reference.

It does the least any Python server on this stack can do per request (parse, look the path up in
a dict, one write), so the gap between it and fastnova is exactly what fastnova adds: routing,
identity, microversion, store lookup, page assembly and its full nova headers.  The answers are
the bytes fastnova gave, loaded from a tree of files (the one nginx serves), with the same
header set fastnova sends, built once at start-up.

    python -m bench.bare_server --bind 127.0.0.1:PORT --root DIR
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from email.utils import formatdate

import httptools
import uvloop

NOT_FOUND = (b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\n"
             b"not found")
# Fixed values of the headers fastnova sends per request, so the bytes on the wire match in size.
FIXED_HEADERS = (b"x-openstack-request-id: req-00000000-0000-4000-8000-000000000000\r\n"
                 b"x-compute-request-id: req-00000000-0000-4000-8000-000000000000\r\n"
                 b"OpenStack-API-Version: compute 2.1\r\nX-OpenStack-Nova-API-Version: 2.1\r\n"
                 b"Vary: OpenStack-API-Version, X-OpenStack-Nova-API-Version\r\n")


def response(body: bytes, content_type: bytes = b"application/json") -> bytes:
    date = formatdate(usegmt=True).encode()
    return (b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%sDate: %s\r\n\r\n"
            % (content_type, len(body), FIXED_HEADERS, date)) + body


def load_tree(root: str) -> dict[bytes, bytes]:
    """URL path (bytes, as it arrives) -> the whole framed response."""
    answers = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                body = f.read()
            answers[("/" + os.path.relpath(path, root)).encode()] = response(body)
    return answers


class Protocol:
    __slots__ = ("answers", "transport", "parser", "url")

    def __init__(self, answers):
        self.answers = answers
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""

    def connection_made(self, transport):
        self.transport = transport

    def connection_lost(self, exc):
        self.transport = None

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_message_begin(self):
        self.url = b""

    def on_url(self, url):
        self.url += url

    def on_message_complete(self):
        # Like nginx serving files, the query string does not choose the answer.
        path = self.url.split(b"?", 1)[0]
        self.transport.write(self.answers.get(path, NOT_FOUND))
        if not self.parser.should_keep_alive():
            self.transport.close()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bind", required=True, metavar="HOST:PORT")
    p.add_argument("--root", required=True, help="directory tree of response bodies")
    args = p.parse_args(argv)
    host, _, port = args.bind.rpartition(":")
    answers = load_tree(args.root)
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(
        loop.create_server(lambda: Protocol(answers), host, int(port), backlog=2048))
    try:
        loop.run_forever()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
