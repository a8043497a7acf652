#!/usr/bin/env python3
"""Fails when two modules of one crate (or of the Python package) import each
other, directly or around a longer loop.

    scripts/check-import-cycles.py [DIR ...]   (default: the project's crates and package)

Rust: a module is a file (`a.rs`, `a/mod.rs`, `a/b.rs`; `lib.rs` is the crate
root). Module A depends on module B when A's code names a path into B:
`crate::b::..`, `super::..`, or a child declared in A (`child::..`). A name
re-exported by the crate root (`crate::Error`) counts as a dependency on the
root. `mod` declarations do not count, and inline `#[cfg(test)]` modules are
left out (they belong to their file). Python: `from . import x`, `from .x
import y` and `import libregistry.x` inside the package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DIRS = ["core/src", "ffi-c/src", "cli/src", "py/src", "py/python/libregistry", "bench/src", "tests/harness", "tests/bin/soak"]

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def rust_modules(src: Path) -> dict[str, Path]:
    """Module path ("" for the root) -> file."""
    modules = {}
    for file in sorted(src.rglob("*.rs")):
        parts = list(file.relative_to(src).with_suffix("").parts)
        if parts in (["lib"], ["main"]):
            parts = []
        elif parts[-1] == "mod":
            parts = parts[:-1]
        modules["::".join(parts)] = file
    return modules


def strip_tests_and_comments(text: str) -> str:
    """Drops line comments and inline `#[cfg(test)] mod x { .. }` blocks."""
    text = re.sub(r"//[^\n]*", "", text)
    out, i = [], 0
    pattern = re.compile(r"#\[cfg\(test\)\]\s*mod\s+" + IDENT + r"\s*\{")
    while True:
        m = pattern.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j


def expand_group(text: str, start: int) -> list[str]:
    """The paths of a `{a::b, c::{d, e}}` group whose `{` is at `start`."""
    depth, j = 0, start
    while j < len(text):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            break
        j += 1
    inner = text[start + 1 : j]
    items, depth, current = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        current += ch
    items.append(current)
    paths = []
    for item in (s.strip() for s in items):
        if not item:
            continue
        brace = item.find("{")
        if brace >= 0:
            head = item[:brace].rstrip(":").strip()
            for sub in expand_group(item, brace):
                paths.append(f"{head}::{sub}" if head else sub)
        else:
            paths.append(item.split(" as ")[0].strip())
    return paths


def referenced_paths(text: str, anchors: list[str]) -> list[tuple[str, str]]:
    """(anchor, rest) for every path starting with one of `anchors`."""
    found = []
    pattern = re.compile(r"\b(" + "|".join(anchors) + r")::(\{|" + IDENT + r"(?:::" + IDENT + r")*)")
    for m in pattern.finditer(text):
        anchor, rest = m.group(1), m.group(2)
        if rest == "{":
            for path in expand_group(text, m.end(2) - 1):
                found.append((anchor, path))
        else:
            found.append((anchor, rest))
    return found


def deepest_module(modules: dict[str, Path], parts: list[str]) -> str | None:
    for n in range(len(parts), -1, -1):
        candidate = "::".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def rust_graph(src: Path) -> dict[str, set[str]]:
    modules = rust_modules(src)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, file in modules.items():
        here = module.split("::") if module else []
        children = sorted(
            m.split("::")[-1] for m in modules if m and m.count("::") == len(here) and m.startswith(module)
        )
        children = [c for c in children if ("::".join(here + [c])) in modules]
        text = strip_tests_and_comments(file.read_text())
        anchors = ["crate", "super", "self"] + children
        for anchor, rest in referenced_paths(text, anchors):
            segments = [s for s in rest.split("::") if s and s != "*"]
            if anchor == "crate":
                base = []
            elif anchor == "super":
                base = here[:-1]
                while segments and segments[0] == "super":
                    base, segments = base[:-1], segments[1:]
            elif anchor == "self":
                base = here
            else:
                base, segments = here + [anchor], segments
            target = deepest_module(modules, base + segments)
            if target is not None and target != module:
                graph[module].add(target)
    return graph


def python_graph(package: Path) -> dict[str, set[str]]:
    modules = {f.stem: f for f in package.glob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, file in modules.items():
        text = file.read_text()
        for m in re.finditer(r"^\s*from \.(" + IDENT + r")? import ([^\n(]+|\([^)]*\))", text, re.M):
            if m.group(1):
                targets = [m.group(1)]
            else:
                targets = [n.strip().split(" as ")[0] for n in m.group(2).strip("()").split(",")]
            for target in targets:
                target = target.strip()
                if target in modules and target != module:
                    graph[module].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main() -> int:
    dirs = sys.argv[1:] or DEFAULT_DIRS
    failed = False
    for d in dirs:
        path = (ROOT / d) if not Path(d).is_absolute() else Path(d)
        graph = python_graph(path) if any(path.glob("*.py")) else rust_graph(path)
        edges = sum(len(t) for t in graph.values())
        loops = cycles(graph)
        name = lambda m: m or "(crate root)"
        if loops:
            failed = True
            for loop in loops:
                print(f"{d}: modules import each other: {', '.join(name(m) for m in loop)}")
                for m in loop:
                    inside = sorted(t for t in graph[m] if t in loop)
                    print(f"    {name(m)} -> {', '.join(name(t) for t in inside)}")
        else:
            print(f"{d}: {len(graph)} modules, {edges} imports, no loops")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
