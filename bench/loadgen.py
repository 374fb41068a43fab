"""bench/loadgen.c as a load generator: raw per-request latency percentiles, and wrk's
coordinated-omission correction of the same samples beside them.

wrk reports only corrected percentiles: before printing (or handing ``latency`` to a Lua
``done``), wrk 4.x adds to every recorded latency n >= 2e synthetic samples at n - e, n - 2e, ...,
where e is the run's mean interval between requests on one connection.  That models an open-loop
client, and it is defensible, but on this 2-vCPU VM it makes wrk's p99 the sum of the few
machine-wide stalls that fell into the turn (kdamond every ~0.5 s for 1.5-2 ms, the local
PostgreSQL, RabbitMQ, NATS, Redis and MariaDB daemons), whichever server is being measured.
loadgen keeps every sample, so its ``p99_ms`` is the latency 1% of requests actually had, and
``corrected_p99_ms`` is what wrk's arithmetic makes of it.

The C source is compiled on first use into the bench cache (keyed by its hash), with the
system's C compiler.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import urllib.parse

from bench import stores, wrk

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loadgen.c")


def binary() -> str:
    return build(SOURCE, "loadgen")


def build(source: str, name: str) -> str:
    """A C program of bench/ compiled into the bench cache, once per version of its source."""
    with open(source, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    out = os.path.join(stores.cache_root(), "%s-%s" % (name, digest))
    if not os.path.exists(out):
        os.makedirs(stores.cache_root(), exist_ok=True)
        tmp = out + ".%d" % os.getpid()
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-Wall", "-o", tmp, source],
                       check=True, capture_output=True, text=True)
        os.replace(tmp, out)
    return out


def write_paths(directory: str, name: str, paths) -> str:
    path = os.path.join(directory, name + ".paths")
    with open(path, "w") as f:
        f.write("".join(p + "\n" for p in paths))
    return path


def run(base_url: str, paths_file: str, headers: dict[str, str], connections: int,
        duration: float, cpus: str | None = None) -> dict:
    """One run; the same keys as bench.wrk.run, plus the corrected percentiles."""
    url = urllib.parse.urlsplit(base_url)
    cmd = [binary(), url.hostname, str(url.port), str(connections), "%g" % duration, paths_file]
    cmd += ["%s: %s" % item for item in headers.items()]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError("loadgen failed (exit %d): %s" % (done.returncode, done.stderr[-500:]))
    return summarize(json.loads(done.stdout))


def summarize(raw: dict) -> dict:
    """bench.wrk's summary of the recorded samples, plus wrk's correction of them."""
    out = wrk.summarize(raw)
    corr = raw["corrected_us"]
    out.update(corrected_p99_ms=corr["p99"] / 1000, corrected_p99_9_ms=corr["p99_9"] / 1000,
               client="loadgen")
    return out
