"""Rounds: servers take turns under the same load, and a comparison is a median of paired ratios.

On this shared VM a burst of host noise (DAMON's kdamond, a kworker, a broker's scheduler
threads waking on the server's or wrk's core) lasts a few seconds and lands on whichever server
is being measured at the time.  One 10 s measurement per server turns such a burst into a
verdict: at c=64 fastnova's p99 went from 0.62-0.77 ms to 5.6 ms in the one round of six that
caught one, while nginx's stayed at 1.1-1.3 ms (same run, 2026-11-24).  So each cell is measured
in rounds, the servers taking turns within a round, and

- a server's figure for the cell is the median over its rounds;
- a ratio between two servers is the median over rounds of that round's ratio (both sides of a
  ratio were measured seconds apart, so the noise of that moment is on both).
"""
from __future__ import annotations

import statistics

FIGURES = ("rps", "requests", "mb_per_s", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms",
           "corrected_p99_ms", "corrected_p99_9_ms",
           "mean_ms")


def per_round(rows: list[dict], key: str, num: str, den: str) -> list[float]:
    """For each round where both ran: ``num``'s ``key`` over ``den``'s (rows carry ``round``
    and ``server``)."""
    by = {(r["round"], r["server"]): r.get(key) for r in rows}
    found = []
    for n in sorted({r["round"] for r in rows}):
        a, b = by.get((n, num)), by.get((n, den))
        if a is not None and b:
            found.append(a / b)
    return found


def combine(rows: list[dict]) -> dict:
    """One row for a server's cell from its rounds: each figure's median, errors summed."""
    if not rows:
        raise ValueError("no rounds to combine")
    first = rows[0]
    out = {k: v for k, v in first.items() if k not in FIGURES and k not in ("round", "errors",
                                                                           "error_detail")}
    for key in FIGURES:
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            out[key] = statistics.median(vals)
    out["errors"] = sum(r.get("errors", 0) for r in rows)
    out["rounds"] = len(rows)
    return out


def cells(round_rows: list[dict], reference: str = "nginx") -> list[dict]:
    """Combine a set of rounds (one store, scenario and concurrency; several servers) into one
    row per server; every other server's row gets ``vs_<reference>``: the per-round ratios of
    req/s and p99 against the reference."""
    servers = []
    for r in round_rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    out = []
    for server in servers:
        row = combine([r for r in round_rows if r["server"] == server])
        if server != reference and any(r["server"] == reference for r in round_rows):
            row["vs_" + reference] = {
                key: per_round(round_rows, key, server, reference)
                for key in ("rps", "p99_ms", "corrected_p99_ms")
                if any(r.get(key) is not None for r in round_rows)}
        out.append(row)
    return out


def median_ratio(row: dict, key: str, reference: str = "nginx") -> float | None:
    vals = (row.get("vs_" + reference) or {}).get(key)
    return statistics.median(vals) if vals else None
