"""A copy of the working tree as it is (tracked files and untracked ones git does not ignore),
for the scripts that build and test symfocal elsewhere than in place."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def copy_working_tree(dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            target = dst / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
