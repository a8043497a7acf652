# The two commands a new machine needs: `make demo` and `make test`.
# Both install what they need first (scripts/setup.sh).
SHELL := /bin/bash

CARGO ?= cargo
ETCD35 = $(shell scripts/etcd-path.sh)
ETCD34 ?= /usr/bin/etcd

.PHONY: setup build demo test test-35 test-34 lint clean header sync-version abi dist dist-check install install-files bench bench-ffi bench-propagation bench-python fuzz soak-short soak

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace

## Registers the seed's example service, shows what etcd holds, heals across an etcd restart.
demo: setup
	$(CARGO) run -q -p libregistry-tests --bin demo

## Everything the project tests: lint, unit tests, integration tests (the fault matrix among
## them) on etcd 3.5, the release artifacts built and checked as users install them, the
## tests on etcd 3.4, a one-minute soak of random faults, and a short fuzzing run of the
## value decoder. (`make soak` runs the soak for SOAK_MINUTES.)
test: setup lint test-35 dist-check test-34 soak-short fuzz

lint:
	scripts/version.sh --check
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	python3 scripts/check-import-cycles.py

test-35:
	@echo "== tests against etcd $$($(ETCD35) --version | head -n1)"
	$(CARGO) build -p libregistry-ffi  # libregistry.so / .a for the C tests (cargo test builds only the rlib)
	ETCD_BIN=$(ETCD35) $(CARGO) test --workspace -- --nocapture
	ETCD_BIN=$(ETCD35) scripts/test-python.sh
	ETCD_BIN=$(ETCD35) scripts/test-interop.sh

test-34:
	@if [ -x $(ETCD34) ]; then \
	  echo "== integration tests against etcd $$($(ETCD34) --version | head -n1)"; \
	  ETCD_BIN=$(ETCD34) $(CARGO) test -p libregistry-tests -- --nocapture && \
	  ETCD_BIN=$(ETCD34) scripts/test-python.sh && \
	  ETCD_BIN=$(ETCD34) scripts/test-interop.sh; \
	else \
	  echo "== SKIPPED: etcd 3.4 pass ($(ETCD34) not found; run as root or install Debian's etcd-server)"; \
	fi

## One etcd version's pass, e.g. `make test-etcd-3.7.3` (or 3.6.16, 3.5.1, 3.4.23): the
## integration tests with the fault matrix, the C suite, Python and interop. Not part of
## `make test` yet: on 3.7.3 two healing tests fail until the core stops trusting the lease
## of keys-only reads (docs/etcd-versions-notes.md).
test-etcd-%: setup
	$(CARGO) build -p libregistry-ffi
	@bin="$$(scripts/etcd-path.sh $*)" && echo "== tests against etcd $$("$$bin" --version | head -n1)" && \
	  ETCD_BIN="$$bin" $(CARGO) test -p libregistry-tests -p libregistry-ffi -- --nocapture && \
	  ETCD_BIN="$$bin" scripts/test-python.sh && \
	  ETCD_BIN="$$bin" scripts/test-interop.sh

clean:
	$(CARGO) clean

## Every benchmark side by side with the floor and the peers: prints the table,
## writes BENCHMARKS.md and BENCHMARKS.png (release builds; about 15 minutes).
bench: setup
	scripts/bench.sh

## Register latency through the C ABI next to the Rust core's (release build).
bench-ffi: setup
	ETCD_BIN=$(ETCD35) $(CARGO) bench -q -p libregistry-ffi --bench register_latency

## From register returning to a watcher's callback, next to etcd's own put latency (release).
bench-propagation: setup
	ETCD_BIN=$(ETCD35) $(CARGO) bench -q -p libregistry-tests --bench propagation

## One minute of random faults against 1,000 registrations in 10 processes (SOAK_MINUTES for longer).
SOAK_MINUTES ?= 30
soak-short: setup
	ETCD_BIN=$(ETCD35) scripts/soak 1
soak: setup
	ETCD_BIN=$(ETCD35) scripts/soak $(SOAK_MINUTES)

## Fuzzes the value decoder for FUZZ_SECONDS (cargo-fuzz; needs the nightly toolchain).
FUZZ_SECONDS ?= 20
CARGO_FUZZ_VERSION = 0.13.2
fuzz:
	@if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then \
	  echo "== SKIPPED: fuzzing needs a nightly Rust toolchain (rustup toolchain install nightly)"; \
	else \
	  command -v cargo-fuzz >/dev/null || $(CARGO) install -q cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION); \
	  corpus=$$(mktemp -d); \
	  echo "== fuzzing the value decoder for $(FUZZ_SECONDS) s"; \
	  cd fuzz && $(CARGO) +nightly fuzz run decode_instance $$corpus corpus/decode_instance -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | grep -E 'Done|stat::number_of_executed_units|ERROR|panicked' ; \
	  status=$${PIPESTATUS[0]}; rm -rf $$corpus; exit $$status; \
	fi

## Register latency from Python next to the Rust core's, and two threads at once.
bench-python: setup
	ETCD_BIN=$(ETCD35) scripts/bench-python.sh

## Every release artifact into dist/: the Python wheel (abi3, manylinux_2_17) and sdist, the
## C/C++ SDK tarball, the .debs, the Rust crate and SHA256SUMS; prints each with its size and
## the wall time (scripts/dist.sh; installs its tools first: scripts/setup-dist.sh).
dist: setup
	scripts/dist.sh

## Checks dist/ the way users install it, outside the repository: the wheel in a fresh
## virtualenv without cargo, rustc or protoc and the Python tests against it, the sdist,
## C and C++ programs built against the tarball and the installed .debs run on etcd,
## lintian, dpkg -r, the crate's docs (scripts/dist-check.sh).
dist-check: dist
	ETCD_BIN=$(ETCD35) scripts/dist-check.sh

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

## Installs the C/C++ SDK under PREFIX: libregistry.so.VERSION with its libregistry.so.MAJOR
## (SONAME) and libregistry.so links, libregistry.a, the headers, registry.pc,
## registry-static.pc and the CMake package (relocatable). Built for this machine; the
## release tarball (make dist) is the same tree built for glibc 2.17.
PREFIX ?= /usr/local
PROFILE ?= release
PROFILE_DIR = $(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
MAJOR = $(shell scripts/version.sh --major)

install: setup
	$(CARGO) rustc --profile $(PROFILE) -p libregistry-ffi --lib -- -C link-arg=-Wl,-soname,libregistry.so.$(MAJOR)
	$(MAKE) install-files

LIB_DIR ?= target/$(PROFILE_DIR)

install-files:
	scripts/sdk-files.sh prefix $(LIB_DIR) $(PREFIX)
