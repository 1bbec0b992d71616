# Tether: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin
# chromium: the staff console's browser tests (sync/relay/console) drive it headless with chromedp.
# systemd gives systemd-analyze (the unit checks) and systemd-sysusers (the package install test).
# libasound2-dev: hardware/audio plays through oto, which links ALSA with cgo on Linux.
# cups and printer-driver-cups-pdf: the printing tests (hardware/printer) start a private cupsd;
# poppler-utils (pdftotext) reads the printed PDF back.
DEBS := gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev libasound2-dev xvfb chromium systemd cups printer-driver-cups-pdf poppler-utils
FUZZTIME ?= 10s
LOAD_TERMINALS ?= 50
LOAD_DURATION ?= 10s
LOAD_FLAGS ?= -per-facility 10 -baseline fsync,update,batch -baseline-time 2s
# bench-scale (issue 16, docs/SCALE.md "Figures"): 2 relayd gateways holding their facilities on
# a 3-node NATS cluster. SCALE_CLUSTER is the cluster: one it starts on this machine, or a
# running one whose nodes have CPUs of their own ("-store nats://host:port,... -nats-creds FILE"),
# which is what the throughput goal needs (docs/SCALE.md "What this machine lets the throughput
# goal show").
SCALE_TERMINALS ?= 1000
SCALE_DURATION ?= 45s
SCALE_MIX ?= status=1
SCALE_IDLE_TERMINALS ?= 10000
SCALE_CLUSTER ?= -nats-server $(BIN)/nats-server
SCALE_FLAGS ?= -per-facility 20 -homes -spawn-args "-max-pending-per-addr 32 -hold-facilities"
# 250 kiosks a facility: enrollment on JetStream slows with the number of facilities (docs/SCALE.md).
SCALE_IDLE_FLAGS ?= -per-facility 250 -homes -spawn-args "-max-pending-per-addr 32 -hold-facilities"

.PHONY: deps build run test bench bench-scale soak fuzz lint load package package-test

# deps installs the Debian packages Fyne, ALSA and the browser tests need when any is missing, then the Go modules.
deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	$(GO) mod download

# build puts every command in bin/: kioskd, kioskctl, relayd, and tetherdemo (the demo kiosk).
build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

# run starts bin/tetherdemo: the kiosk with a built-in relay and simulated devices.
run: deps build
	./scripts/run-demo.sh

test:
	$(GO) vet ./...
	@command -v Xvfb >/dev/null || echo "note: the kioskd smoke test (real window under Xvfb) will be skipped: Xvfb is not installed ('make deps' installs it)"
	@command -v chromium >/dev/null || echo "note: the console's browser tests will be skipped: chromium is not installed ('make deps' installs it)"
	@command -v cupsd >/dev/null || [ -x /usr/sbin/cupsd ] || echo "note: the printing tests will be skipped: CUPS is not installed ('make deps' installs it)"
	$(GO) test -race -timeout 20m ./...

bench: bench-scale
	./scripts/bench.sh

# bench-scale runs tetherload against 2 relayd gateways on SCALE_CLUSTER: SCALE_TERMINALS kiosks
# with one-item batches of SCALE_MIX, compared with a durable R3 publish loop of as many writers
# in the same run; then the same load on one relayd on its own file beside the cluster, which
# serves the baseline alone (the bound the machine sets: -relay-file); then SCALE_IDLE_TERMINALS
# idle kiosks for memory per terminal. nats-server is built from the module's own dependency:
# no program of the module links the server (kiosk/layering_test.go).
bench-scale:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/relayd ./cmd/tetherload
	$(GO) build -o $(BIN)/nats-server github.com/nats-io/nats-server/v2
	$(BIN)/tetherload -spawn $(BIN)/relayd $(SCALE_CLUSTER) -gateways 2 -terminals $(SCALE_TERMINALS) -mix $(SCALE_MIX) \
		-batch-items 1 -duration $(SCALE_DURATION) -drain 5m -baseline jetstream -baseline-time 10s $(SCALE_FLAGS)
	$(BIN)/tetherload -spawn $(BIN)/relayd $(SCALE_CLUSTER) -relay-file -terminals $(SCALE_TERMINALS) -mix $(SCALE_MIX) \
		-per-facility 20 -batch-items 1 -duration $(SCALE_DURATION) -drain 5m -baseline jetstream -baseline-time 10s \
		-spawn-args "-max-pending-per-addr 32"
	$(BIN)/tetherload -spawn $(BIN)/relayd $(SCALE_CLUSTER) -gateways 2 -terminals $(SCALE_IDLE_TERMINALS) \
		-idle 60s -timeout 30m $(SCALE_IDLE_FLAGS)

# soak runs the lifecycle model test over many seeds (SEEDS, STEPS, FIRST); too long for make test.
soak:
	./scripts/soak.sh

fuzz:
	./scripts/fuzz.sh $(FUZZTIME)

# load starts a relayd on a temporary directory and puts it under a small load (see README).
load:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/relayd ./cmd/tetherload
	$(BIN)/tetherload -spawn $(BIN)/relayd -terminals $(LOAD_TERMINALS) -duration $(LOAD_DURATION) $(LOAD_FLAGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# package builds dist/tether-kiosk_*.deb and dist/tether-relay_*.deb (nfpm, version from git).
package:
	$(GO) run ./scripts/package -out dist

# package-test builds the packages, reads them back and installs them into a throw-away root
# (dpkg --root); too slow for make test.
package-test:
	TETHER_PACKAGE_TEST=1 $(GO) test -count=1 -timeout 30m -v -run TestPackages ./scripts/package/
