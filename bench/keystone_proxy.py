"""A TCP relay in front of keystone that counts token validations (``GET /v3/auth/tokens``).

fastnova is pointed at the relay instead of keystone; every byte goes through unchanged, and the
relay counts the validation requests it sees, so a test or a benchmark can say how many keystone
calls a burst of requests cost without asking fastnova.  It runs its own event loop in a thread.

    with CountingProxy("127.0.0.1", keystone_port) as proxy:
        ... auth_url = proxy.url ...
        proxy.validations      # GET /v3/auth/tokens seen so far
"""
from __future__ import annotations

import asyncio
import re
import threading

_VALIDATION = re.compile(rb"(?:^|\r\n)GET /v3/auth/tokens[ ?]")


class CountingProxy:
    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.validations = 0
        self.port = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d/v3" % self.port

    def __enter__(self):
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc):
        async def stop():
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    async def _start(self):
        return await asyncio.start_server(self._client, "127.0.0.1", 0)

    async def _client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer, count=True),
                             self._pipe(up_reader, writer, count=False),
                             return_exceptions=True)

    async def _pipe(self, reader, writer, count: bool):
        tail = b""
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                if count:
                    seen = tail + chunk
                    self.validations += len(_VALIDATION.findall(seen)) - \
                        len(_VALIDATION.findall(tail))
                    tail = seen[-64:]
                writer.write(chunk)
                await writer.drain()
        finally:
            writer.close()
