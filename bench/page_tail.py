"""A second client for the long tail of large pages at high concurrency.

wrk (one thread, 64 connections) reports p99 of 3-4 s for ``detail?limit=1000`` at c=64 against
fastnova while p50 is ~0.1-0.4 s (BENCHMARKS.md).  This client splits each request's time into
"until the head arrives" (queueing in the server) and "the body" (transfer), per connection,
with one asyncio stream per connection:

    python -m bench.page_tail --port 8774 --concurrency 64 --seconds 6 [--token admin:admin]
        [--path '/v2.1/servers/detail?limit=1000&all_tenants=1']

Pin it to the core the server does not use (``taskset -c 1``).
"""
from __future__ import annotations

import argparse
import asyncio
import time

import uvloop


def _pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _connection(args, stop, out):
    request = ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nX-Auth-Token: %s\r\n\r\n"
               % (args.path, args.host, args.port, args.token)).encode()
    reader, writer = await asyncio.open_connection(args.host, args.port)
    try:
        while time.monotonic() < stop:
            t0 = time.monotonic()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            t1 = time.monotonic()
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            out.append((t1 - t0, time.monotonic() - t1))
    finally:
        writer.close()


async def _run(args):
    out = []
    stop = time.monotonic() + args.seconds
    await asyncio.gather(*(_connection(args, stop, out) for _ in range(args.concurrency)))
    head = [h for h, _ in out]
    body = [b for _, b in out]
    total = [h + b for h, b in out]
    print("%d answers in %.0f s (%.0f/s)" % (len(out), args.seconds, len(out) / args.seconds))
    for name, values in (("head", head), ("body", body), ("total", total)):
        print("%-5s p50 %.3f s  p99 %.3f s  max %.3f s"
              % (name, _pct(values, 0.5), _pct(values, 0.99), max(values)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8774)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--token", default="admin:admin")
    p.add_argument("--path", default="/v2.1/servers/detail?limit=1000&all_tenants=1")
    uvloop.run(_run(p.parse_args(argv)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
