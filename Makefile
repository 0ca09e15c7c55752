# Kiln's entry points. `make test` is what CI runs.
.PHONY: test build release serve

## test: install what the tests need, then run the whole test suite (CI runs exactly this)
test:
	scripts/test

## build: debug build of the kiln tool
build:
	swift build

## release: optimized build (.build/release/kiln)
release:
	swift build -c release

## serve: serve the embedded default model on 127.0.0.1:8080
serve:
	scripts/serve
