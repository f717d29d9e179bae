"""make sanitize: the CPU kernels and the CUDA emulator under AddressSanitizer and UndefinedBehaviorSanitizer.

In a copy of the working tree (build/sanitize/tree), symfocal._C is built for the CPU only with
SYMFOCAL_SANITIZE=1 (setup.py: -fsanitize=address,undefined, every UB check fatal), and the emulator
of the CUDA kernels the same way (tests/cuda_emulation.py); then, with libasan preloaded into Python
(which is not built with it):
  1. the CPU suite (pytest -m "not emulated and not slow": the soak's long run is make soak's), minus the tests that compile or install things rather
     than run the kernels (DESELECT below);
  2. the kernel tests once more with ATen's portable CPU capability, so that the portable kernels run too
     (the first run takes this processor's widest instruction set);
  3. the emulated CUDA kernels' tests that reach every kernel path (EMULATED_SELECTION; --whole: all
     of EMULATED_FILES), one process a core: the emulator checks each global access against the tensors' bounds, ASan the rest.
A report (what ran, how long, the sanitizers' findings) goes to build/sanitize/report.md, each
sanitizer's own reports to build/sanitize/reports/; the first finding stops its step and fails the run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from worktree import copy_working_tree

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "sanitize"
TREE = WORK / "tree"

# Tests that build, package or install (a compiler or pip under a preloaded ASan, not our kernels), the
# CUDA build report (no CUDA in this build), the memory-growth test (ASan holds freed memory in
# quarantine: resident memory grows by design there).
DESELECT = ["tests/test_install_errors.py", "tests/test_build_config.py", "tests/test_cuda_build.py",
            "tests/test_training.py::test_no_memory_growth_over_1000_iterations",
            # Tests whose time under the sanitizers goes to torch rather than to our kernels (inductor's
            # compiles, two DDP processes, the study's training loops): the kernels' own paths they
            # reach are reached by the kernel tests; make test runs them unsanitized.
            "tests/test_compile.py", "tests/test_ddp.py", "tests/test_study.py"]
# Every kernel file the portable capability selects, and the option paths within them.
PORTABLE_SUBSET = ["tests/test_sigmoid.py", "tests/test_softmax.py", "tests/test_weight_and_ignore.py",
                   "tests/test_validate_false.py", "tests/test_nonfinite.py"]
# The emulated CUDA kernels' tests (3 s each under ASan: the five files take 20 minutes, --whole). By
# default the ones that reach every kernel path once: every unchecked value (validate=False), the softmax
# kernel's tests, the binary kernel's every option, layout, variant, empty batch and broadcast, the weight
# and ignore_index paths of both, and the cells that are not read.
EMULATED_FILES = ["tests/test_sigmoid_cuda.py", "tests/test_softmax_cuda.py", "tests/test_validate_false.py",
                  "tests/test_nonfinite.py", "tests/test_weight_and_ignore.py"]
EMULATED_SELECTION = ("test_validate_false or test_softmax_cuda or (test_sigmoid_cuda and (all_options_together or "
                      "non_contiguous or every_variant or even_lengths or empty_batch or broadcast)) or "
                      "(test_weight_and_ignore and against_the_reference) or "
                      "(test_nonfinite and not_read and (float32 or dtype0))")


def runtime(name: str) -> str:
    cxx = os.environ.get("CXX", "c++")
    path = subprocess.run([cxx, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    if not path or not Path(path).exists():
        sys.exit(f"sanitize: {cxx} has no {name} (install the compiler's sanitizer runtimes, e.g. libasan8)")
    return str(Path(path).resolve())


def preload() -> str:
    """libasan first (Python is not built with it), then libstdc++: libraries that link it statically
    (triton, which torch.compile imports) otherwise meet an ASan whose __cxa_throw interceptor found no
    real __cxa_throw, and the process stops."""
    return f"{runtime('libasan.so')} {runtime('libstdc++.so')}"


def run(step: str, cmd: list[str], env: dict, log: Path, timeout: float) -> tuple[int, float]:
    print(f"sanitize: {step} (log: {log.relative_to(ROOT)})", flush=True)
    start = time.monotonic()
    with log.open("w") as out:
        try:
            rc = subprocess.run(cmd, cwd=TREE, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    took = time.monotonic() - start
    tail = log.read_text(errors="replace").splitlines()[-3:]
    print(f"  rc {rc} in {took:.0f} s: {tail[-1] if tail else ''}", flush=True)
    return rc, took


def findings(reports: Path) -> list[str]:
    """The first lines of the sanitizers' reports written so far (ASan's errors and failed checks, UBSan's
    runtime errors), each with its file's name."""
    found = []
    for report in sorted(reports.iterdir()):
        lines = report.read_text(errors="replace").splitlines()
        # (The emulator's fibers draw ASan's one warning about swapcontext: a warning, not a finding.)
        first = next((line for line in lines if "ERROR: AddressSanitizer" in line or "runtime error:" in line
                      or "CHECK failed" in line), None)
        if first is not None:
            found.append(f"{report.name}: {first.strip()}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the kernel test files only, no portable rerun")
    parser.add_argument("--whole", action="store_true", help="every emulated test of the five files, not the "
                        "selection (20 minutes more)")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    copy_working_tree(TREE)
    build_env = dict(os.environ, SYMFOCAL_CPU_ONLY="1", SYMFOCAL_SANITIZE="1",
                     SYMFOCAL_CPU_ISAS=os.environ.get("SYMFOCAL_CPU_ISAS", "native"),
                     MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    rc, _ = run("build (ASan + UBSan, CPU only)", [sys.executable, "setup.py", "build_ext", "--inplace"], build_env,
                WORK / "build.log", 3600)
    if rc != 0:
        print((WORK / "build.log").read_text(errors="replace")[-4000:])
        return 1
    reports = WORK / "reports"
    shutil.rmtree(reports, ignore_errors=True)
    reports.mkdir()
    # Reports go to files (pytest captures the test's stderr, and a stopped process never prints it):
    # reports/asan.<pid>, reports/ubsan.<pid>. Python's own allocations are not ours to report (no leak
    # check); CUDA's runtime needs the shadow gap open.
    env = dict(os.environ, PYTHONPATH=str(TREE), SYMFOCAL_SANITIZE="1", LD_PRELOAD=preload(),
               ASAN_OPTIONS=f"detect_leaks=0:protect_shadow_gap=0:halt_on_error=1:allocator_may_return_null=1:"
                            f"log_path={reports / 'asan'}",
               UBSAN_OPTIONS=f"halt_on_error=1:print_stacktrace=1:log_path={reports / 'ubsan'}")
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra", "--durations=15"]
    steps = []
    if args.quick:
        steps.append(("CPU kernel tests", pytest + ["-m", "not emulated", *PORTABLE_SUBSET], env))
    else:
        steps.append(("the CPU suite", pytest + ["-m", "not emulated and not slow", "tests",
                                                 *[f"--deselect={d}" for d in DESELECT]],
                      env))
        # (torch.compile's own C++ code does not build with ATen's capability forced down: not our kernels.)
        steps.append(("the CPU kernel tests, portable kernels",
                      pytest + ["-m", "not emulated", "-k", "not compile", *PORTABLE_SUBSET],
                      dict(env, ATEN_CPU_CAPABILITY="default")))
    selection = [] if args.whole else ["-k", EMULATED_SELECTION]
    # One process a core (scripts/pytest_shards.py): the emulator runs on one thread.
    shards = [sys.executable, str(ROOT / "scripts" / "pytest_shards.py"), "--logs", str(WORK / "shards"), "--"]
    steps.append(("the emulated CUDA kernels", shards + pytest[3:] + ["-m", "emulated", *selection, *EMULATED_FILES],
                  env))
    report, failed = [], False
    for i, (name, cmd, step_env) in enumerate(steps, 1):
        log = WORK / f"step{i}.log"
        before = set(reports.iterdir())
        rc, took = run(name, cmd, step_env, log, 3600)
        found = [f for f in findings(reports) if reports / f.split(":")[0] not in before]
        summary = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        report.append(f"{name}: rc {rc}, {took:.0f} s, {len(found)} sanitizer reports; {summary[0]}")
        report += [f"    {line}" for line in found[:20]]
        failed |= rc != 0 or bool(found)
    (WORK / "report.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    print(f"sanitize: {'FAILED' if failed else 'passed'} (report: {(WORK / 'report.md').relative_to(ROOT)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
