#!/usr/bin/env python3
"""Runs the fault matrix RUNS times on each etcd VERSION and prints the
min–max of every figure it measures, as the Markdown table of
docs/RELIABILITY.md.

    scripts/matrix-table.py RUNS VERSION [VERSION ...] [--from LOG ...]
    e.g. scripts/matrix-table.py 3 3.7.3 3.6.16 3.5.1 3.4.23

`--from LOG` adds the figures a saved output holds (a `make test` log runs
the matrix once per version) to those of the RUNS new runs.

Each run is `cargo test -p libregistry-tests --test fault_matrix` with that
version's etcd (scripts/etcd-path.sh VERSION); the figures are the
`fault-matrix: etcd V | CASE | WHAT: N ms` lines it prints. A failed run
stops the script with its output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent
FIGURE = re.compile(r"^fault-matrix: etcd (\S+) \| (.+?) \| (.+?): (\d+) ms$")
SAW = re.compile(r"^fault-matrix: etcd (\S+) \| (.+?) \| consumers saw: through the proxies (.+); directly (.+)$")
GAP = re.compile(r"up to (\d+) of \d+ missing for at most (\d+) ms")


def figures_in(text: str) -> List[Tuple[str, str, str, int]]:
    """(version, case, what, ms) of every figure line in `text`."""
    found = []
    for line in text.splitlines():
        m = FIGURE.match(line.strip())
        if m:
            found.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
    return found


def saw_in(text: str) -> List[Tuple[str, str, Tuple[int, int], Tuple[int, int]]]:
    """(version, case, (missing, ms) through the proxies, the same directly) of
    every "consumers saw" line in `text`; (0, 0): all there throughout."""
    found = []
    for line in text.splitlines():
        m = SAW.match(line.strip())
        if m:
            parts = []
            for said in (m.group(3), m.group(4)):
                gap = GAP.search(said)
                parts.append((int(gap.group(1)), int(gap.group(2))) if gap else (0, 0))
            found.append((m.group(1), m.group(2), parts[0], parts[1]))
    return found


def case_number(case: str) -> int:
    """1 for "1 leader killed", 4 for "4b ..."."""
    m = re.match(r"\d+", case)
    return int(m.group()) if m else 0


def run(version: str) -> str:
    etcd = subprocess.run(
        ["scripts/etcd-path.sh", version], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    done = subprocess.run(
        ["cargo", "test", "-q", "-p", "libregistry-tests", "--test", "fault_matrix", "--", "--nocapture"],
        cwd=ROOT,
        env={**os.environ, "ETCD_BIN": etcd},
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"the fault matrix failed on etcd {version}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def span(values: List[int]) -> str:
    """`lo–hi ms`, or in seconds from 2 s on."""
    lo, hi = min(values), max(values)
    if hi >= 2000:
        return f"{lo / 1000:.2f} s" if lo == hi else f"{lo / 1000:.2f}–{hi / 1000:.2f} s"
    return f"{lo} ms" if lo == hi else f"{lo}–{hi} ms"


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    args = sys.argv[2:]
    logs = args[args.index("--from") + 1 :] if "--from" in args else []
    runs, versions = int(sys.argv[1]), args[: args.index("--from")] if logs else args
    # Every output to read: the saved logs, then RUNS new runs per version.
    texts = [Path(log).read_text(errors="replace") for log in logs]
    for version in versions:
        for n in range(runs):
            print(f"matrix-table: etcd {version}, run {n + 1} of {runs}", file=sys.stderr)
            texts.append(run(version))
    table: Dict[Tuple[str, str], Dict[str, List[int]]] = defaultdict(lambda: defaultdict(list))
    order: List[Tuple[str, str]] = []
    for text in texts:
        for version, case, what, ms in figures_in(text):
            if version in versions:
                if (case, what) not in order:
                    order.append((case, what))
                table[(case, what)][version].append(ms)
    print("| case | recovered | " + " | ".join(f"etcd {v}" for v in versions) + " |")
    print("|---|---|" + "---|" * len(versions))
    for case, what in sorted(order, key=lambda k: (case_number(k[0]), k[0], order.index(k))):
        cells = [span(table[(case, what)][v]) if table[(case, what)][v] else "" for v in versions]
        print(f"| {case} | {what} | " + " | ".join(cells) + " |")
    # What consumers saw: the worst of the runs, through the proxies / directly.
    worst: Dict[str, Dict[str, List[Tuple[int, int]]]] = defaultdict(dict)
    for text in texts:
        for version, case, proxied, direct in saw_in(text):
            if version in versions:
                old = worst[case].get(version, [(0, 0), (0, 0)])
                worst[case][version] = [max(old[0], proxied), max(old[1], direct)]
    if worst:
        print()
        print("| case | " + " | ".join(f"etcd {v}" for v in versions) + " |")
        print("|---|" + "---|" * len(versions))
        for case in sorted(worst, key=lambda c: (case_number(c), c)):
            cells = []
            for v in versions:
                seen = worst[case].get(v)
                if seen is None:
                    cells.append("")
                elif seen == [(0, 0), (0, 0)]:
                    cells.append("all 100 throughout")
                else:
                    cells.append(" / ".join(f"≤ {n} missing ≤ {ms} ms" if n else "none missing" for n, ms in seen))
            print(f"| {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
