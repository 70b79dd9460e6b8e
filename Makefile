# kdcc: `make demo` sets everything up and compiles the example teacher; `make test` runs the tests.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= build/demo

.PHONY: setup demo test bench clean

# System packages: cmake and a C++ compiler (firmware example), qemu-user (runs the aarch64
# library here). The aarch64 cross linker comes from pip (ziglang), so none is needed from apt.
$(VENV)/.system:
	@if ! command -v qemu-aarch64 >/dev/null || ! command -v cmake >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user cmake g++ >/dev/null; \
	  else echo "kdcc: please install qemu-user, cmake and g++ (Debian: sudo apt-get install qemu-user cmake g++)"; fi; fi
	@mkdir -p $(VENV) && touch $@

$(STAMP): pyproject.toml | $(VENV)/.system
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/kdcc eval examples/spread_teacher.pt --episodes 100
	@mkdir -p $(DEMO_OUT)
	$(BIN)/kdcc collect examples/spread_teacher.pt -o $(DEMO_OUT)/spread.npz --episodes 200

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

bench: $(STAMP)
	$(BIN)/python bench/run.py

clean:
	rm -rf build $(VENV)
