# moat — the two commands of the quick start are `make run` and `make test`.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test test-short bench fuzz vet fmt clean install

all: build

# BIN is where build puts the binary (tests build into a folder of their own).
BIN ?= moat
build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/moat

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

# Installs the binary, the systemd unit (its paths rewritten for PREFIX)
# and the example configuration, which never overwrites an existing
# /etc/moat/moat.toml. DESTDIR stages the tree for a package. The
# configuration is world-readable: the unit's DynamicUser must read it, so
# it holds no secrets.
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
UNITDIR    ?= $(PREFIX)/lib/systemd/system
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/moat
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/moat
	sed -e 's|/usr/local/bin/moat|$(PREFIX)/bin/moat|g' -e 's|/etc/moat/|$(SYSCONFDIR)/moat/|g' \
	  ops/systemd/moat.service > $(DESTDIR)$(UNITDIR)/moat.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/moat.service
	install -m 0644 docs/moat.example.toml $(DESTDIR)$(SYSCONFDIR)/moat/moat.example.toml
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/moat/moat.toml ]; then \
	  echo "kept the existing $(DESTDIR)$(SYSCONFDIR)/moat/moat.toml"; \
	else \
	  install -m 0644 docs/moat.example.toml $(DESTDIR)$(SYSCONFDIR)/moat/moat.toml; \
	  echo "installed $(DESTDIR)$(SYSCONFDIR)/moat/moat.toml: edit it, then systemctl enable --now moat"; \
	fi

clean:
	rm -rf moat data
