# The two commands a new machine needs: `make demo` and `make test`.
# Both install what they need first (scripts/setup.sh).

CARGO ?= cargo
ETCD35 = $(shell scripts/etcd-path.sh)
ETCD34 ?= /usr/bin/etcd

.PHONY: setup build demo test test-35 test-34 lint clean

setup:
	@scripts/setup.sh

build: setup
	$(CARGO) build --workspace

## Registers the seed's example service, shows what etcd holds, heals across an etcd restart.
demo: setup
	$(CARGO) run -q -p libregistry-tests --bin demo

## Everything the project tests: lint, unit tests, integration tests on etcd 3.5, then on 3.4.
test: setup lint test-35 test-34

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-35:
	@echo "== tests against etcd $$($(ETCD35) --version | head -n1)"
	ETCD_BIN=$(ETCD35) $(CARGO) test --workspace -- --nocapture

test-34:
	@if [ -x $(ETCD34) ]; then \
	  echo "== integration tests against etcd $$($(ETCD34) --version | head -n1)"; \
	  ETCD_BIN=$(ETCD34) $(CARGO) test -p libregistry-tests -- --nocapture; \
	else \
	  echo "== SKIPPED: etcd 3.4 pass ($(ETCD34) not found; run as root or install Debian's etcd-server)"; \
	fi

clean:
	$(CARGO) clean
