# kdcc: `make demo` sets everything up and compiles the example teacher; `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= build/demo

.PHONY: setup demo test fuzz bench clean

# System packages: cmake and g++ (firmware example), g++-aarch64-linux-gnu (cross-builds the
# firmware and gives qemu its aarch64 system libraries), qemu-user (runs the aarch64 build here).
# The policy libraries themselves are linked with the pip package ziglang.
SYSTEM_PACKAGES := cmake g++ g++-aarch64-linux-gnu qemu-user
$(VENV)/.system:
	@if ! command -v qemu-aarch64 >/dev/null || ! command -v cmake >/dev/null || ! command -v aarch64-linux-gnu-g++ >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
	  else echo "kdcc: please install $(SYSTEM_PACKAGES) (Debian: sudo apt-get install $(SYSTEM_PACKAGES))"; exit 1; fi; fi
	@mkdir -p $(VENV) && touch $@

$(STAMP): pyproject.toml | $(VENV)/.system
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,ray,worlds]'
	touch $@

# The TVM runtime an Orin bundle ships (aarch64, from PyPI's apache-tvm wheel of the installed
# version) is fetched here, once, into kdcc's cache ($KDCC_CACHE_DIR or ~/.cache/kdcc): compiles
# and tests never go to the network. A no-op when it is already cached.
setup: $(STAMP)
	$(BIN)/python -m kdcc.targets.bundle.runtime_libs fetch --arch aarch64

demo: setup
	$(BIN)/kdcc profile examples/spread_teacher.pt --target orin
	$(BIN)/kdcc compile examples/spread_teacher.pt --target orin -o $(DEMO_OUT)/orin --force
	$(BIN)/kdcc eval $(DEMO_OUT)/orin --episodes 100 --teacher examples/spread_teacher.pt
	$(BIN)/kdcc compile examples/spread_teacher.pt --target host -o $(DEMO_OUT)/host --force
	$(BIN)/kdcc eval $(DEMO_OUT)/host --episodes 100 --teacher examples/spread_teacher.pt
	$(BIN)/kdcc compile examples/speaker_listener_teacher.pt --target host -o $(DEMO_OUT)/speaker_listener --force
	$(BIN)/kdcc eval $(DEMO_OUT)/speaker_listener --episodes 100 --teacher examples/speaker_listener_teacher.pt

test: setup
	$(BIN)/python -m pytest -q -ra

# The readers' fuzz tests at length (CI runs 20 derandomised inputs per reader): new random inputs each run.
FUZZ_EXAMPLES ?= 2000
fuzz: setup
	KDCC_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KDCC_FUZZ_RANDOM=1 $(BIN)/python -m pytest -q tests/fuzz

bench: setup
	$(BIN)/python bench/run.py
	$(BIN)/python bench/per_agent.py
	$(BIN)/python bench/step_floor.py
	$(BIN)/python bench/scaling.py

clean:
	rm -rf build $(VENV)
