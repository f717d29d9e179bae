# The few commands a person runs. Each sets itself up: a virtual environment
# in .venv with torch, then the extension built in place.
#   make bench      the benchmark (fused vs eager vs torch.compile), results in benchmarks/results/
#   make test       the test suite
#   make example    the contact-map training example, results in examples/results/
#   make gpu-check  on a machine with a GPU: build for sm_90, CUDA tests, sanitizer, benchmark

SHELL := /bin/bash
PYTHON_BOOT ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# For builds here: sm_80 machine code (runs on all 8.x), sm_90, and PTX for newer GPUs.
# Wheels use setup.py's default instead: every arch from 8.0 the toolkit supports.
DEV_CUDA_ARCHS ?= 8.0;9.0+PTX
ifneq ($(wildcard /usr/local/cuda/bin/nvcc),)
export CUDA_HOME ?= /usr/local/cuda
endif
SOURCES := setup.py $(shell find csrc -type f)

.PHONY: setup build test bench example gpu-check clean

setup: $(VENV)/.deps
$(VENV)/.deps: requirements-dev.txt
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC) -r requirements-dev.txt
	touch $@

build: $(VENV)/.built
$(VENV)/.built: $(VENV)/.deps $(SOURCES)
	@mkdir -p build
	@# nvcc's resource report (registers, stack, spills) is checked by tests/test_cuda_build.py.
	set -o pipefail; TORCH_CUDA_ARCH_LIST="$${TORCH_CUDA_ARCH_LIST:-$(DEV_CUDA_ARCHS)}" MAX_JOBS=$${MAX_JOBS:-2} \
		$(PY) setup.py build_ext --inplace 2>&1 | tee build/build.log
	@# Kept apart: an incremental build that compiles no .cu file prints no report.
	@if grep -q "ptxas info" build/build.log; then cp build/build.log build/ptxas.log; fi
	@# Put the source tree on the venv's path (what `pip install -e .` does, without a second build).
	$(PY) -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'symfocal-dev.pth').write_text('$(CURDIR)\n')"
	touch $@

test: build
	$(PY) -m pytest -q tests

bench: build
	$(PY) benchmarks/bench.py

example: build
	$(PY) examples/train_contact_map.py

clean:
	rm -rf build dist *.egg-info symfocal/_C*.so $(VENV)/.built

# On the GPU machine: that image's own python3 and torch (no venv, no network).
gpu-check:
	bash scripts/gpu_check.sh
