"""Draws BENCHMARKS.png from the benchmark's results (target/bench/results.json):
one panel per kind of figure, each bar at p50 with its p99 drawn above it,
the baseline measured in the same run beside it.

    python bench/python/plot.py target/bench/results.json BENCHMARKS.png
"""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any, Dict, List

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Row = Dict[str, Any]
P50, P99, BASE = "#3b75af", "#a6c8e8", "#b0b0b0"


def label(text: str, width: int = 26) -> str:
    return "\n".join(textwrap.wrap(text.replace("libregistry", "lr"), width))


def bars(ax: Any, rows: List[Row], title: str, unit: str, baseline_each: bool, log: bool = False) -> None:
    """p50 bars with p99 on top; with ``baseline_each``, each row's baseline
    is drawn in grey right before it."""
    names: List[str] = []
    p50: List[float] = []
    p99: List[float] = []
    colors: List[str] = []
    for row in rows:
        base = row.get("baseline")
        if baseline_each and base:
            names.append(label(base["what"]))
            p50.append(base["p50"])
            p99.append(base["p99"] if base["p99"] is not None else base["p50"])
            colors.append(BASE)
        names.append(label(row["what"]))
        p50.append(row["p50"])
        p99.append(row["p99"] if row["p99"] is not None else row["p50"])
        colors.append(P50)
    x = range(len(names))
    ax.bar(x, p99, color=[P99 if c == P50 else "#dddddd" for c in colors], label="p99")
    ax.bar(x, p50, color=colors, label="p50")
    for i, (v, row_ratio) in enumerate(zip(p50, ratios(rows, baseline_each))):
        if row_ratio:
            ax.annotate(row_ratio, (i, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=60, ha="right", fontsize=6)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel(unit, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    if log:
        ax.set_yscale("log")


def ratios(rows: List[Row], baseline_each: bool) -> List[str]:
    out: List[str] = []
    for row in rows:
        if baseline_each and row.get("baseline"):
            out.append("")
        out.append(f"{row['ratio']:.2f}x" if row.get("ratio") is not None else "")
    return out


def main() -> None:
    results = json.load(open(sys.argv[1]))
    rows: List[Row] = results["rows"]
    panel = lambda name: [r for r in rows if r["panel"] == name]  # noqa: E731
    fig, axes = plt.subplots(2, 3, figsize=(17, 10.5))
    bars(axes[0][0], panel("latency"), "Register latency, warm (p50 dark, p99 light; ratio to the floor)", "µs", False)
    bars(axes[0][1], panel("bulk"), "Bulk registration (higher is better; ratio to the floor)", "registrations/s", False, log=True)
    bars(axes[0][2], panel("propagation"), "Propagation to a watcher in another process (ratio to a raw put)", "µs", True)
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
