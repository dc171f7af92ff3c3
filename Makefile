# safeshrink — the two commands a new machine needs are `make demo` and `make test`.
# Each target runs scripts/setup first when a dependency is missing (the stamp records success).
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release
SETUP_STAMP := $(BUILD)/.setup-done
SS := $(BUILD)/safeshrink
DEMO_DIR ?= out/demo

.PHONY: all setup build test test-all bench demo fuzz sanitize clean

all: build

$(SETUP_STAMP): scripts/setup
	bash scripts/setup
	mkdir -p $(BUILD) && touch $@

setup: $(SETUP_STAMP)

$(BUILD)/CMakeCache.txt: $(SETUP_STAMP) CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

# Unit, reference and CLI tests; long runs carry the `slow` label and are left out.
test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS) -LE slow

test-all: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

bench: build
	$(BUILD)/bench/bench_kernels
	$(BUILD)/bench/bench_inspect $(SS)
	$(BUILD)/bench/bench_decode
	$(BUILD)/bench/bench_manifest
	$(BUILD)/bench/bench_train
	$(BUILD)/bench/bench_compress
	$(BUILD)/bench/bench_vision
	$(BUILD)/bench/bench_safety_aware

demo: build
	bash scripts/demo $(SS) $(DEMO_DIR)

# Parser tests (GGUF, safetensors, tokenizers, chat templates, pickle/zip scanners, CSV prompt
# sets, gzip/DEFLATE and IDX) under ASan + UBSan.
SANITIZE_TESTS := test_gguf test_gguf_fixtures test_safetensors test_safetensors_fixtures test_tokenizer \
                  test_chat_template test_kernels_ref test_scan test_prompts test_gzip_idx
sanitize: $(SETUP_STAMP)
	cmake -S . -B $(BUILD)-asan -DCMAKE_BUILD_TYPE=Debug -DSAFESHRINK_SANITIZE=address,undefined \
	  -DSAFESHRINK_BUILD_BENCH=OFF
	cmake --build $(BUILD)-asan -j$(JOBS) --target $(SANITIZE_TESTS)
	set -e; for t in $(SANITIZE_TESTS); do echo "== $$t (ASan+UBSan)"; $(BUILD)-asan/tests/$$t --gtest_brief=1; done

# libFuzzer targets (clang), FUZZ_SECONDS each.
FUZZ_SECONDS ?= 60
fuzz: $(SETUP_STAMP)
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAFESHRINK_FUZZ=ON \
	  -DSAFESHRINK_BUILD_TESTS=OFF -DSAFESHRINK_BUILD_BENCH=OFF
	cmake --build $(BUILD)-fuzz -j$(JOBS) --target fuzz_targets
	bash scripts/fuzz $(BUILD)-fuzz $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(BUILD)-asan $(BUILD)-fuzz out
