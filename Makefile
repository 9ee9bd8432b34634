# Thin wrapper so a fresh clone needs exactly one command: each target installs
# missing dependencies (Debian 12 packages) and builds before doing its job.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build test nightly demo fuzz bench clean format check-format tidy

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	@./scripts/run-tests.sh $(BUILD)

# The kernel-differential tests with four times the random cases CI runs
# (fresh seeds each run): a nightly or pre-release soak, about 25 minutes.
nightly: build
	@NF2BPF_DIFFTEST_SCALE=4 ctest --test-dir $(BUILD) --output-on-failure -R '^kernel-diff'

demo: build
	@./scripts/demo.sh $(BUILD)

fuzz: deps
	@./scripts/fuzz.sh

# Benchmarks (bench/run.sh): own build directory, results in bench/results/
# and docs/benchmarks.md. BENCH_QUICK=1 for a short subset.
BENCH_BUILD ?= build-bench
bench: deps
	@./bench/run.sh $(BENCH_BUILD)

# Style: `make format` rewrites the C/C++ sources with the root .clang-format,
# `make check-format` lists what differs (the `format` test runs the same).
format:
	@./scripts/format.sh

check-format:
	@./scripts/format.sh --check

# Static analysis: clang-tidy with the root .clang-tidy over the product's
# userspace sources (not tests/ or bench/), using $(BUILD)/compile_commands.json.
# Prints every warning and then the count per check; the full log stays in
# $(BUILD)/clang-tidy.log. Not (yet) required to be warning-free.
TIDY_FILES ?= /(cli|common|cutover|loader|ops|translator|verify)/[^/]+(/[^/]+)*\.cpp$$
tidy: build
	@run-clang-tidy -p $(BUILD) -quiet -j $(JOBS) '$(TIDY_FILES)' >$(BUILD)/clang-tidy.log 2>&1 || true
	@# run-clang-tidy always asks for colour: strip it before reading the warnings.
	@sed 's/\x1b\[[0-9;]*m//g' $(BUILD)/clang-tidy.log | grep -E '^/.*: (warning|error): ' | sort -u >$(BUILD)/clang-tidy.warnings || true
	@cat $(BUILD)/clang-tidy.warnings
	@echo "tidy: $$(wc -l <$(BUILD)/clang-tidy.warnings) warnings; per check:"
	@grep -oE '\[[a-z0-9.,-]+\]$$' $(BUILD)/clang-tidy.warnings | sort | uniq -c | sort -rn

clean:
	rm -rf $(BUILD)
