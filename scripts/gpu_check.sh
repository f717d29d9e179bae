#!/usr/bin/env bash
# One prepared run on a machine with a GPU (`make gpu-check`): build for sm_90
# with all cores, the CUDA tests, compute-sanitizer (memcheck, racecheck) on a
# small case of each kernel, and the benchmark at GPU sizes. Logs and results
# go under $OUT (default: ./gpu-check-out). Meant to end within ~8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
status=0
step() { echo; echo "=== $1 ($(date +%T))"; }

step "machine"
{ nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())"; \
  nvcc --version | tail -2; } 2>&1 | tee "$OUT/machine.txt"

step "build (sm_90)"
TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0} MAX_JOBS=${MAX_JOBS:-$(nproc)} FORCE_CUDA=1 SYMFOCAL_DEBUG_INFO=1 \
  timeout 300 $PY setup.py build_ext --inplace > "$OUT/build.log" 2>&1 || { echo "build failed"; tail -40 "$OUT/build.log"; exit 1; }
grep -E "spill|stack frame" "$OUT/build.log" | sort | uniq -c
mkdir -p build && cp "$OUT/build.log" build/ptxas.log   # the report tests/test_cuda_build.py reads

step "CUDA tests"
# -m "not emulated": the CPU emulation of the same tests is CI's job, not this machine's minutes.
timeout 240 $PY -m pytest -q -x -m "not emulated" tests/test_cuda.py tests/test_cuda_build.py 2>&1 | tee "$OUT/test_cuda.log" | tail -15 || status=1

step "compute-sanitizer"
cat > "$OUT/sanitize_case.py" <<'PY'
import torch, symfocal
# L = 70: cell-by-cell accesses; L = 64 in bfloat16: the wide ones.
for L, dtype in ((70, torch.float32), (64, torch.bfloat16)):
    x = torch.randn(2, L, L, device="cuda", dtype=dtype, requires_grad=True)
    y = torch.rand(2, L, L, device="cuda") < 0.1
    for mode in ("average", "pair", "upper", "none"):
        for red in ("mean", "none"):
            loss = symfocal.sym_focal_loss(x, y, mode=mode, reduction=red, symmetry_weight=0.2,
                                           lengths=torch.tensor([L, 33], device="cuda"),
                                           mask=torch.rand(L, L, device="cuda") < 0.9)
            loss.sum().backward()
torch.cuda.synchronize(); print("sanitizer case ok")
PY
for tool in memcheck racecheck; do
  timeout 120 compute-sanitizer --tool $tool --error-exitcode 9 $PY "$OUT/sanitize_case.py" > "$OUT/sanitizer_$tool.log" 2>&1
  rc=$?; echo "$tool: exit $rc"; tail -3 "$OUT/sanitizer_$tool.log"; [ $rc -eq 0 ] || status=1
done

step "benchmark"
timeout 200 $PY benchmarks/bench.py --device cuda --out "$OUT" --no-plot 2>&1 | tee "$OUT/bench.log" | tail -40 || status=1
echo; echo "gpu-check finished with status $status; files in $OUT"
exit $status
