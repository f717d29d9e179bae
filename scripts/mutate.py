"""make mutate: does the test suite catch real bugs?

Each tests/mutations/*.patch plants one plausible bug (a header says which, and
which tests should catch it). For each, in a copy of the working tree built for
the CPU only: apply the patch, rebuild if it touched compiled code, run those
tests, and call the mutation killed if they fail. A mutation that survives, no
longer applies or does not compile fails the run: the suite or the list needs
mending. Output: one line a mutation, then a summary (and build/mutate/report.md).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from worktree import copy_working_tree

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "build" / "mutate"
TREE = WORK / "tree"
# A patch touching these needs a rebuild of symfocal._C. The CPU-only build has no CUDA code: the
# emulator (tests/cuda_emulation.py) rebuilds itself when a csrc/*/cuda file changes.
COMPILED = ("csrc/", "setup.py")
NOT_IN_THE_CPU_BUILD = ("csrc/engine/cuda/", "csrc/sigmoid/cuda/", "csrc/softmax/cuda/")


@dataclass
class Mutation:
    path: Path
    what: str
    tests: list[str]
    files: list[str]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def compiled(self) -> bool:
        return any(f.startswith(COMPILED) and not f.startswith(NOT_IN_THE_CPU_BUILD) for f in self.files)


def read_mutation(path: Path) -> Mutation:
    text = path.read_text()
    header = dict(re.findall(r"^(Mutation|Tests): *(.+)$", text.split("\n--- ", 1)[0], flags=re.M))
    if "Mutation" not in header or "Tests" not in header:
        sys.exit(f"{path}: the header needs a 'Mutation:' line and a 'Tests:' line")
    files = re.findall(r"^\+\+\+ b/(\S+)", text, flags=re.M)
    return Mutation(path, header["Mutation"].strip(), header["Tests"].split(), files)


def run(cmd, *, log: Path, timeout: float, env=None) -> tuple[int, float]:
    start = time.monotonic()
    with log.open("w") as out:
        try:
            rc = subprocess.run(cmd, cwd=TREE, stdout=out, stderr=subprocess.STDOUT, env=env,
                                timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.monotonic() - start


def build(log: Path) -> bool:
    env = dict(os.environ, SYMFOCAL_CPU_ONLY="1", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    rc, _ = run([sys.executable, "setup.py", "build_ext", "--inplace"], log=log, timeout=1800, env=env)
    return rc == 0


def pytest(tests: list[str], log: Path, *, first_failure: bool) -> tuple[int, float]:
    # The copy's own package first on the path (the venv may point at the source tree).
    env = dict(os.environ, PYTHONPATH=str(TREE))
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    return run(cmd + (["-x"] if first_failure else []), log=log, timeout=1800, env=env)


def git_apply(patch: Path, *, reverse=False, check=False) -> bool:
    cmd = ["git", "apply", *(["-R"] if reverse else []), *(["--check"] if check else []), str(patch)]
    # The copy lies inside the repository: keep git from finding it, so that paths are the copy's.
    env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(WORK))
    return subprocess.run(cmd, cwd=TREE, capture_output=True, env=env).returncode == 0


def libraries() -> list[Path]:
    package = TREE / "symfocal"
    return sorted(package.glob("_C*.so")) + [package / "_build_info.json"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run only these mutations (file stems or substrings)")
    args = parser.parse_args()
    mutations = [read_mutation(p) for p in sorted((ROOT / "tests" / "mutations").glob("*.patch"))]
    if args.names:
        mutations = [m for m in mutations if any(n in m.name for n in args.names)]
    if not mutations:
        sys.exit("no mutations selected")
    started = time.monotonic()
    WORK.mkdir(parents=True, exist_ok=True)
    copy_working_tree(TREE)
    print(f"mutate: {len(mutations)} mutations; the copy builds for the CPU only in {TREE.relative_to(ROOT)}",
          flush=True)
    t0 = time.monotonic()
    if not build(WORK / "build-baseline.log"):
        print(f"the unmutated copy does not build: see {WORK / 'build-baseline.log'}")
        return 2
    baseline = WORK / "baseline-lib"
    shutil.rmtree(baseline, ignore_errors=True)
    baseline.mkdir()
    for lib in libraries():
        shutil.copy2(lib, baseline / lib.name)
    print(f"  built in {time.monotonic() - t0:.0f} s", flush=True)

    # Every selected test must pass before a failure can mean anything.
    selected = sorted({t for m in mutations for t in m.tests})
    rc, took = pytest(selected, WORK / "tests-baseline.log", first_failure=False)
    if rc != 0:
        print(f"the selected tests fail without any mutation ({took:.0f} s): see {WORK / 'tests-baseline.log'}")
        return 2
    print(f"  the selected tests pass unmutated ({took:.0f} s)", flush=True)

    results = []
    for i, m in enumerate(mutations, 1):
        log = WORK / f"{m.name}.log"
        t0 = time.monotonic()
        if not git_apply(m.path, check=True):
            verdict = "STALE (no longer applies)"
        else:
            git_apply(m.path)
            try:
                if m.compiled and not build(log.with_suffix(".build.log")):
                    verdict = "DOES NOT COMPILE"
                else:
                    rc, _ = pytest(m.tests, log, first_failure=True)
                    verdict = {0: "SURVIVED", 124: "killed (timeout)"}.get(rc, "killed")
            finally:
                git_apply(m.path, reverse=True)
                if m.compiled:
                    for lib in baseline.iterdir():
                        shutil.copy2(lib, TREE / "symfocal" / lib.name)
        took = time.monotonic() - t0
        results.append((m, verdict, took))
        print(f"  [{i:2d}/{len(mutations)}] {verdict:<26} {took:5.0f} s  {m.name}: {m.what}", flush=True)

    killed = sum(v.startswith("killed") for _, v, _ in results)
    minutes = (time.monotonic() - started) / 60
    summary = f"{killed} of {len(results)} mutations killed in {minutes:.1f} min"
    report = ["| mutation | what it breaks | tests | result |", "|---|---|---|---|"]
    report += [f"| {m.name} | {m.what} | {' '.join(m.tests)} | {v} |" for m, v, _ in results]
    (WORK / "report.md").write_text("\n".join(report + ["", summary, ""]))
    print(summary)
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
