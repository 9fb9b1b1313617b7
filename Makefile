# teleop — build, run, test.
#   make run    teleop demo: the relay and console on http://127.0.0.1:7420, a simulated
#               robot and its agent in one process; prints the console URL with a token
#   make test   installs what the tests need, then go vet + go test -race ./...
#   make cross  static release binaries for the Pi models and amd64 in dist/

GO       ?= go
BIN      ?= bin/teleop
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
DATE     ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS  := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.date=$(DATE)
TESTFLAGS ?= -race -timeout 20m

.PHONY: all build cross run test deps vet lint fuzz bench clean firmware

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/teleop

# cross builds the release binaries, static (CGO_ENABLED=0) and stamped like
# build: dist/teleop-linux-<arch> for the Raspberry Pi models (docs/operations.md
# says which is which) and amd64, and dist/SHA256SUMS.
CROSS := linux/arm64 linux/arm/7 linux/arm/6 linux/amd64
cross:
	@mkdir -p dist
	@set -e; for t in $(CROSS); do \
	  os=$${t%%/*}; rest=$${t#*/}; arch=$${rest%%/*}; arm=; name=$$os-$$arch; \
	  case $$rest in */*) arm=$${rest#*/}; name=$$name"v"$$arm;; esac; \
	  echo "dist/teleop-$$name"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm \
	    $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/teleop-$$name ./cmd/teleop; \
	done
	@cd dist && sha256sum teleop-linux-* > SHA256SUMS

run: build
	$(BIN) demo

# deps installs the Debian and npm packages that tests use. It is idempotent
# and quick when everything is already present; see scripts/test-deps.sh.
deps:
	@bash scripts/test-deps.sh

vet:
	$(GO) vet ./...

test: deps vet
	$(GO) test $(TESTFLAGS) ./...

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt:"; echo "$$out"; exit 1; fi
	@export PATH="$$PATH:$$($(GO) env GOPATH)/bin"; \
	  command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2; \
	  staticcheck ./...

# Short fuzz runs of every decoder; longer runs: make fuzz FUZZTIME=5m
FUZZTIME ?= 20s
fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin dist firmware/build

# The reference firmware for the Arduino Uno (gcc-avr, avr-libc) and, where
# libsimavr-dev is installed, its simavr harness: see firmware/README.md.
firmware:
	$(MAKE) -C firmware
