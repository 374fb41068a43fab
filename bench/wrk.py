"""wrk as the load generator: one thread, keep-alive, a Lua script that rotates request paths
and prints its results as one JSON line.

One wrk thread is enough to saturate one server core here and leaves the generator on a single
core; requests are pre-formatted once per path in ``init`` so that rotating costs the generator a
table index, not a string build, per request.
"""
from __future__ import annotations

import json
import os
import subprocess

MARK = "WRKJSON "
PERCENTILES = (50, 90, 99, 99.9)

_SCRIPT = r"""
local paths = {%(paths)s}
%(headers)s
local reqs = {}
local n = 0

function init(args)
  for i, p in ipairs(paths) do reqs[i] = wrk.format(%(method)s, p, nil, %(body)s) end
end

function request()
  n = n %% #reqs + 1
  return reqs[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests":%%d,"duration_us":%%d,"bytes":%%d,' ..
    '"errors":{"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d},' ..
    '"latency_us":{"min":%%d,"mean":%%.1f,"max":%%d,%(pcts)s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.min, latency.mean, latency.max, %(pct_calls)s))
end
"""


def _lua_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script(paths: list[str], headers: dict[str, str], method: str = "GET",
           body: str | None = None) -> str:
    pct_keys = ",".join('"p%s":%%d' % str(p).replace(".", "_") for p in PERCENTILES)
    pct_calls = ", ".join("latency:percentile(%s)" % p for p in PERCENTILES)
    head_lines = "\n".join("wrk.headers[%s] = %s" % (_lua_str(k), _lua_str(v))
                           for k, v in headers.items())
    return _SCRIPT % {"paths": ",".join(_lua_str(p) for p in paths), "headers": head_lines,
                      "mark": MARK, "pcts": pct_keys, "pct_calls": pct_calls,
                      "method": _lua_str(method),
                      "body": "nil" if body is None else _lua_str(body)}


def write_script(directory: str, name: str, paths, headers, method: str = "GET",
                 body: str | None = None) -> str:
    path = os.path.join(directory, name + ".lua")
    with open(path, "w") as f:
        f.write(script(list(paths), headers, method, body))
    return path


def run(base_url: str, script_path: str, connections: int, duration: float,
        cpus: str | None = None, timeout_s: int = 5) -> dict:
    """One wrk run; the parsed JSON of the script's done() plus req/s and ms percentiles."""
    cmd = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % max(1, round(duration)),
           "--timeout", "%ds" % timeout_s, "-s", script_path, base_url]
    if cpus:
        cmd = ["taskset", "-c", cpus] + cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return summarize(json.loads(line[len(MARK):]))
    raise RuntimeError("wrk gave no result (exit %d): %s %s"
                       % (done.returncode, done.stdout[-500:], done.stderr[-500:]))


def summarize(raw: dict) -> dict:
    seconds = raw["duration_us"] / 1e6
    lat = raw["latency_us"]
    errors = sum(raw["errors"].values())
    return {
        "rps": raw["requests"] / seconds if seconds else 0.0,
        "requests": raw["requests"],
        "errors": errors,
        "error_detail": raw["errors"],
        "mb_per_s": raw["bytes"] / seconds / 1e6 if seconds else 0.0,
        "p50_ms": lat["p50"] / 1000, "p90_ms": lat["p90"] / 1000,
        "p99_ms": lat["p99"] / 1000, "p99_9_ms": lat["p99_9"] / 1000,
        "max_ms": lat["max"] / 1000, "mean_ms": lat["mean"] / 1000,
    }
