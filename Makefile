# The two commands a new machine needs: `make demo` and `make test`.
# Both install what they need first (scripts/setup.sh), saying so before.
SHELL := /bin/bash

CARGO ?= cargo
# etcd versions: the primary one gets every test, the oldest supported every
# test but the soak, those between a shorter pass (scripts/etcd-path.sh finds them).
ETCD_PRIMARY = 3.7.3
ETCD_OLDEST = 3.4.23
ETCD_BETWEEN = 3.6.16 3.5.1
ETCD = $(shell scripts/etcd-path.sh $(ETCD_PRIMARY) 2>/dev/null || scripts/etcd-path.sh)
WHEEL = $(firstword $(wildcard dist/libregistry-*-manylinux_2_17_x86_64*.whl))

.PHONY: free-dist-builds setup build demo demo-steps test test-steps check lint clean header sync-version abi dist dist-check install install-files bench bench-ffi bench-propagation bench-python bench-scale fuzz soak-short soak tree-clean etcd etcd-stop test-docs

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace

## A local etcd for the README's quick start: runs in the background, outlives the command,
## prints the REGISTRY_ENDPOINTS line; data and log in .demo/etcd/.
etcd: setup
	@scripts/local-etcd.sh start
etcd-stop:
	@scripts/local-etcd.sh stop

## Every code block of the docs compiled or run (scripts/test-docs.py), and cargo doc with
## warnings as errors (about a minute when built).
test-docs: setup
	@echo "== docs: every code block of the *.md files compiled or run, on etcd $(ETCD_PRIMARY)"
	ETCD_BIN=$(ETCD) scripts/test-docs.py

## Registers the seed's example service, shows what etcd holds, heals across an etcd restart.
demo:
	@scripts/heartbeat.py $(MAKE) --no-print-directory demo-steps
demo-steps: setup
	@echo "== demo: building (about 5 min on 2 cores the first time), then running"
	ETCD_BIN=$(ETCD) $(CARGO) run -p libregistry-tests --bin demo

## Everything the project tests (about 50 min on 2 cores from a clean clone): lint; the
## release files built (make dist) and checked as users install them (make dist-check);
## every test on etcd 3.7.3 (Rust, C, C++, Python against the built wheel, Go interop, the
## fault matrix), every docs code block, a one-minute soak of random faults; every test but the soak on etcd 3.4.23;
## lifecycle, healing, discovery and the fault matrix on 3.6.16 and 3.5.1; a short fuzzing
## run of the value decoder; the tree left as it was.
## (scripts/heartbeat.py says when a step has printed nothing for 30 s.)
test:
	@scripts/heartbeat.py $(MAKE) --no-print-directory test-steps
test-steps: setup lint dist dist-check free-dist-builds test-full-$(ETCD_PRIMARY) test-docs soak-short test-full-$(ETCD_OLDEST) $(addprefix test-short-,$(ETCD_BETWEEN)) fuzz tree-clean

## After dist-check: LOW_DISK=1 (set by .ci/run) removes the release builds behind dist/
## (about 3 GB; the next `make dist` compiles them again), so the test builds that follow fit.
free-dist-builds:
	@if [ "$${LOW_DISK:-0}" = 1 ]; then echo "== LOW_DISK=1: removing the release builds behind dist/"; \
	  rm -rf target/x86_64-unknown-linux-gnu target/package target/dist-stage; fi

## Day-to-day: lint and every Rust and C test on etcd 3.7.3 (about 8 min when built).
check: setup lint
	@echo "== check: every Rust and C test on etcd $(ETCD_PRIMARY) (about 5 min when built)"
	$(CARGO) build -p libregistry-ffi
	ETCD_BIN=$(ETCD) $(CARGO) test --workspace

lint:
	@echo "== lint: versions, rustfmt, clippy (about 3 min the first time), import loops, file sizes"
	scripts/version.sh --check
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/check-import-cycles.py
	scripts/check-sizes.sh

## One etcd version's whole pass, e.g. `make test-full-3.7.3`: the Rust tests with the fault
## matrix, the C suite, Python (against the wheel `make dist` built, else built from ./py),
## and Go interop. A version that is not installed is skipped, saying so.
test-full-%: setup
	@bin="$$(scripts/etcd-path.sh $* 2>/dev/null)" || { echo "== SKIPPED: etcd $* is not installed (scripts/setup.sh installs it: as root, with Go)"; exit 0; }; \
	  set -e; echo "== etcd $*: every test (about 7 min on 2 cores, plus 4 min for the first build)"; \
	  $(CARGO) build -p libregistry-ffi; \
	  ETCD_BIN="$$bin" $(CARGO) test --workspace -- --nocapture; \
	  ETCD_BIN="$$bin" LIBREGISTRY_WHEEL="$(WHEEL)" scripts/test-python.sh; \
	  ETCD_BIN="$$bin" scripts/test-interop.sh

## One etcd version's shorter pass, e.g. `make test-short-3.6.16`: lifecycle, healing,
## discovery and the fault matrix.
test-short-%: setup
	@bin="$$(scripts/etcd-path.sh $* 2>/dev/null)" || { echo "== SKIPPED: etcd $* is not installed (scripts/setup.sh installs it)"; exit 0; }; \
	  set -e; echo "== etcd $*: lifecycle, healing, discovery and the fault matrix (about 3 min)"; \
	  ETCD_BIN="$$bin" $(CARGO) test -p libregistry-tests --test lifecycle --test healing --test discovery --test fault_matrix -- --nocapture

## make test ends here: a test must leave the tree as it found it.
tree-clean:
	@changed="$$(git status --porcelain 2>/dev/null)"; \
	  if [ -n "$$changed" ]; then echo "== make test changed the tree:"; echo "$$changed"; exit 1; fi; \
	  echo "== the tree is as it was (git status is clean)"

clean:
	$(CARGO) clean

## Every benchmark side by side with the floor and the peers: prints the table,
## writes BENCHMARKS.md and BENCHMARKS.png (release builds; about 15 minutes).
bench: setup
	scripts/bench.sh

## Register latency through the C ABI next to the Rust core's (release build).
bench-ffi: setup
	ETCD_BIN=$(ETCD) $(CARGO) bench -q -p libregistry-ffi --bench register_latency

## From register returning to a watcher's callback, next to etcd's own put latency (release).
bench-propagation: setup
	ETCD_BIN=$(ETCD) $(CARGO) bench -q -p libregistry-tests --bench propagation

## One minute of random faults against 1,000 registrations in 10 processes on etcd 3.7.3
## (`make soak` for SOAK_MINUTES; SOAK_ETCD picks another version).
SOAK_MINUTES ?= 30
SOAK_ETCD_BIN = $(if $(SOAK_ETCD),$(shell scripts/etcd-path.sh $(SOAK_ETCD)),$(ETCD))
soak-short: setup
	@echo "== soak: one minute of random faults"
	ETCD_BIN=$(SOAK_ETCD_BIN) scripts/soak 1
soak: setup
	ETCD_BIN=$(SOAK_ETCD_BIN) scripts/soak $(SOAK_MINUTES)

## Fuzzes the value decoder for FUZZ_SECONDS (cargo-fuzz, installed into target/tools, not
## globally; needs the nightly toolchain; SKIP_FUZZ=1 skips).
FUZZ_SECONDS ?= 20
CARGO_FUZZ_VERSION = 0.13.2
CARGO_FUZZ = $(CURDIR)/target/tools/bin/cargo-fuzz
fuzz:
	@if [ "$(SKIP_FUZZ)" = 1 ]; then echo "== SKIPPED: fuzzing (SKIP_FUZZ=1)"; exit 0; fi; \
	if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then \
	  echo "== SKIPPED: fuzzing needs a nightly Rust toolchain (rustup toolchain install nightly)"; \
	else \
	  if [ ! -x $(CARGO_FUZZ) ]; then \
	    echo "== fuzz: installing cargo-fuzz $(CARGO_FUZZ_VERSION) into target/tools (about 3 min)"; \
	    $(CARGO) install -q cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION) --root target/tools; \
	  fi; \
	  corpus=$$(mktemp -d); \
	  echo "== fuzz: building the target with the nightly sanitizer build (about 6 min the first time), then fuzzing the value decoder for $(FUZZ_SECONDS) s"; \
	  cd fuzz && PATH="$(CURDIR)/target/tools/bin:$$PATH" $(CARGO) +nightly fuzz run decode_instance $$corpus corpus/decode_instance -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E 'Compiling|Finished|Done|stat::number_of_executed_units|ERROR|panicked' ; \
	  status=$${PIPESTATUS[0]}; rm -rf $$corpus; exit $$status; \
	fi

## 1,000 provider processes holding 100,000 instances and 100 watchers on a 3-member etcd
## 3.7.3: etcd's load against one lease per instance, and recovery from a killed leader, a
## wiped cluster and 10 % of the processes SIGKILLed; the tables go into BENCHMARKS.md
## (about 10 min; BENCH_SCALE_PROCESSES and BENCH_SCALE_PER_PROCESS change the size).
bench-scale: setup
	$(CARGO) build --release -q -p libregistry-bench --bin bench
	ETCD_BIN=$(ETCD) target/release/bench scale

## Register latency from Python next to the Rust core's, and two threads at once.
bench-python: setup
	ETCD_BIN=$(ETCD) scripts/bench-python.sh

## Every release artifact into dist/: the Python wheel (abi3, manylinux_2_17) and sdist, the
## C/C++ SDK tarball, the .debs, the Rust crate and SHA256SUMS; prints each with its size and
## the wall time (scripts/dist.sh; installs its tools first: scripts/setup-dist.sh).
dist: setup
	@echo "== dist: the release files into dist/ (about 5 min on 2 cores from a clean clone)"
	scripts/dist.sh

## Checks dist/ the way users install it, outside the repository: the wheel in a fresh
## virtualenv without cargo, rustc or protoc and the Python tests against it, the sdist,
## C and C++ programs built against the tarball and the installed .debs run on etcd,
## lintian, dpkg -r, the crate's docs (scripts/dist-check.sh).
dist-check: dist
	@echo "== dist-check: every release file installed as a user does, outside the repository (about 3 min)"
	ETCD_BIN=$(ETCD) scripts/dist-check.sh

## Regenerates include/registry.h with the pinned cbindgen (commit the result).
header:
	REGISTRY_UPDATE_HEADER=1 $(CARGO) test -q -p libregistry-ffi --test header

## After changing the version in Cargo.toml: py/Cargo.toml, the lock files and
## registry.h's version macros follow it (commit the result).
sync-version:
	scripts/version.sh --sync

## Adds what is new in registry.h to the ABI list ffi-c/tests/abi.txt (commit the result);
## refuses to drop or change an entry within a major version.
abi:
	REGISTRY_UPDATE_ABI=1 $(CARGO) test -q -p libregistry-ffi --test abi

## Installs the C/C++ SDK and the `registry` command under PREFIX: libregistry.so.VERSION
## with its libregistry.so.MAJOR (SONAME) and libregistry.so links, libregistry.a, the
## headers, registry.pc, registry-static.pc and the CMake package (relocatable), bin/registry.
## Built for this machine; the release tarball (make dist) is the same tree built for glibc 2.17.
PREFIX ?= /usr/local
PROFILE ?= release
PROFILE_DIR = $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
MAJOR = $(shell scripts/version.sh --major)

install: setup
	$(CARGO) rustc --profile $(PROFILE) -p libregistry-ffi --lib -- -C link-arg=-Wl,-soname,libregistry.so.$(MAJOR)
	$(CARGO) build --profile $(PROFILE) -p libregistry-cli
	$(MAKE) install-files

LIB_DIR ?= target/$(PROFILE_DIR)

install-files:
	scripts/sdk-files.sh prefix $(LIB_DIR) $(PREFIX)
