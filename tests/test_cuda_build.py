"""The CUDA kernels' compiler resource report: no register spills, no stack frame.

Reads the report that a build with the CUDA kernels keeps in build/ptxas.log (nvcc runs
with -Xptxas=-v; `FORCE_CUDA=1 make test` makes one without a GPU, as CI does); where that
log lacks a kernel it compiles them for sm_90 itself. Needs nvcc and a build with the CUDA
kernels, not a GPU: a CPU-only build (the default without a visible GPU) skips it.
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from symfocal import _build, _ops

ROOT = Path(__file__).resolve().parent.parent
LOG = ROOT / "build" / "ptxas.log"
NVCC = shutil.which("nvcc", path="/usr/local/cuda/bin") or shutil.which("nvcc")
MAIN_KERNELS = ("tile_pair_kernel", "finalize_kernel", "finalize_chunks_kernel", "sample_sums_kernel",
                "softmax_pairs_kernel", "softmax_sample_sums_kernel", "softmax_reduce_kernel")
# The design variants of a SYMFOCAL_CUDA_VARIANTS build (csrc/sigmoid/cuda/variants.h) are measured,
# spills and all (three-blocks caps the registers on purpose), not held to this.
VARIANT_SHAPES = ("SerialLoadsShape", "ThreeBlocksShape", "HalfThreadsShape")

needs_nvcc = pytest.mark.skipif(not _ops.has_cuda_kernels(),
                                reason="this build has no CUDA kernels (FORCE_CUDA=1 make test builds and checks them)")


def resource_report(*, fresh=False):
    if not fresh and LOG.exists() and "ptxas info" in LOG.read_text(errors="replace"):
        return LOG.read_text(errors="replace")
    if NVCC is None:
        pytest.skip("no build log with a resource report and no nvcc")
    report = ""
    for source in sorted((ROOT / "csrc").glob("*/cuda/*.cu")):
        out = subprocess.run([NVCC, "-std=c++17", "-O3", "-arch=sm_90", "-cubin", "-o", "/dev/null", "-Xptxas=-v",
                              "-I", str(ROOT / "csrc"), str(source)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr[-3000:]
        report += out.stderr
    return report


def entries(report):
    """(kernel name, arch, stack bytes, spill store bytes, spill load bytes) per compiled entry."""
    found = []
    pattern = re.compile(r"Compiling entry function '(\S+)' for '(sm_\d+)'(?:(?!Compiling entry).)*?"
                         r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", re.S)
    for m in pattern.finditer(report):
        found.append((m[1], m[2], int(m[3]), int(m[4]), int(m[5])))
    return found


@needs_nvcc
def test_no_spills_or_stack_in_main_kernels():
    def main_entries(report):
        return [e for e in entries(report) if any(k in e[0] for k in MAIN_KERNELS)
                and not any(v in e[0] for v in VARIANT_SHAPES)]

    main = main_entries(resource_report())
    if not all(any(k in e[0] for e in main) for k in MAIN_KERNELS):
        # An incremental build's log reports only the files it compiled: compile them all.
        main = main_entries(resource_report(fresh=True))
    for kernel in MAIN_KERNELS:
        assert any(kernel in e[0] for e in main), f"no resource report for {kernel}"
    bad = [e for e in main if e[2] or e[3] or e[4]]
    assert not bad, "kernels with a stack frame or spills:\n" + "\n".join(map(str, bad))


@needs_nvcc
def test_the_report_covers_every_architecture_built():
    """Each machine-code architecture the build was made for (its _build_info.json) was compiled
    and reported: `make build` asks for sm_80 and sm_90, `make gpu-check` and `make gpu-stack` sm_90."""
    if not (LOG.exists() and "ptxas info" in LOG.read_text(errors="replace")):
        pytest.skip("no build log: the extension was not built by `make build`")
    built = (_build.read_info() or {}).get("cuda_archs")
    if not built:
        pytest.skip("the loaded build has no CUDA kernels")
    sass, _ = _build.parse_archs(built)
    expected = {f"sm_{major}{minor}{suffix}" for major, minor, suffix in sass}
    archs = {e[1] for e in entries(LOG.read_text(errors="replace"))}
    assert expected and expected <= archs, (expected, archs)
