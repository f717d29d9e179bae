"""Runs one pytest command as N processes at once, each on every N-th test (tests/conftest.py's
SYMFOCAL_TEST_SHARD), for suites whose tests keep one core busy each: the emulated CUDA kernels run
a block's threads as fibers on one CPU thread. Each process's output goes to its own log; the
failures and each summary line are printed at the end, and the exit status is the worst one.

    python scripts/pytest_shards.py [--shards N] [--logs DIR] -- <pytest arguments>

The processes share the emulator's build (torch's JIT builder locks its folder: one compiles, the
others wait for it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def summary(log: Path) -> list[str]:
    """The failure lines and the final line of one process's pytest output."""
    lines = log.read_text(errors="replace").splitlines()
    failed = [line for line in lines if line.startswith(("FAILED ", "ERROR "))]
    return failed + lines[-1:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--logs", type=Path, default=Path("build") / "shards")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    pytest_args = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    shards = max(1, args.shards)
    args.logs.mkdir(parents=True, exist_ok=True)
    # One OpenMP thread a process where they share the cores: busy-waiting threads of one would
    # take the other's core.
    threads = str(max(1, (os.cpu_count() or 1) // shards))
    start = time.monotonic()
    running = []
    for k in range(shards):
        log = args.logs / f"shard{k}.log"
        env = dict(os.environ, SYMFOCAL_TEST_SHARD=f"{k}/{shards}")
        env.setdefault("OMP_NUM_THREADS", threads)
        out = log.open("w")
        running.append((log, out, subprocess.Popen([sys.executable, "-m", "pytest", *pytest_args], env=env,
                                                   stdout=out, stderr=subprocess.STDOUT)))
    codes = []
    for k, (log, out, process) in enumerate(running):
        codes.append(process.wait())
        out.close()
        print(f"shard {k}/{shards} ({log}): rc {codes[-1]}")
        for line in summary(log):
            print(f"  {line}")
    finals = " | ".join(summary(args.logs / f"shard{k}.log")[-1].strip("= ") for k in range(shards))
    print(f"{shards} shards in {time.monotonic() - start:.0f} s: {finals}")
    # pytest's 5 (nothing collected) is no failure for one shard of a small selection, only for all.
    failures = [rc for rc in codes if rc not in (0, 5)]
    return max(failures) if failures else (5 if all(rc == 5 for rc in codes) else 0)


if __name__ == "__main__":
    sys.exit(main())
