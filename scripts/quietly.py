"""Runs a long command quietly: its whole output into a log, one line per stage on the
terminal (with how long it took), and the log's tail if it fails.

    python scripts/quietly.py LABEL LOG -- COMMAND...

For the extension's build (setup.py build_ext) the stages are read off its output:
configuration (its 'symfocal:' lines are shown), the compile (the CPU kernels per
instruction set beside ninja's compile of the rest) and the link.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

# Stages in order, each with a line that shows it has begun; the first runs from the start.
STAGES = [
    ("set-up", None),
    ("compile", re.compile(r"^\[\d+/\d+\]|\s-c\s\S+\.(cpp|cu)\b")),
    ("link", re.compile(r"\s-shared\s")),
]


def main() -> int:
    if len(sys.argv) < 5 or sys.argv[3] != "--":
        sys.exit(__doc__)
    label, log_path, cmd = sys.argv[1], Path(sys.argv[2]), sys.argv[4:]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = stage_start = time.monotonic()
    current = 0
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            if line.startswith("symfocal:"):
                print(f"{label}: {line.strip()}", flush=True)
            later = [j for j in range(current + 1, len(STAGES)) if STAGES[j][1].search(line)]
            if later:
                now = time.monotonic()
                print(f"{label}: {STAGES[current][0]} {now - stage_start:.0f} s", flush=True)
                current, stage_start = later[0], now
        rc = proc.wait()
    now = time.monotonic()
    if rc != 0:
        print(f"{label}: FAILED in {STAGES[current][0]} after {now - start:.0f} s (exit {rc}); the end of {log_path}:")
        print("".join(log_path.read_text().splitlines(keepends=True)[-40:]), end="")
        return rc
    print(f"{label}: {STAGES[current][0]} {now - stage_start:.0f} s; done in {now - start:.0f} s (full output: {log_path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
