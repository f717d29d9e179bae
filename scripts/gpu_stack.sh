#!/usr/bin/env bash
# The GPU machine's software stack, without its GPU (`make gpu-stack`; CI runs it on every
# submission beside the main leg): Python 3.12 and torch 2.11 with CUDA 13.0 in
# .venv-gpu-stack, the CUDA kernels built for sm_90 with nvcc in a copy of the tree
# (build/gpu-stack/tree, so that the main build is left alone), and the test suite there (but for
# its emulated half, which the main leg runs on the same kernel code). A change that would not
# build or pass on the GPU machine fails here, not in its minutes. The build is the one
# `make gpu-check` makes on the GPU machine, the kernel variants included, so that its rehearsal
# (GPU_CHECK_TREE=build/gpu-stack/tree) runs on this tree without compiling them again.
# --venv-only: make the venv and stop (the rehearsal of `make gpu-check` uses it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv-gpu-stack
TORCH_SPEC=${GPU_STACK_TORCH:-torch==2.11.0}
QUIETLY="python3 $ROOT/scripts/quietly.py"

python312() {
  # (a pyenv shim is on PATH whether or not that version is selected: ask it to run)
  python3.12 -c "import sys; print(sys.executable)" 2>/dev/null && return
  local root; root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  ls "$root"/versions/3.12*/bin/python3.12 2>/dev/null | tail -n 1
}

if [ ! -f "$VENV/.deps" ] || [ "$(cat "$VENV/.deps")" != "$TORCH_SPEC" ]; then
  PY312=$(python312)
  [ -n "$PY312" ] || { echo "gpu-stack: no Python 3.12 found (python3.12 on PATH, or pyenv's)"; exit 1; }
  rm -rf "$VENV"
  $QUIETLY "gpu-stack: venv ($PY312)" build/gpu-stack-venv.log -- "$PY312" -m venv "$VENV"
  $QUIETLY "gpu-stack: $TORCH_SPEC" build/gpu-stack-deps.log -- \
    "$VENV/bin/python" -m pip install "$TORCH_SPEC" -r requirements-dev.txt
  echo "$TORCH_SPEC" > "$VENV/.deps"
fi
[ "${1:-}" = --venv-only ] && exit 0
"$VENV/bin/python" -c "import sys, torch; print('gpu-stack: Python', sys.version.split()[0], 'torch', torch.__version__, 'CUDA', torch.version.cuda)"

TREE=$ROOT/build/gpu-stack/tree
rm -rf "$TREE" && mkdir -p "$TREE"
git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$TREE"
cd "$TREE"
mkdir -p build
TORCH_CUDA_ARCH_LIST=9.0 FORCE_CUDA=1 MAX_JOBS=${MAX_JOBS:-2} SYMFOCAL_DEBUG_INFO=1 SYMFOCAL_CUDA_VARIANTS=1 \
  SYMFOCAL_CPU_ISAS=native $QUIETLY "gpu-stack: build" build/build.log -- "$VENV/bin/python" setup.py build_ext --inplace
cp build/build.log build/ptxas.log  # the resource report tests/test_cuda_build.py reads
git -C "$ROOT" rev-parse HEAD > build/source-commit 2>/dev/null || true
PYTHONPATH=$TREE "$VENV/bin/python" -m pytest -q -p no:cacheprovider -m "not emulated and not slow" tests
