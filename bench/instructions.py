"""Instructions per show request, counted by valgrind: a figure the machine's noise cannot move.

Wall-clock benchmarks on this shared 2-core VM drift by 30% from run to run; instruction counts
do not (callgrind counts the same total twice for the same binary and input).  This runs N
``GET /v2.1/servers/{id}`` requests (bytes in, bytes out: the compiled protocol, the fast path,
the store, the framing) through the protocol the worker uses, in-process, under
``valgrind --tool=callgrind``, once with N requests and once with none, and prints the
difference divided by N.  The bare server's protocol (bench/bare_server.py: parse, dict lookup,
write) is counted the same way as the reference.  With ``--cache-sim`` it also counts
last-level cache misses per request (an 8 MB cache, as this VM reports).

    python -m bench.instructions [--store DIR] [--servers 1000] [--requests 20000] [--cache-sim]

The store is a demo store (generated in a temporary directory when --store is not given).
Requests rotate over up to 1,000 ids of one member project, spread over the whole store, as the
load runs' show scenario does.  The socket, the kernel and the loop are not counted.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _requests(count: int):
    from fastnova import demo
    step = max(1, count // 1000 // len(demo.PROJECTS)) * len(demo.PROJECTS)
    ids = [demo.server(i)["id"].encode() for i in range(0, count, step)][:1000]
    token = ("demo:" + demo.PROJECTS[0][0]).encode()
    return [b"GET /v2.1/servers/%s HTTP/1.1\r\nHost: 127.0.0.1:8774\r\nX-Auth-Token: %s\r\n"
            b"User-Agent: bench\r\n\r\n" % (uuid, token) for uuid in ids]


def _child(kind: str, store: str, servers: int, n: int) -> None:
    """What runs under valgrind: warm up, then n requests."""
    sys.path.insert(0, REPO)
    from bench.fakes import Loop, Transport
    reqs = _requests(servers)
    if kind == "fastnova":
        from fastnova.api.app import App
        from fastnova.api.protocol import HttpProtocol
        from fastnova.store.reader import StoreReader
        # valgrind cannot reserve the default 64 GB map; the store itself is far smaller.
        size = os.path.getsize(os.path.join(store, "store", "data.mdb"))
        reader = StoreReader.open(store, map_size=size + (1 << 30))
        proto = HttpProtocol(App(reader, server_name="127.0.0.1:8774"), Loop())
    else:
        from bench.bare_server import Protocol, response
        answers = {r.split(b" ")[1]: response(b"x" * 1500) for r in reqs}
        proto = Protocol(answers)
    proto.connection_made(Transport())
    feed = proto.data_received
    for _ in range(2):
        for r in reqs:
            feed(r)
    for i in range(n):
        feed(reqs[i % len(reqs)])


def _count(kind, store, servers, n, cache_sim):
    out = tempfile.mktemp(prefix="callgrind-")
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    if cache_sim:
        cmd += ["--cache-sim=yes", "--LL=8388608,16,64"]
    cmd += [sys.executable, "-m", "bench.instructions", "--child", kind, "--store", store,
            "--servers", str(servers), "--requests", str(n)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if os.path.exists(out):
        os.unlink(out)
    found = re.search(r"Collected : ([\d ]+)", done.stderr)
    if done.returncode != 0 or not found:
        raise SystemExit("valgrind failed:\n" + done.stderr[-2000:])
    return [int(x) for x in found[1].split()]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", help="a demo store's data dir (default: generate one)")
    p.add_argument("--servers", type=int, default=1000, help="servers in the store")
    p.add_argument("--requests", type=int, default=20000)
    p.add_argument("--cache-sim", action="store_true")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child, args.store, args.servers, args.requests)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    tmp = None
    store = args.store
    if store is None:
        tmp = store = tempfile.mkdtemp(prefix="bench-instructions-")
        subprocess.run([sys.executable, "-m", "fastnova.cli", "demo", str(args.servers),
                        "--data-dir", store], cwd=REPO, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        for kind in ("fastnova", "bare"):
            base = _count(kind, store, args.servers, 0, args.cache_sim)
            full = _count(kind, store, args.servers, args.requests, args.cache_sim)
            per = [(b - a) / args.requests for a, b in zip(base, full)]
            line = "%-8s %8.0f instructions a request" % (kind, per[0])
            if args.cache_sim and len(per) >= 9:
                line += ", %.2f last-level data misses" % (per[7] + per[8])
            print(line, flush=True)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
