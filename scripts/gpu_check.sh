#!/usr/bin/env bash
# One prepared run on a machine with a GPU (`make gpu-check`), within about 8 minutes
# (GPU_CHECK_SECONDS, default 480 there), the most valuable evidence first so that running out of
# time loses the least:
#   1. the machine; 2. the build for sm_90 with the kernel variants, all cores;
#   3. the CUDA tests on the GPU (both loss families); 4. compute-sanitizer memcheck;
#   5. the variant sweep (benchmarks/variants.py: the open design questions, timed side by side);
#   6. one map above 2^31 cells against a chunked float64 reference (scripts/gpu_large_case.py);
#   7. compute-sanitizer initcheck (every cell of the outputs written), synccheck, racecheck;
#   8. the benchmarks at GPU sizes (the binary loss, then the distogram loss against OpenFold's).
# Each step gets at most what is left of the time. Logs and results go under $OUT
# (default: ./gpu-check-out); a summary of every step ends the log.
#
# Without a GPU it rehearses the same run on the GPU machine's stack (Python 3.12, torch 2.11,
# .venv-gpu-stack, made by `make gpu-stack` where missing) in a copy of the tree: the build with
# every variant, the tests, the sweep's and the large case's code on the CPU, the sanitizer's
# presence; only what needs the GPU is left out, and the summary says what would have run.
# GPU_CHECK_TREE=build/gpu-stack/tree (what CI passes) rehearses on the tree `make gpu-stack` built,
# with the same variants build, instead of compiling it again.
set -uo pipefail
cd "$(dirname "$0")/.."
SOURCE=$PWD
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export PATH=$CUDA_HOME/bin:$PATH
SUMMARY=()

if command -v nvidia-smi > /dev/null && nvidia-smi -L > /dev/null 2>&1; then
  GPU=1
  BUDGET=${GPU_CHECK_SECONDS:-480}
  BUILD_LIMIT=300
  PY=${PYTHON:-python3}
  TREE=$SOURCE
else
  GPU=0
  BUDGET=${GPU_CHECK_SECONDS:-2400}  # two CPU cores build what the GPU machine's sixteen do
  BUILD_LIMIT=1800
  [ -x .venv-gpu-stack/bin/python ] || bash scripts/gpu_stack.sh --venv-only || exit 1
  PY=$SOURCE/.venv-gpu-stack/bin/python
  if [ -n "${GPU_CHECK_TREE:-}" ]; then
    TREE=$(cd "$GPU_CHECK_TREE" && pwd)
    # That tree's build serves only if it is this commit's and has the variants.
    [ "$(cat "$TREE/build/source-commit" 2>/dev/null)" = "$(git rev-parse HEAD)" ] && grep -q '"cuda_variants": true' \
      "$TREE/symfocal/_build_info.json" 2>/dev/null || { echo "GPU_CHECK_TREE=$GPU_CHECK_TREE: no variants build of this commit there (make gpu-stack)"; exit 1; }
    PREBUILT=1
  else
    TREE=$SOURCE/build/gpu-check/tree
    rm -rf "$TREE" && mkdir -p "$TREE"
    git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$TREE"
  fi
  echo "no GPU here: rehearsing on the GPU machine's stack ($PY) in $TREE"
fi
cd "$TREE"
export PYTHONPATH=$TREE

left() { echo $((BUDGET - SECONDS)); }
step() { echo; echo "=== $1 ($(date +%T), ${SECONDS}s of ${BUDGET}s)"; }
# run NAME LIMIT LOG CMD...: CMD under the smaller of LIMIT and the time left, its output in
# $OUT/LOG (the tail shown); its result in the summary.
run() {
  local name=$1 limit=$2 log=$OUT/$3; shift 3
  local budget; budget=$(left)
  [ "$budget" -lt "$limit" ] && limit=$budget
  if [ "$limit" -lt 10 ]; then SUMMARY+=("$name: not run (out of time)"); return 1; fi
  timeout "$limit" "$@" > "$log" 2>&1; local rc=$?
  tail -n "${TAIL:-12}" "$log"
  if [ $rc -eq 0 ]; then SUMMARY+=("$name: ok"); elif [ $rc -eq 124 ]; then SUMMARY+=("$name: TIMED OUT after ${limit}s");
  else SUMMARY+=("$name: FAILED (exit $rc)"); fi
  return $rc
}
would() { SUMMARY+=("$1: needs the GPU; would run: $2"); echo "would run: $2"; }

step "machine"
{ [ $GPU -eq 1 ] && nvidia-smi; $PY -c "import sys, torch; print('Python', sys.version.split()[0], 'torch', torch.__version__, 'CUDA', torch.version.cuda, 'GPU', torch.cuda.get_device_name() if torch.cuda.is_available() else None)"; \
  nvcc --version | tail -2; } 2>&1 | tee "$OUT/machine.txt"

step "build (sm_90, with the kernel variants)"
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} FORCE_CUDA=1 SYMFOCAL_DEBUG_INFO=1 \
  SYMFOCAL_CUDA_VARIANTS=1 SYMFOCAL_CPU_ISAS=native
if [ "${PREBUILT:-0}" = 1 ]; then
  cp build/build.log "$OUT/build.log"; SUMMARY+=("build: ok (make gpu-stack's, in $TREE)"); echo "built by make gpu-stack"
elif ! TAIL=3 run build $BUILD_LIMIT build.log $PY setup.py build_ext --inplace; then
  tail -40 "$OUT/build.log"; printf '%s\n' "${SUMMARY[@]}"; exit 1
fi
grep -E "spill|stack frame" "$OUT/build.log" | sort | uniq -c
mkdir -p build && cp "$OUT/build.log" build/ptxas.log   # the report tests/test_cuda_build.py reads

step "CUDA tests"
# -m "not emulated": the CPU emulation of the same tests is CI's job, not this machine's minutes.
run "CUDA tests" 180 test_cuda.log $PY -m pytest -q -x -m "not emulated" -p no:cacheprovider tests/test_sigmoid_cuda.py \
  tests/test_softmax_cuda.py tests/test_cuda_build.py

cat > "$OUT/sanitize_case.py" <<'PY'
import torch, symfocal
# L = 70: cell-by-cell accesses; 66: 2-cell ones; 64 in bfloat16: 4-cell ones;
# [40, 200, 200]: 1120 tile pairs, more than one finalize block adds (the two-level sum).
cases = ((2, 70, torch.float32), (2, 66, torch.float32), (2, 64, torch.bfloat16), (40, 200, torch.float32))
for B, L, dtype in cases:
    x = torch.randn(B, L, L, device="cuda", dtype=dtype, requires_grad=True)
    y = torch.rand(B, L, L, device="cuda") < 0.1
    lengths = torch.tensor([L, 33] * (B // 2), device="cuda")
    for mode in ("average", "pair", "upper", "none"):
        for red in ("mean", "none"):
            loss = symfocal.sym_focal_loss(x, y, mode=mode, reduction=red, symmetry_weight=0.2, lengths=lengths,
                                           mask=torch.rand(L, L, device="cuda") < 0.9)
            loss.sum().backward()
        if B > 2:
            break
# The distogram kernels: 2 and 4 bins a lane, a [..., C, L, L] view, soft targets, padding and a mask.
for B, L, C, dtype in ((2, 70, 37, torch.float32), (1, 66, 100, torch.bfloat16)):
    x = torch.randn(B, L, L, C, device="cuda", dtype=dtype, requires_grad=True)
    bins = torch.randint(0, C, (B, L, L), device="cuda")
    soft = torch.softmax(torch.randn(B, L, L, C, device="cuda"), -1)
    lengths = torch.tensor([L, 33][:B], device="cuda")
    for mode in ("sum", "pair", "none"):
        for red, target in (("mean", bins), ("none", soft)):
            loss = symfocal.sym_softmax_focal_loss(x, target, mode=mode, reduction=red, gamma=2.0, lengths=lengths,
                                                   mask=torch.rand(L, L, device="cuda") < 0.9, normalize="sample")
            loss.sum().backward()
    y = torch.randn(B, C, L, L, device="cuda", requires_grad=True)
    symfocal.sym_softmax_focal_loss(y, bins, class_dim=-3, mode="average").backward()
torch.cuda.synchronize(); print("sanitizer case ok")
PY
sanitize() {  # $1: tool
  TAIL=3 run "compute-sanitizer $1" 90 "sanitizer_$1.log" compute-sanitizer --tool "$1" --error-exitcode 9 $PY \
    "$OUT/sanitize_case.py"
}

step "compute-sanitizer memcheck"
if [ $GPU -eq 1 ]; then sanitize memcheck; else
  compute-sanitizer --version | tail -1
  would "compute-sanitizer memcheck" "compute-sanitizer --tool memcheck $PY $OUT/sanitize_case.py"; fi

step "kernel variants, timed side by side"
if [ $GPU -eq 1 ]; then
  TAIL=40 run "variant sweep" 150 variants.log $PY benchmarks/variants.py --out "$OUT" --ptxas-log "$OUT/build.log"
else
  run "variant sweep (dry run)" 60 variants.log $PY benchmarks/variants.py --dry-run --ptxas-log "$OUT/build.log"
  would "variant sweep" "$PY benchmarks/variants.py --out $OUT"
fi

step "one map above 2^31 cells"
if [ $GPU -eq 1 ]; then
  run "large case" 120 large_case.log $PY scripts/gpu_large_case.py
else
  run "large case (L = 300, CPU)" 60 large_case.log $PY scripts/gpu_large_case.py --L 300 --band 64 --device cpu
  would "large case" "$PY scripts/gpu_large_case.py"
fi

step "compute-sanitizer initcheck, synccheck, racecheck"
for tool in initcheck synccheck racecheck; do
  if [ $GPU -eq 1 ]; then sanitize $tool; else would "compute-sanitizer $tool" "compute-sanitizer --tool $tool ..."; fi
done

step "benchmark"
if [ $GPU -eq 1 ]; then
  TAIL=40 run benchmark 240 bench.log $PY benchmarks/bench.py --device cuda --out "$OUT" --no-plot
  TAIL=30 run "distogram benchmark" 150 distogram.log $PY benchmarks/distogram.py --device cuda --repeats 20 \
    --out "$OUT"
else
  run "benchmark (CPU, quick)" 120 bench.log $PY benchmarks/bench.py --quick --device cpu --providers fused,eager \
    --out "$OUT" --no-plot
  run "distogram benchmark (CPU, quick)" 120 distogram.log $PY benchmarks/distogram.py --quick --device cpu \
    --providers fused,eager --out "$OUT"
  would benchmark "$PY benchmarks/bench.py --device cuda --out $OUT"
  would "distogram benchmark" "$PY benchmarks/distogram.py --device cuda --out $OUT"
fi

echo; echo "=== summary (${SECONDS}s; files in $OUT)"
printf '%s\n' "${SUMMARY[@]}" | tee "$OUT/summary.txt"
! grep -q -E "FAILED|TIMED OUT" "$OUT/summary.txt"
