"""The types say what the runtime accepts: `mypy --strict` reports exactly
the calls of typing_cases.py marked `# expect-error`, and against a real
etcd exactly those marked `# runtime-error` raise `TypeError`."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Set

import pytest

import libregistry
from etcd_harness import Etcd

CASES = Path(__file__).resolve().parent / "typing_cases.py"


def call_lines() -> Dict[int, str]:
    """Line number -> source of each call in `calls()`."""
    source = CASES.read_text()
    tree = ast.parse(source)
    (calls,) = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "calls"]
    lines = source.splitlines()
    return {s.lineno: lines[s.lineno - 1].split("#")[0].strip() for s in calls.body if isinstance(s, ast.Expr)}


def marked(mark: str) -> Set[int]:
    lines = CASES.read_text().splitlines()
    return {n for n in call_lines() if re.search(rf"#.*\b{mark}\b", lines[n - 1])}


def test_the_cases_cover_both_sides() -> None:
    assert len(call_lines()) >= 20
    assert marked("expect-error") & marked("runtime-error"), "calls both refuse"
    assert set(call_lines()) - marked("expect-error") - marked("runtime-error"), "calls both accept"


def test_mypy_strict_reports_exactly_the_calls_marked_expect_error() -> None:
    pytest.importorskip("mypy", reason="mypy is not installed (scripts/test-python.sh installs it)")
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--cache-dir", "/dev/null", "--no-error-summary", CASES.name],
        capture_output=True,
        text=True,
        cwd=CASES.parent,
    )
    out = mypy.stdout + mypy.stderr
    reported = {int(m.group(1)) for m in re.finditer(rf"^{re.escape(CASES.name)}:(\d+): error:", out, re.M)}
    assert mypy.returncode in (0, 1) and out.count(": error:") == len(reported), out
    assert reported == marked("expect-error"), f"mypy --strict said:\n{out}"


def test_the_runtime_refuses_exactly_the_calls_marked_runtime_error(etcd: Etcd, prefix: str) -> None:
    refused: Dict[int, str] = {}
    with libregistry.Registry(etcd.endpoint, prefix=prefix) as reg:
        r = reg.register("other", "127.0.0.1:1")
        for number, call in call_lines().items():
            names: Dict[str, Any] = {"reg": reg, "addr": "127.0.0.1:4000", "r": r}
            try:
                made = eval(call, names)  # one call of the cases, as written there
            except TypeError as e:
                refused[number] = str(e)
                continue
            for registration in made if isinstance(made, list) else [made]:
                if isinstance(registration, libregistry.Registration):
                    registration.deregister()
        assert etcd.dump(prefix + "/micro/") == {}, "a refused call leaves nothing behind"
    assert set(refused) == marked("runtime-error"), refused
    print("TypeError texts:", *sorted(set(refused.values())), sep="\n  ")
