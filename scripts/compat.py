"""make compat: does symfocal build and pass its tests under each torch and Python a user may have?

For each (torch, Python) pair, in a fresh venv of that Python under build/compat/: install
that torch (its PyPI build) and the test dependencies, build a copy of the tree in place
(the CUDA kernels for sm_90 where nvcc's CUDA major is torch's, else the CPU kernels only,
as setup.py decides), and run the test suite but for the emulated CUDA tests. Results:
benchmarks/results/compat.json (kept across runs and committed, one entry per pair) and a markdown table
(benchmarks/results/compat.md) that the README quotes.

    python scripts/compat.py                      # the whole matrix (hours on 2 cores)
    python scripts/compat.py 2.14.1:3.11 2.6.0:3.10
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from worktree import ROOT, copy_working_tree

TORCHES = ["2.6.0", "2.11.0", "2.13.0", "2.14.1"]
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
WORK = ROOT / "build" / "compat"
# Committed beside the table, so that a run of a few pairs keeps the rows of earlier runs.
RESULTS = ROOT / "benchmarks" / "results" / "compat.json"
TABLE = ROOT / "benchmarks" / "results" / "compat.md"


def find_python(version: str) -> str | None:
    """python3.X on PATH (if it runs: a pyenv shim is there either way), else pyenv's."""
    name = f"python{version}"
    found = shutil.which(name)
    if found and subprocess.run([found, "-c", ""], capture_output=True).returncode == 0:
        return found
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(root.glob(f"versions/{version}.*/bin/{name}"))
    return str(candidates[-1]) if candidates else None


def run(cmd, log: Path, *, cwd=ROOT, env=None, timeout=3600) -> tuple[int, float]:
    start = time.monotonic()
    with log.open("w") as out:
        try:
            rc = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=timeout).returncode
        except subprocess.TimeoutExpired:
            rc = 124
    return rc, time.monotonic() - start


def one_pair(torch_version: str, python_version: str) -> dict:
    row = {"torch": torch_version, "python": python_version, "date": dt.date.today().isoformat()}
    python = find_python(python_version)
    if python is None:
        return dict(row, build="no such Python here", tests="")
    name = f"torch{torch_version}-py{python_version}"
    venv, tree, logs = WORK / "venv", WORK / "tree", WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(venv, ignore_errors=True)
    vpy = str(venv / "bin" / "python")
    rc, took = run([python, "-m", "venv", str(venv)], logs / f"{name}-venv.log")
    if rc == 0:
        # The test dependencies as the project declares them (requirements-dev.txt), beside this torch.
        rc, took = run([vpy, "-m", "pip", "install", f"torch=={torch_version}", "-r",
                        str(ROOT / "requirements-dev.txt"), "setuptools>=64", "wheel"], logs / f"{name}-install.log")
    if rc != 0:
        return dict(row, build=f"torch {torch_version} did not install (logs/{name}-install.log)", tests="")
    row["torch"] = subprocess.run([vpy, "-c", "import torch; print(torch.__version__)"], capture_output=True,
                                  text=True).stdout.strip() or torch_version
    copy_working_tree(tree)
    env = dict(os.environ, TORCH_CUDA_ARCH_LIST="9.0", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    rc, took = run([vpy, "setup.py", "build_ext", "--inplace"], logs / f"{name}-build.log", cwd=tree, env=env)
    log = (logs / f"{name}-build.log").read_text(errors="replace")
    kind = "CUDA sm_90" if "building CUDA kernels" in log else "CPU only"
    mismatch = re.search(r"nvcc is CUDA (\S+) but torch \S+ uses CUDA (\S+):", log)
    if mismatch:
        kind += f" (nvcc {mismatch[1]}, torch's CUDA {mismatch[2]})"
    if rc != 0:
        return dict(row, build=f"{kind}: FAILED after {took:.0f} s (logs/{name}-build.log)", tests="")
    row["build"] = f"{kind}, {took:.0f} s"
    env = dict(os.environ, PYTHONPATH=str(tree))
    rc, took = run([vpy, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not emulated", "tests"],
                   logs / f"{name}-tests.log", cwd=tree, env=env)
    tail = (logs / f"{name}-tests.log").read_text(errors="replace").strip().splitlines()[-1:]
    summary = re.sub(r"^=+ | =+$", "", tail[0]) if tail else f"exit {rc}"
    row["tests"] = summary if rc in (0, 1) else f"exit {rc}: {summary}"
    row["ok"] = rc == 0
    shutil.rmtree(venv, ignore_errors=True)  # a few GB each; the pip cache keeps the downloads
    return row


def write_table(results: dict) -> None:
    rows = sorted(results.values(), key=lambda r: (r["torch"], r["python"]))
    lines = ["| torch | Python | build | CPU test suite (not emulated) | date |", "|---|---|---|---|---|"]
    lines += [f"| {r['torch']} | {r['python']} | {r['build']} | {r['tests']} | {r['date']} |" for r in rows]
    TABLE.write_text("# make compat\n\n" + "\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="*", help="TORCH:PYTHON pairs, e.g. 2.6.0:3.10 (default: the matrix)")
    args = parser.parse_args()
    pairs = [tuple(p.split(":")) for p in args.pairs] or [(t, p) for t in TORCHES for p in PYTHONS]
    WORK.mkdir(parents=True, exist_ok=True)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    failed = 0
    for i, (torch_version, python_version) in enumerate(pairs, 1):
        start = time.monotonic()
        row = one_pair(torch_version, python_version)
        results[f"{torch_version}:{python_version}"] = row
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        write_table(results)
        failed += not row.get("ok", False)
        print(f"[{i}/{len(pairs)}] torch {row['torch']}, Python {python_version}: {row['build']}; {row['tests']} "
              f"({time.monotonic() - start:.0f} s)", flush=True)
    print(f"table: {TABLE.relative_to(ROOT)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
