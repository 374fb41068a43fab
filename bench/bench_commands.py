"""POST /servers under load with the PostgreSQL API database: latency, throughput, and what each
command waits for (database statements and round trips, local durable writes).

    python -m bench.bench_commands [--requests 3000] [--concurrency 1,8] [--workers 1]
                                   [--database postgresql://root@127.0.0.1:5432/test]

It starts ``fastnova serve --database ... --amqp <an unreachable broker>`` in a fresh data dir
(so the outbox only grows and no cell writes compete with the commands: the command path alone
is measured), creates its schema with ``fastnova db sync`` (dropped afterwards), spreads the
requests over 500 projects under nova's default quota (so the quota check counts real usage),
and reports per concurrency: p50/p99 latency, commands/s, PostgreSQL transactions per command
(pg_stat_database.xact_commit delta) and LMDB write transactions per command (the store's
txnid delta; each durable LMDB commit is one data fdatasync + one meta fdatasync, shared by the
whole group commit).  Results are printed and appended to bench/results/commands.jsonl with the
machine description.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = "70a599e0-31e7-49b7-b260-868f441e862b"


def _body(i: int) -> bytes:
    return json.dumps({"server": {"name": "bench-%d" % i, "flavorRef": "1", "imageRef": IMAGE,
                                  "networks": "auto", "metadata": {"n": str(i)}}}).encode()


def _request(i: int, projects: int) -> bytes:
    project = uuidlib.UUID(int=i % projects + 1).hex
    body = _body(i)
    return (b"POST /v2.1/servers HTTP/1.1\r\nHost: bench\r\nX-Auth-Token: u%d:%s\r\n"
            b"OpenStack-API-Version: compute 2.79\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (i % projects, project.encode(), len(body)) + body)


async def _client(port, queue, latencies, statuses, projects):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        try:
            i = queue.pop()
        except IndexError:
            break
        started = time.perf_counter()
        writer.write(_request(i, projects))
        head = await reader.readuntil(b"\r\n\r\n")
        size = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        await reader.readexactly(size)
        latencies.append(time.perf_counter() - started)
        statuses[int(head[9:12])] = statuses.get(int(head[9:12]), 0) + 1
    writer.close()


async def _run(port, n, concurrency, offset, projects):
    queue = list(range(offset + n - 1, offset - 1, -1))
    latencies, statuses = [], {}
    started = time.perf_counter()
    await asyncio.gather(*[_client(port, queue, latencies, statuses, projects)
                           for _ in range(concurrency)])
    return latencies, statuses, time.perf_counter() - started


def _xact(dsn) -> int:
    import psycopg2
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()") if _pg_version(cur) >= 150000 \
                else None
            cur.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = "
                        "current_database()")
            return cur.fetchone()[0]
    finally:
        conn.close()


def _pg_version(cur) -> int:
    cur.execute("SHOW server_version_num")
    return int(cur.fetchone()[0])


def _txnid(data_dir) -> int:
    import lmdb
    env = lmdb.open(os.path.join(data_dir, "store"), readonly=True, lock=False, max_dbs=32)
    try:
        return env.info()["last_txnid"]
    finally:
        env.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--projects", type=int, default=500)
    ap.add_argument("--database", default="postgresql://root@127.0.0.1:5432/test")
    ap.add_argument("--data-root", default=None,
                    help="where the store goes (e.g. /dev/shm to take this host's disk out of "
                         "the figures and see the software's own cost)")
    args = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="fastnova-bench-cmd-", dir=args.data_root)
    schema = "fn_bench_" + uuidlib.uuid4().hex[:8]
    env = dict(os.environ, PYTHONPATH=REPO)
    subprocess.run([sys.executable, "-m", "fastnova.cli", "db", "sync", "--database",
                    args.database, "--db-schema", schema], check=True, env=env, cwd=REPO)
    log = open(os.path.join(tmp, "serve.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnova.cli", "serve", "--bind", "127.0.0.1:0", "--workers",
         str(args.workers), "--data-dir", os.path.join(tmp, "data"), "--demo", "1",
         "--database", args.database, "--db-schema", schema,
         "--amqp", "amqp://guest:guest@127.0.0.1:1/%2F", "--outbox-bound", "10000000"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    results = []
    try:
        port = _wait_port(tmp, proc, args.workers)
        asyncio.run(_run(port, 50, 1, 10_000_000, args.projects))      # warm: connections
        offset = 0
        for conc in [int(c) for c in args.concurrency.split(",")]:
            x0, t0 = _xact(args.database), _txnid(os.path.join(tmp, "data"))
            lat, statuses, wall = asyncio.run(_run(port, args.requests, conc, offset,
                                                   args.projects))
            time.sleep(1.0)
            x1, t1 = _xact(args.database), _txnid(os.path.join(tmp, "data"))
            offset += args.requests
            lat.sort()
            row = {
                "concurrency": conc, "requests": len(lat), "statuses": statuses,
                "p50_ms": round(statistics.median(lat) * 1000, 3),
                "p99_ms": round(lat[int(len(lat) * 0.99) - 1] * 1000, 3),
                "commands_per_s": round(len(lat) / wall, 1),
                "pg_transactions_per_command": round((x1 - x0 - 2) / len(lat), 3),
                "lmdb_write_txns_per_command": round((t1 - t0) / len(lat), 3),
            }
            results.append(row)
            print(json.dumps(row))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        import psycopg2
        conn = psycopg2.connect(args.database)
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute('DROP SCHEMA "%s" CASCADE' % schema)
        conn.close()
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    with open(os.path.join(REPO, "bench", "results", "commands.jsonl"), "a") as out:
        out.write(json.dumps({"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "machine": {"cpus": os.cpu_count(), "python":
                                          platform.python_version(),
                                          "kernel": platform.release()},
                              "workers": args.workers, "data_root": args.data_root,
                              "results": results}) + "\n")
    return 0


def _wait_port(tmp, proc, workers) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with open(os.path.join(tmp, "serve.log"), errors="replace") as f:
            text = f.read()
        port = re.search(r"listening on [^ ]+:(\d+) ", text)
        if port and len(re.findall(r"worker \d+ ready", text)) >= workers:
            return int(port.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise SystemExit("server did not start:\n" + text[-2000:])


if __name__ == "__main__":
    sys.exit(main())
