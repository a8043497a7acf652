#!/usr/bin/env python3
"""Every fenced code block of the docs, compiled or run, so no snippet rots.

    scripts/test-docs.py [FILE.md ...]     (default: every tracked *.md but packaging/'s templates)

What each block gets is said in the doc, by an HTML comment on the line
before its fence (blank lines between are allowed); without one a block runs:

    <!-- test: run -->                       (the default) compiled and run
    <!-- test: compile-only: REASON -->      compiled only (shell: `bash -n`; Python: byte-compiled)
    <!-- test: skip: REASON -->              nothing; counted and listed
    <!-- test: until-killed -->              run; must still be running after 3 s (or, with
                                             `prints`, once it printed them), then gets SIGTERM

and these words may join any of them, before the colon:

    fragment        statements, wrapped in the language's template: Rust in
                    `fn main() -> Result<(), Box<dyn Error>>`, C and C++ in
                    `int main` with the usual headers, Go: a file without its
                    `package` clause (and `func main` when it has none),
                    Python: top-level `await` / `async with` allowed (run as
                    in `python -m asyncio`)
    in-repo         runs in the repository (default: a scratch directory)
    prints "TEXT"   the output must hold TEXT (repeatable)

A block without a language (or `text`, `console`, `json`) is output or data,
not code: counted as text. TOML and YAML blocks are parsed (compile-only); cmake
blocks have no runner (skip, with a reason).

How each language runs: Rust in a scratch crate depending on core/ by path
(target/ shared, so nothing is rebuilt), C (-std=c11 -Wall -Wextra -Werror
-pedantic) and C++ (-std=c++17, the same warnings) against
target/debug/libregistry.so and include/, Go in a copy of tests/interop/go's
module (skipped, saying so, without a Go toolchain), Python with .venv's
interpreter (the package installed there), shell with bash -euo pipefail.
Blocks that run get REGISTRY_ENDPOINTS of an etcd started here on free
loopback ports ($ETCD_BIN, else scripts/etcd-path.sh), emptied before each
block. Also checks scripts/local-etcd.sh (start, status, etcdctl, stop) in a
scratch directory and runs `cargo doc --no-deps -p libregistry` with
warnings as errors.

Prints what it did per language; exits 1 naming FILE:LINE of each block
that failed. Needs: `cargo build -p libregistry-ffi` and the Python package
installed into .venv (make test does both first).
"""

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120  # seconds, for any one compile or run
UNTIL_KILLED = 3.0  # seconds a long-running block must survive
C_FLAGS = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"]
CXX_FLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]
LANGS = {
    "rust": "rust", "python": "python", "py": "python", "c": "c", "cpp": "cpp", "c++": "cpp",
    "go": "go", "sh": "sh", "bash": "sh", "shell": "sh", "cmake": "cmake", "toml": "toml", "yaml": "yaml", "yml": "yaml",
    "": "text", "text": "text", "console": "text", "json": "text",
}
MODES = {"run", "compile-only", "skip", "until-killed"}
FLAGS = {"fragment", "in-repo"}

TEMPLATES = {
    "rust": "#[allow(unused_imports)]\nuse std::error::Error;\n\nfn main() -> Result<(), Box<dyn std::error::Error>> {{\n{code}\n    Ok(())\n}}\n",
    "c": "#define _POSIX_C_SOURCE 200809L\n#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n"
         "#include \"registry.h\"\n\nint main(void) {{\n{code}\n  return 0;\n}}\n",
    "cpp": "#include <cstdlib>\n#include <iostream>\n#include <string>\n#include \"registry.hpp\"\n\n"
           "int main() {{\n{code}\n  return 0;\n}}\n",
}


# Compiles (argv[2] == "check") or runs a Python file with top-level await allowed.
PY_FRAGMENT = """import ast, asyncio, sys
code = compile(open(sys.argv[1]).read(), sys.argv[1], "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
if sys.argv[2:] != ["check"]:
    result = eval(code, {"__name__": "__main__"})
    if asyncio.iscoroutine(result):
        asyncio.run(result)
"""


@dataclass
class Block:
    path: str
    line: int  # of the opening fence
    lang: str
    code: str
    mode: str = "run"
    flags: set = field(default_factory=set)
    prints: list = field(default_factory=list)
    reason: str = ""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


class MarkerError(Exception):
    pass


MARKER = re.compile(r"^\s*<!--\s*test:(.*?)-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")


def parse_marker(text: str, where: str) -> tuple:
    prints = re.findall(r'prints\s+"([^"]*)"', text)
    words, _, reason = re.sub(r'prints\s+"[^"]*"', " ", text).partition(":")
    tokens = [w for w in re.split(r"[\s,]+", words) if w]
    modes = [w for w in tokens if w in MODES]
    unknown = [w for w in tokens if w not in MODES | FLAGS]
    if unknown or len(modes) > 1:
        raise MarkerError(f"{where}: bad test marker {text.strip()!r} (modes: {sorted(MODES)}, words: {sorted(FLAGS)}, prints \"TEXT\")")
    mode = modes[0] if modes else "run"
    reason = reason.strip()
    if mode in ("compile-only", "skip") and not reason:
        raise MarkerError(f"{where}: `{mode}` needs a reason: <!-- test: {mode}: why -->")
    return mode, set(tokens) - MODES, prints, reason


def extract(path: Path) -> list:
    rel = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        start = i
        body = []
        i += 1
        while i < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        if lang not in LANGS:
            raise MarkerError(f"{rel}:{start + 1}: no runner for language {lang!r}")
        block = Block(rel, start + 1, LANGS[lang], "\n".join(body) + "\n")
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = MARKER.match(lines[j]) if j >= 0 else None
        if marker:
            block.mode, block.flags, block.prints, block.reason = parse_marker(marker.group(1), block.where)
        if block.lang == "cmake" and block.mode != "skip":
            raise MarkerError(f"{block.where}: no runner for cmake blocks: mark it skip with a reason")
        if block.lang in ("toml", "yaml") and block.mode not in ("skip", "compile-only"):
            raise MarkerError(f"{block.where}: {block.lang} is data: mark it compile-only (parsed) or skip, with a reason")
        blocks.append(block)
    return blocks


# ---------------------------------------------------------------- etcd


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Etcd:
    """A throwaway etcd on free loopback ports, in a temp dir."""

    def __init__(self, scratch: Path):
        binary = os.environ.get("ETCD_BIN") or subprocess.run(
            [str(ROOT / "scripts/etcd-path.sh")], capture_output=True, text=True, check=True).stdout.strip()
        self.binary = binary
        client, peer = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{client}"
        self.log = open(scratch / "etcd.log", "w")
        self.proc = subprocess.Popen(
            [binary, "--name", "docs", "--data-dir", str(scratch / "etcd"),
             "--listen-client-urls", self.endpoint, "--advertise-client-urls", self.endpoint,
             "--listen-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
             "--initial-cluster", f"docs=http://127.0.0.1:{peer}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        break
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"test-docs: etcd {binary} did not start; see {scratch}/etcd.log")
            time.sleep(0.1)

    def wipe(self) -> None:
        """Deletes every key (etcd's JSON gateway: the range from "\\0" to the end)."""
        zero = base64.b64encode(b"\0").decode()
        body = json.dumps({"key": zero, "range_end": zero}).encode()
        urllib.request.urlopen(urllib.request.Request(self.endpoint + "/v3/kv/deleterange", body), timeout=5).read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------- running


class Runner:
    def __init__(self, scratch: Path, etcd: Etcd):
        self.scratch = scratch
        self.etcd = etcd
        self.failures = []
        self.done = Counter()  # (lang, what) -> count
        self.skipped = []
        self.lib_dir = ROOT / "target/debug"
        venv_bin = ROOT / ".venv/bin"
        self.python = str(venv_bin / "python")
        # target/debug first: shell blocks call the `registry` command cargo built there.
        path = os.pathsep.join([str(self.lib_dir), str(venv_bin), str(Path(etcd.binary).parent), os.environ.get("PATH", "")])
        self.env = dict(os.environ, REGISTRY_ENDPOINTS=etcd.endpoint, ETCDCTL_ENDPOINTS=etcd.endpoint, PATH=path)

    def fail(self, block: Block, what: str, out: str) -> None:
        self.failures.append(block)
        print(f"FAIL {block.where} ({block.lang}, {block.mode}): {what}\n{out.rstrip()}\n", flush=True)

    def call(self, block: Block, what: str, argv: list, cwd: Path = None, env: dict = None) -> bool:
        try:
            p = subprocess.run(argv, cwd=cwd or self.scratch, env=env or self.env, capture_output=True,
                               text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as e:
            self.fail(block, f"{what}: still running after {TIMEOUT} s", str(e.stdout or ""))
            return False
        if p.returncode != 0:
            self.fail(block, f"{what} exited with {p.returncode}", p.stdout + p.stderr)
            return False
        missing = [t for t in block.prints if t not in p.stdout + p.stderr] if what == "run" else []
        if missing:
            self.fail(block, f"the output lacks {missing}", p.stdout + p.stderr)
            return False
        return True

    def execute(self, block: Block, argv: list) -> bool:
        """Runs (or, for until-killed, starts) a compiled block against a wiped etcd."""
        self.etcd.wipe()
        cwd = ROOT if "in-repo" in block.flags else self.scratch
        if block.mode != "until-killed":
            return self.call(block, "run", argv, cwd)
        out_file = self.scratch / "until-killed.out"
        with open(out_file, "w") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        # Runs for UNTIL_KILLED s, or until it printed what it must (at most TIMEOUT s).
        deadline = time.monotonic() + (TIMEOUT if block.prints else UNTIL_KILLED)
        while time.monotonic() < deadline and proc.poll() is None:
            if block.prints and all(t in out_file.read_text() for t in block.prints):
                break
            time.sleep(0.1)
        if proc.poll() is not None:
            self.fail(block, f"exited with {proc.returncode} (expected to run until killed)", out_file.read_text())
            return False
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        output = out_file.read_text()
        missing = [t for t in block.prints if t not in output]
        if missing:
            self.fail(block, f"the output lacks {missing}", output)
            return False
        return True

    def count(self, block: Block, ok: bool) -> None:
        if ok:
            self.done[(block.lang, "compile-only" if block.mode == "compile-only" else "ran")] += 1

    def source(self, block: Block) -> str:
        if "fragment" in block.flags and block.lang in TEMPLATES:
            return TEMPLATES[block.lang].format(code=block.code)
        return block.code

    # --- languages

    def c_like(self, block: Block, n: int) -> None:
        suffix, compiler, flags = (".c", "cc", C_FLAGS) if block.lang == "c" else (".cpp", "c++", CXX_FLAGS)
        src = self.scratch / f"block{n}{suffix}"
        exe = self.scratch / f"block{n}"
        src.write_text(self.source(block))
        ok = self.call(block, "compile", [compiler, *flags, "-I", str(ROOT / "include"), str(src), "-o", str(exe),
                                          "-L", str(self.lib_dir), f"-Wl,-rpath,{self.lib_dir}", "-lregistry",
                                          "-lpthread", "-ldl", "-lm"])
        if ok and block.mode != "compile-only":
            ok = self.execute(block, [str(exe)])
        self.count(block, ok)

    def python_block(self, block: Block, n: int) -> None:
        src = self.scratch / f"block{n}.py"
        src.write_text(block.code)
        if "fragment" in block.flags:  # top-level await, as `python -m asyncio` allows
            check, argv = [self.python, "-c", PY_FRAGMENT, str(src), "check"], [self.python, "-c", PY_FRAGMENT, str(src)]
        else:
            check, argv = [self.python, "-m", "py_compile", str(src)], [self.python, str(src)]
        ok = self.call(block, "compile", check)
        if ok and block.mode != "compile-only":
            ok = self.execute(block, argv)
        self.count(block, ok)

    def toml(self, block: Block, n: int) -> None:
        src = self.scratch / f"block{n}.toml"
        src.write_text(block.code)
        self.count(block, self.call(block, "parse", [self.python, "-c", "import sys, tomllib; tomllib.load(open(sys.argv[1], 'rb'))", str(src)]))

    def yaml(self, block: Block, n: int) -> None:
        src = self.scratch / f"block{n}.yaml"
        src.write_text(block.code)
        check = [self.python, "-c", "import yaml"]
        if subprocess.run(check, capture_output=True).returncode != 0:
            print("test-docs: installing PyYAML into .venv to parse the YAML blocks", flush=True)
            self.call(block, "pip install pyyaml", [self.python, "-m", "pip", "install", "-q", "pyyaml>=6,<7"])
        parse = "import sys, yaml; yaml.safe_load(open(sys.argv[1]))"
        self.count(block, self.call(block, "parse", [self.python, "-c", parse, str(src)]))

    def sh(self, block: Block, n: int) -> None:
        src = self.scratch / f"block{n}.sh"
        src.write_text(block.code)
        ok = self.call(block, "bash -n", ["bash", "-n", str(src)])
        if ok and block.mode != "compile-only":
            ok = self.execute(block, ["bash", "-euo", "pipefail", str(src)])
        self.count(block, ok)

    def go(self, blocks: list) -> None:
        if not blocks:
            return
        module = ROOT / "tests/interop/go"
        need = re.search(r"^go ([\d.]+)$", (module / "go.mod").read_text(), re.M).group(1)
        have = None
        if shutil.which("go"):
            have = subprocess.run(["go", "env", "GOVERSION"], capture_output=True, text=True).stdout.strip()[2:]
        if not have or [int(x) for x in have.split(".")[:3]] < [int(x) for x in need.split(".")]:
            for block in blocks:
                self.skipped.append((block, f"no Go toolchain {need} or newer here"))
            print(f"== SKIPPED: {len(blocks)} Go block(s): no Go {need} or newer (found: {have or 'none'})")
            return
        env = dict(self.env, GOTOOLCHAIN="local", GOFLAGS="-mod=readonly")
        for n, block in enumerate(blocks):
            d = self.scratch / f"go{n}"
            d.mkdir()
            shutil.copy(module / "go.mod", d)
            shutil.copy(module / "go.sum", d)
            code = block.code
            if "fragment" in block.flags:
                code = "package main\n\n" + code
                if not re.search(r"^func main\(\)", code, re.M):
                    code += "\nfunc main() {}\n"
            (d / "main.go").write_text(code)
            ok = self.call(block, "go build", ["go", "build", "-o", str(d / "block"), "."], cwd=d, env=env)
            if ok and block.mode != "compile-only":
                ok = self.execute(block, [str(d / "block")])
            self.count(block, ok)

    def rust(self, blocks: list) -> None:
        """One scratch crate, a binary per block, built in one go in the workspace's target/."""
        if not blocks:
            return
        crate = self.scratch / "rust"
        (crate / "src/bin").mkdir(parents=True)
        (crate / "Cargo.toml").write_text(
            '[package]\nname = "doc-snippets"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n'
            f'[dependencies]\nlibregistry = {{ path = "{ROOT / "core"}" }}\n\n[workspace]\n')
        shutil.copy(ROOT / "Cargo.lock", crate / "Cargo.lock")  # the workspace's versions: nothing rebuilt
        for n, block in enumerate(blocks):
            (crate / f"src/bin/block{n}.rs").write_text(self.source(block))
        env = dict(self.env, CARGO_TARGET_DIR=str(ROOT / "target"))
        build = ["cargo", "build", "-q", "--manifest-path", str(crate / "Cargo.toml")]
        together = subprocess.run(build + ["--bins"], env=env, capture_output=True, text=True, timeout=900)
        for n, block in enumerate(blocks):
            if together.returncode != 0:
                ok = self.call(block, "cargo build", build + ["--bin", f"block{n}"], env=env)
            else:
                ok = True
            if ok and block.mode != "compile-only":
                ok = self.execute(block, [str(ROOT / "target/debug" / f"block{n}")])
            self.count(block, ok)
        if together.returncode != 0 and not self.failures:
            self.failures.append(blocks[0])
            print(f"FAIL the scratch crate did not build:\n{together.stderr}")

    def local_etcd(self) -> None:
        """scripts/local-etcd.sh, as the README's quick start uses it, in a scratch directory."""
        script = str(ROOT / "scripts/local-etcd.sh")
        env = dict(self.env, LOCAL_ETCD_DIR=str(self.scratch / "local-etcd"))
        env.pop("REGISTRY_ENDPOINTS")
        block = Block("scripts/local-etcd.sh", 1, "check", "")
        steps = [["status"], ["start"], ["start"], ["status"], ["etcdctl", "put", "/micro/127.0.0.1:4000", "{}"],
                 ["etcdctl", "get", "--prefix", "/micro/"], ["stop"], ["stop"], ["status"]]
        outputs = []
        for step in steps:
            p = subprocess.run([script, *step], env=env, capture_output=True, text=True, timeout=60)
            outputs.append((step, p.returncode, p.stdout, p.stderr))
        log = "\n".join(f"$ local-etcd.sh {' '.join(s)} -> {rc}\n{o}{e}" for s, rc, o, e in outputs)
        codes = [rc for _, rc, _, _ in outputs]
        exports = [o for s, rc, o, e in outputs if s == ["start"]]
        ok = (codes == [3, 0, 0, 0, 0, 0, 0, 0, 3]
              and all(re.fullmatch(r"export REGISTRY_ENDPOINTS=http://127\.0\.0\.1:\d+\n", o) for o in exports)
              and exports[0] == exports[1]
              and outputs[5][2] == "/micro/127.0.0.1:4000\n{}\n"
              and "stopped etcd" in outputs[6][3] and "not running" in outputs[7][3])
        if ok:
            print("== scripts/local-etcd.sh: start, start again, status, etcdctl, stop, stop again: ok")
        else:
            self.fail(block, "start/status/etcdctl/stop did not behave", log)

    def cargo_doc(self) -> None:
        env = dict(os.environ, RUSTDOCFLAGS="-D warnings")
        p = subprocess.run(["cargo", "doc", "-q", "--no-deps", "-p", "libregistry"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=900)
        if p.returncode != 0:
            self.fail(Block("core/src", 1, "check", ""), "cargo doc -D warnings failed", p.stderr)
        else:
            print("== cargo doc --no-deps -p libregistry with RUSTDOCFLAGS=-D warnings: ok")


def doc_files(args: list) -> list:
    if args:
        return [Path(a).resolve() for a in args]
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    # packaging/ holds templates (@VERSION@) that scripts/dist.sh fills in
    return [ROOT / p for p in tracked if not p.startswith("packaging/")]


def main() -> int:
    started = time.monotonic()
    files = doc_files(sys.argv[1:])
    try:
        blocks = [b for f in files for b in extract(f)]
    except MarkerError as e:
        print(f"test-docs: {e}")
        return 1
    if not (ROOT / "target/debug/libregistry.so").exists():
        print("test-docs: target/debug/libregistry.so is missing: cargo build -p libregistry-ffi first")
        return 1
    with tempfile.TemporaryDirectory(prefix="test-docs-") as tmp:
        scratch = Path(tmp)
        etcd = Etcd(scratch)
        try:
            runner = Runner(scratch, etcd)
            by_lang = {}
            for b in blocks:
                if b.lang == "text":
                    runner.done[("text", "text")] += 1
                elif b.mode == "skip":
                    runner.skipped.append((b, b.reason))
                else:
                    by_lang.setdefault(b.lang, []).append(b)
            runner.rust(by_lang.get("rust", []))
            for n, b in enumerate(by_lang.get("c", []) + by_lang.get("cpp", [])):
                runner.c_like(b, n)
            for n, b in enumerate(by_lang.get("python", [])):
                runner.python_block(b, n)
            for n, b in enumerate(by_lang.get("sh", [])):
                runner.sh(b, n)
            for n, b in enumerate(by_lang.get("toml", [])):
                runner.toml(b, n)
            for n, b in enumerate(by_lang.get("yaml", [])):
                runner.yaml(b, n)
            runner.go(by_lang.get("go", []))
            runner.local_etcd()
            runner.cargo_doc()
        finally:
            etcd.stop()
    print(f"== doc blocks in {len(files)} files: {len(blocks)}")
    for lang in sorted({b.lang for b in blocks}):
        of = [b for b in blocks if b.lang == lang]
        parts = [f"{runner.done[(lang, w)]} {w}" for w in ("ran", "compile-only", "text") if runner.done[(lang, w)]]
        skipped = sum(1 for b, _ in runner.skipped if b.lang == lang)
        failed = sum(1 for b in runner.failures if b.lang == lang)
        parts += [f"{skipped} skipped"] if skipped else []
        parts += [f"{failed} FAILED"] if failed else []
        print(f"   {lang:7} {len(of):3}: {', '.join(parts)}")
    for b, reason in runner.skipped:
        print(f"   skipped {b.where} ({b.lang}): {reason}")
    elapsed = time.monotonic() - started
    if runner.failures:
        print(f"test-docs: FAILED in {elapsed:.0f} s: " + ", ".join(b.where for b in runner.failures))
        return 1
    print(f"test-docs: every block passed or is marked, in {elapsed:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
