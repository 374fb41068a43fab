"""PNG plots of a load result: latency against concurrency, throughput against workers.

matplotlib is imported only here and only when plots are asked for, so the load runner and the
tables work without it (``pip install matplotlib``).
"""
from __future__ import annotations

import os

SERVERS = ("fastnova", "nginx", "bare", "target")
PLOT_SCENARIOS = ("show", "detail100")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")       # no display on a build machine
    import matplotlib.pyplot as plt
    return plt


def draw(res: dict, result_path: str) -> list[str]:
    base = os.path.splitext(result_path)[0]
    out = [_latency(res, base + "-latency.png")]
    if res.get("workers"):
        out.append(_workers(res, base + "-workers.png"))
    return out


def _series(res, store, scenario, server, key):
    rows = sorted((r for r in res["runs"] if r["store"] == store and r["scenario"] == scenario
                   and r["server"] == server), key=lambda r: r["concurrency"])
    return [r["concurrency"] for r in rows], [r[key] for r in rows]


def _latency(res, path: str) -> str:
    plt = _pyplot()
    stores = sorted({r["store"] for r in res["runs"] if r["store"] is not None})
    fig, axes = plt.subplots(len(PLOT_SCENARIOS), max(1, len(stores)), squeeze=False,
                             figsize=(5.5 * max(1, len(stores)), 4 * len(PLOT_SCENARIOS)))
    for col, store in enumerate(stores):
        for row, scenario in enumerate(PLOT_SCENARIOS):
            ax = axes[row][col]
            for server in SERVERS:
                for key, style in (("p50_ms", "-o"), ("p99_ms", "--x")):
                    xs, ys = _series(res, store, scenario, server, key)
                    if xs:
                        ax.plot(xs, ys, style, label="%s %s" % (server, key[:3]))
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("concurrency (connections)")
            ax.set_ylabel("latency, ms")
            ax.set_title("%s, %d servers" % (scenario, store))
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle("Latency against concurrency (%s)" % res["started"][:10])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _workers(res, path: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    scenarios = sorted({w["scenario"] for w in res["workers"]})
    labels = []
    for w in res["workers"]:
        label = "%dw@%s" % (w["workers"], w["server_cpus"])
        if label not in labels:
            labels.append(label)
    width = 0.8 / max(1, len(scenarios))
    for i, scenario in enumerate(scenarios):
        values = {("%dw@%s" % (w["workers"], w["server_cpus"])): w["rps"]
                  for w in res["workers"] if w["scenario"] == scenario}
        xs = [j + i * width for j in range(len(labels))]
        ax.bar(xs, [values.get(lab, 0) for lab in labels], width, label=scenario)
    ax.set_xticks([j + width * (len(scenarios) - 1) / 2 for j in range(len(labels))])
    ax.set_xticklabels(["%s\n(workers@cores)" % lab for lab in labels])
    ax.set_ylabel("req/s")
    ax.set_title("Throughput against workers (c=%d)" % res["workers"][0]["concurrency"])
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
