"""Draws BENCHMARKS.png from the benchmark's results (target/bench/results.json):
one panel per kind of figure, each bar at p50 with its p99 drawn above it,
the baseline measured in the same run beside it.

    python bench/python/plot.py target/bench/results.json BENCHMARKS.png
"""

from __future__ import annotations

import json
import math
import sys
import textwrap
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Row = Dict[str, Any]
P50, BASE = "#3b75af", "#b0b0b0"


def label(text: str, width: int = 26) -> str:
    return "\n".join(textwrap.wrap(text.replace("libregistry", "lr"), width))


def times(r: float) -> str:
    """A ratio as the table prints it: two decimals, two significant digits below 0.1."""
    if abs(r) >= 0.1 or r == 0:
        return f"{r:.2f}x"
    return f"{r:.{math.ceil(-math.log10(abs(r))) + 1}f}x"


def bars(ax: Any, rows: List[Row], title: str, unit: str, baseline_each: bool, log: bool = False) -> None:
    """p50 bars, p99 as a black tick; with ``baseline_each``, each row's
    baseline is drawn in grey before it (once while it stays the same)."""
    names: List[str] = []
    p50: List[float] = []
    p99: List[float] = []
    colors: List[str] = []
    notes: List[str] = []
    last_base = None
    for row in rows:
        base = row.get("baseline")
        if baseline_each and base and (base["what"], base["p50"]) != last_base:
            last_base = (base["what"], base["p50"])
            names.append(label(base["what"]))
            p50.append(base["p50"])
            p99.append(base["p99"] if base["p99"] is not None else base["p50"])
            colors.append(BASE)
            notes.append("")
        names.append(label(row["what"]))
        p50.append(row["p50"])
        p99.append(row["p99"] if row["p99"] is not None else row["p50"])
        colors.append(P50)
        notes.append(times(row["ratio"]) if row.get("ratio") is not None else "")
    x = list(range(len(names)))
    ax.bar(x, p50, color=colors)
    top = max([v for v in p50 if v > 0] or [1.0])
    ceiling = top * (30 if log else 2.2)
    for i, (v50, v99, note) in enumerate(zip(p50, p99, notes)):
        if v99 > v50:
            shown = min(v99, ceiling)
            ax.plot([i - 0.3, i + 0.3], [shown, shown], color="black", linewidth=1.5)
            ax.plot([i, i], [v50, shown], color="black", linewidth=0.6)
            if v99 > ceiling:
                ax.annotate(f"p99 {v99:,.0f}", (i, shown), ha="center", va="bottom", fontsize=6)
        if note:
            ax.annotate(note, (i, v50), ha="center", va="bottom", fontsize=7, color="#1d3d5c")
    if not log:
        ax.set_ylim(0, ceiling * 1.08)
    else:
        ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=6)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)


def main() -> None:
    results = json.load(open(sys.argv[1]))
    rows: List[Row] = results["rows"]
    panel = lambda name: [r for r in rows if r["panel"] == name]  # noqa: E731
    fig, axes = plt.subplots(2, 3, figsize=(17, 10.5))
    bars(axes[0][0], panel("latency"), "Register latency, warm (bar p50, tick p99; ratio to the floor)", "µs", False)
    bars(axes[0][1], panel("bulk"), "Bulk registration (higher is better; ratio to the floor)", "registrations/s", False, log=True)
    bars(axes[0][2], panel("propagation"), "Propagation to a watcher, another process then this one (ratio to a raw put)", "µs", True)
    bars(axes[1][0], panel("crash"), "Crash detection (grey: the TTL; ratio to it)", "s", True)
    bars(axes[1][1], panel("keepalive"), "Keepalive requests etcd receives (grey: the seed's way)", "messages/s", True, log=True)
    bars(axes[1][2], panel("recovery"), "Recovery after a wiped etcd (grey: raw write)", "s", True)
    m = results["machine"]
    fig.suptitle(
        f"libregistry benchmarks: {m['cores']} cores, etcd {m['etcd']}, {m['date']} (shared machine: ratios, not absolute times)",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.savefig(sys.argv[2], dpi=90)
    print(f"wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
