# The front door. meson is the build; this file only strings the steps
# together so that a new machine needs two commands: `make demo`, `make test`.
BUILD      ?= build
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 10

.PHONY: all deps build demo test unit fuzz integration format format-check bench clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	$(BUILD)/cmd/ordo demo

test: build
	@BUILD=$(BUILD) FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) scripts/test.sh

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true -Dtests=true

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) fuzzers
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

format:
	git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@scripts/format-check.sh

bench: deps
	@[ -f build-release/build.ninja ] || meson setup build-release --buildtype=release -Dtests=false
	ninja -C build-release
	build-release/bench/hotpath_bench
	build-release/bench/ledger_apply_bench

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) build-release
