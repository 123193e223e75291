# moat — the two commands of the quick start are `make run` and `make test`.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-short bench fuzz vet fmt clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o moat ./cmd/moat

# Runs moat on its embedded default: data under ./data, a self-signed
# certificate, loopback ports, a demo domain and user (printed at start).
run: build
	./moat serve

# The whole test suite: unit, end-to-end (real SMTP/IMAP over loopback),
# the crash test, and the integration tests with real clients.
test:
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...

test-short:
	$(GO) test -short -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Runs every fuzz target for FUZZTIME each.
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf moat data
