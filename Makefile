# berth: `make test` runs the whole suite on a fresh machine, installing
# what the tests need first. `make run` starts a single-node dev server.

GO ?= go

.PHONY: test deps vet unit run build bench

test: deps vet
	$(GO) test -race -count=1 -timeout 30m ./...

deps:
	./scripts/test-deps.sh

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

run:
	$(GO) run ./cmd/berth server --dev

build:
	$(GO) build -o bin/berth ./cmd/berth

bench:
	$(GO) run ./bench/controlplane
