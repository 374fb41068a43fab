"""GET /servers/detail?limit=100 at 1,000,000 servers: each indexed filter and sort next to the
unfiltered page, in-process (the real App and StoreReader, no HTTP), p50/p99 per case.

    python -m bench.bench_query [--count 1000000] [--requests 400] [--flavour mysql]

The store is generated once (``fastnova demo``) and cached by bench/stores.py, the same cache
bench/load.py uses, keyed by a hash of the modules that decide its bytes (the query row
included).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

from bench import stores

MEMBER = "demo:6f70656e737461636b20342065766572"      # demo project 0: 1/5 of the servers
ADMIN = "admin:admin"
# (label, query, token, indexed?)  Every indexed case must stay within 1.5x of "unfiltered".
CASES = [
    ("unfiltered (member, own project)", "", MEMBER, True),
    ("all_tenants (admin)", "all_tenants=1", ADMIN, True),
    ("status=ACTIVE", "status=ACTIVE", MEMBER, True),
    ("status=SHUTOFF (8%)", "status=SHUTOFF", MEMBER, True),
    ("status=ERROR (2%)", "status=ERROR", MEMBER, True),
    ("status=ERROR all_tenants", "status=ERROR&all_tenants=1", ADMIN, True),
    ("tags=prod", "tags=prod", MEMBER, True),
    ("tags-any=blue,green", "tags-any=blue,green", MEMBER, True),
    ("changes-since (recent, 1,000 changes)", "changes-since={recent}", MEMBER, True),
    ("changes-since (old: most servers)", "changes-since=2026-01-02T00:00:00Z", MEMBER, True),
    ("project_id + all_tenants (admin)", "all_tenants=1&project_id="
     "8ab7c0b1c3a84c1e9d2a5b3e4f6a7b8c", ADMIN, True),
    ("sort_key=display_name", "sort_key=display_name", MEMBER, True),
    ("sort_key=display_name&sort_dir=asc", "sort_key=display_name&sort_dir=asc", MEMBER, True),
    ("sort_key=updated_at", "sort_key=updated_at", MEMBER, True),
    ("sort_dir=asc (created_at)", "sort_dir=asc", MEMBER, True),
    ("marker (page 2)", "marker={marker}", MEMBER, True),
    ("status=ACTIVE&tags=prod (checks)", "status=ACTIVE&tags=prod", MEMBER, False),
    ("name=web (regex, 25%: checks)", "name=web", MEMBER, False),
    ("host=compute-01 all_tenants (checks)", "host=compute-01&all_tenants=1", ADMIN, False),
]


def percentile(samples, fraction):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(data_dir: str, requests: int, flavour: str, limit: int):
    from fastnova import _ext
    from fastnova.api.app import App, Request
    from fastnova.store.reader import StoreReader
    from fastnova.store.writer import StoreWriter

    StoreWriter.open(data_dir, sync=False).close()       # creates any DB added since generation
    app = App(StoreReader.open(data_dir, db_flavour=flavour))

    def get(query, token):
        raw = app.handle(Request(method="GET", path="/v2.1/servers/detail", token=token,
                                 query=query, mv_header="compute 2.80"))
        assert raw.startswith(b"HTTP/1.1 200"), raw[:300]
        return raw

    import json
    first = json.loads(get("limit=%d" % limit, MEMBER).partition(b"\r\n\r\n")[2])
    marker = first["servers"][-1]["id"]
    newest = first["servers"][0]["updated"]          # demo: one server every 30 s
    recent = _minus_minutes(newest, 30 * 1000 // 60 * 5)   # ~1,000 changes in this project
    cases = []
    for label, query, token, indexed in CASES:
        query = query.format(marker=marker, recent=recent)
        cases.append((label, "&".join(q for q in (query, "limit=%d" % limit) if q), token,
                      indexed, []))
    # Round-robin over the indexed cases, so that page-cache warmth and machine noise fall on
    # all of them alike; the checked cases (which parse thousands of rows and evict CPU caches)
    # run in a second round of their own, so they cannot slow the baseline down.
    for group in ([c for c in cases if c[3]], [c for c in cases if not c[3]]):
        for _ in range(20):
            for _label, full, token, _indexed, _samples in group:
                get(full, token)
        for _ in range(requests):
            for _label, full, token, _indexed, samples in group:
                started = time.perf_counter_ns()
                get(full, token)
                samples.append((time.perf_counter_ns() - started) / 1000)
    rows = [(label, indexed, percentile(samples, 0.5), percentile(samples, 0.99))
            for label, _full, _token, indexed, samples in cases]
    base = rows[0][2]
    print("GET /servers/detail?limit=%d, in-process App, %s implementation, %s flavour, "
          "%d requests per case" % (limit, _ext.IMPLEMENTATION, flavour, requests))
    print("machine: %s, %s, Python %s" % (platform.node(), platform.processor() or
                                         platform.machine(), platform.python_version()))
    print()
    print("| case | indexed | p50 (us) | p99 (us) | p50 / unfiltered |")
    print("|---|---|---:|---:|---:|")
    worst = 0.0
    for label, indexed, p50, p99 in rows:
        ratio = p50 / base
        if indexed:
            worst = max(worst, ratio)
        print("| %s | %s | %.0f | %.0f | %.2fx |" % (label, "yes" if indexed else "no",
                                                     p50, p99, ratio))
    print()
    print("worst indexed case: %.2fx of unfiltered (target <= 1.5x)" % worst)
    return worst


def _minus_minutes(isotime: str, minutes: int) -> str:
    import datetime as dt
    when = dt.datetime.strptime(isotime, "%Y-%m-%dT%H:%M:%SZ") - dt.timedelta(minutes=minutes)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--flavour", default="mysql", choices=("mysql", "postgresql"))
    parser.add_argument("--data-dir", help="use this store instead of the cached demo store")
    parser.add_argument("--generate-only", action="store_true")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or stores.ensure_store(args.count)
    if args.generate_only:
        print(data_dir)
        return 0
    run(data_dir, args.requests, args.flavour, args.limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
