# ptpsec entry points. `make demo` and `make test` each install what is
# missing, configure, build and run; both are safe to run again.

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
BENCH_BUILD ?= build-bench

.PHONY: all deps hugepages build build-asan demo test test-normal test-asan bench lint format clean

all: build

deps:
	@scripts/install-deps.sh

hugepages:
	@scripts/hugepages.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) --buildtype=debugoptimized

$(ASAN_BUILD)/build.ninja:
	CXX=clang++ meson setup $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dbench=false -Dfuzz=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD) -j $(JOBS)

build-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD) -j $(JOBS)

# The main job (scripts/demo.sh): the offline tools on the linuxptp capture,
# then the data plane, the key server and node, and attestation, all live.
demo: build hugepages
	@scripts/demo.sh $(BUILD)

# Unit and end-to-end suites in the normal build, then everything again under
# ASan + UBSan (clang), with the fuzz targets for a fixed number of runs.
test: build build-asan
	@scripts/run-tests.sh $(BUILD) $(ASAN_BUILD)

# Release build of ptpsec-bench; regenerates docs/benchmarks.md below its
# hand-written introduction.
bench: hugepages
	@scripts/install-deps.sh
	@[ -f $(BENCH_BUILD)/build.ninja ] || meson setup $(BENCH_BUILD) -Dtests=false --buildtype=release
	ninja -C $(BENCH_BUILD)
	@scripts/unpack-chrony.sh $(BENCH_BUILD)/chrony
	$(BENCH_BUILD)/bench/ptpsec-bench --benchmark_min_time=0.05 --benchmark_repetitions=5 \
	  --benchmark_enable_random_interleaving=true --benchmark_display_aggregates_only=true \
	  --benchmark_out=$(BENCH_BUILD)/bench.json --benchmark_out_format=json
	python3 bench/testpmd_bench.py --build $(BENCH_BUILD) --json $(BENCH_BUILD)/testpmd.json
	python3 bench/sa_update_bench.py --build $(BENCH_BUILD) --json $(BENCH_BUILD)/sa_update.json
	python3 bench/ke_bench.py --build $(BENCH_BUILD) --json $(BENCH_BUILD)/ke.json
	$(BENCH_BUILD)/bench/ptpsec-attest-bench --duration 3 --json > $(BENCH_BUILD)/attest.json
	$(BENCH_BUILD)/bench/ptpsec-attest-bench --duration 3 --rate 200000 --json > $(BENCH_BUILD)/attest-200k.json
	$(BENCH_BUILD)/bench/ptpsec-verifier-bench --events 3000000 --slice 500000 --mode none --mode sqlite \
	  --mode postgresql --json > $(BENCH_BUILD)/verifier.json
	python3 scripts/bench-report.py --intro docs/benchmarks.md --testpmd $(BENCH_BUILD)/testpmd.json \
	  --ke $(BENCH_BUILD)/ke.json $(BENCH_BUILD)/bench.json > $(BENCH_BUILD)/benchmarks.md
	mv $(BENCH_BUILD)/benchmarks.md docs/benchmarks.md
	@echo "bench: report written to docs/benchmarks.md"

lint: build
	@scripts/install-deps.sh --lint
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.h')
	clang-tidy -p $(BUILD) --quiet $$(git ls-files 'dataplane/*.cpp' 'drivers/*.cpp' 'control/*.cpp' 'hsm/*.cpp')

format:
	@scripts/install-deps.sh --lint
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(BENCH_BUILD)
