"""make compat-aarch64: does symfocal build for aarch64 (GH200 nodes: Grace + Hopper) and pass its
CPU tests there?

On this x86_64 host: cross-compile the CPU kernels and the CUDA kernels (sm_90) with Debian's
aarch64-linux-gnu-g++ (nvcc's host compiler too) against the aarch64 torch wheel from PyPI and
its CUDA libraries, then run CPU tests with Debian's aarch64 Python 3.11 under qemu-aarch64
(user-mode emulation). Everything comes from the registries: the wheels with
`pip install --target --platform`, the Python and its libraries with `apt-get download`.

    python scripts/aarch64.py                 # fetch, build, test; a row in the compat table
    python scripts/aarch64.py --tests tests/test_sigmoid.py

Needs (Debian, as root): dpkg --add-architecture arm64 && apt-get update &&
apt-get install g++-aarch64-linux-gnu qemu-user
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

from compat import RESULTS, run, write_table
from worktree import ROOT, copy_working_tree

TORCH = "2.14.1"
PYTHON = "3.11"  # Debian bookworm's, the one Python its arm64 archive has
WORK = ROOT / "build" / "aarch64"
SITE, SYSROOT, TREE, LOGS = WORK / "site", WORK / "sysroot", WORK / "tree", WORK / "logs"
PYTHON_WRAPPER = WORK / "bin" / f"python{PYTHON}"
CXX = "aarch64-linux-gnu-g++"
# Debian's python3.11 for arm64 and what it links; libc, libstdc++ and libgcc for the loader.
DEBS = ["python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libpython3.11-dev", "libc6",
        "libstdc++6", "libgcc-s1", "zlib1g", "libexpat1", "libssl3", "libffi8", "libbz2-1.0", "liblzma5",
        "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libcrypt1", "libdb5.3",
        "libnsl2", "libtirpc3"]
# The whole suite but for the emulated CUDA tests (as make compat runs it).
DEFAULT_TESTS = ["tests"]
# pip matches --platform tags literally: name every manylinux level the wheels may carry.
PLATFORMS = [f"manylinux_2_{v}_aarch64" for v in range(17, 29)] + ["manylinux2014_aarch64", "linux_aarch64"]
# oneDNN and cpuinfo read the CPU's identity from /proc and /sys, which qemu-user answers with the
# x86 host's (and torch crashes on them). qemu looks up absolute paths in the sysroot first, so a
# Neoverse V2 (Grace) is described there.
CPUINFO = """processor\t: {n}
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop \
sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg dcpodp sve2 flagm2 frint i8mm bf16
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x0
CPU part\t: 0xd4f
CPU revision\t: 0
"""
MIDR_NEOVERSE_V2 = "0x00000000410fd4f0"


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        sys.exit(f"aarch64: {tool} not found; install it: apt-get install {package}")


def fetch() -> None:
    """The aarch64 torch wheel with its CUDA libraries and the test dependencies, and a sysroot
    holding Debian's aarch64 Python."""
    if not (SITE / "torch" / "version.py").exists():
        platforms = [flag for p in PLATFORMS for flag in ("--platform", p)]
        rc, took = run([sys.executable, "-m", "pip", "install", "--target", str(SITE), *platforms,
                        "--only-binary=:all:", "--python-version", PYTHON, "--implementation", "cp",
                        f"torch=={TORCH}", "numpy", "pytest", "hypothesis"], LOGS / "pip.log", timeout=1800)
        if rc:
            sys.exit(f"aarch64: pip could not fetch the aarch64 wheels ({LOGS / 'pip.log'})")
    if not (SYSROOT / "usr" / "bin" / f"python{PYTHON}").exists():
        debs = WORK / "debs"
        debs.mkdir(parents=True, exist_ok=True)
        rc, _ = run(["apt-get", "download", *[f"{d}:arm64" for d in DEBS]], LOGS / "apt.log", cwd=debs)
        if rc:
            sys.exit("aarch64: apt-get download failed; the arm64 archive must be known: "
                     f"dpkg --add-architecture arm64 && apt-get update ({LOGS / 'apt.log'})")
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(SYSROOT)], check=True)
    # Tests start sys.executable in subprocesses, and without binfmt_misc an aarch64 binary cannot be
    # exec'd here: a wrapper that runs it under qemu, named as the interpreter's argv[0] (-0).
    PYTHON_WRAPPER.parent.mkdir(parents=True, exist_ok=True)
    PYTHON_WRAPPER.write_text(f'#!/bin/sh\nexec qemu-aarch64 -L {SYSROOT} -0 "$0" {SYSROOT}/usr/bin/python{PYTHON} "$@"\n')
    PYTHON_WRAPPER.chmod(0o755)
    (SYSROOT / "proc").mkdir(parents=True, exist_ok=True)
    (SYSROOT / "proc" / "cpuinfo").write_text("\n".join(CPUINFO.format(n=n) for n in range(os.cpu_count() or 1)))
    for n in range(os.cpu_count() or 1):
        ident = SYSROOT / "sys" / "devices" / "system" / "cpu" / f"cpu{n}" / "regs" / "identification"
        ident.mkdir(parents=True, exist_ok=True)
        (ident / "midr_el1").write_text(MIDR_NEOVERSE_V2 + "\n")


# Run by this script's own Python in place of `python setup.py`: torch's extension builder takes
# its headers and libraries from the torch it imports (this host's); point it at the aarch64 wheel's.
CROSS_SETUP = """
import runpy, sys
from torch.utils import cpp_extension
cpp_extension._TORCH_PATH = {torch!r}
cpp_extension.TORCH_LIB_PATH = {torch!r} + "/lib"
sys.argv = ["setup.py", *sys.argv[1:]]
runpy.run_path("setup.py", run_name="__main__")
"""


def build() -> tuple[int, float, str]:
    """Cross-compile a copy of the tree in place; returns (exit status, seconds, what was built)."""
    copy_working_tree(TREE)
    torch_dir = SITE / "torch"
    cuda_lib = WORK / "cuda-lib"  # the linker wants libcudart.so; the wheel ships libcudart.so.13
    cuda_lib.mkdir(parents=True, exist_ok=True)
    link = cuda_lib / "libcudart.so"
    if not link.exists():
        link.symlink_to(next((SITE / "nvidia" / "cu13" / "lib").glob("libcudart.so.*")))
    # nvcc looks for the target's headers in the toolkit's targets/sbsa-linux, which an x86 toolkit
    # lacks: the aarch64 CUDA runtime wheel's headers first, the host toolkit's (crt/, nvcc's own) after.
    cuda_include = SITE / "nvidia" / "cu13" / "include"
    host_include = Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "targets" / "x86_64-linux" / "include"
    env = dict(os.environ, CC=CXX, CXX=CXX, LDFLAGS=f"-L{cuda_lib}",
               NVCC_PREPEND_FLAGS=f"-I{cuda_include} -I{host_include}",
               SETUPTOOLS_EXT_SUFFIX=f".cpython-{PYTHON.replace('.', '')}-aarch64-linux-gnu.so",
               TORCH_CUDA_ARCH_LIST="9.0", MAX_JOBS=os.environ.get("MAX_JOBS", "2"))
    include = SYSROOT / "usr" / "include"
    rc, took = run([sys.executable, "-c", CROSS_SETUP.format(torch=str(torch_dir)), "build_ext", "--inplace",
                    # build_ext takes one -I: a path list, searched before this host's Python headers.
                    "-I", os.pathsep.join(map(str, [include / f"python{PYTHON}", include, cuda_include, host_include]))], LOGS / "build.log", cwd=TREE,
                   env=env)
    log = (LOGS / "build.log").read_text(errors="replace")
    kind = "CPU + CUDA sm_90" if "building CUDA kernels" in log else "CPU only"
    (LOGS / "build.json").write_text(json.dumps({"rc": rc, "took": took, "kind": kind}))
    return rc, took, kind


def last_build() -> tuple[int, float, str]:
    """What the previous build() gave (--keep-build: test that library again)."""
    facts = json.loads((LOGS / "build.json").read_text())
    return facts["rc"], facts["took"], facts["kind"]


def check_library() -> str:
    """The built library is an aarch64 object that needs the aarch64 torch and CUDA runtime."""
    library = next((TREE / "symfocal").glob("_C.*aarch64*.so"))
    header = subprocess.check_output(["readelf", "-h", str(library)], text=True)
    if "AArch64" not in header:
        sys.exit(f"aarch64: {library.name} is not an aarch64 object:\n{header}")
    needed = re.findall(r"\[(.+?)\]", subprocess.check_output(["readelf", "-d", str(library)], text=True))
    return ", ".join(n for n in needed if n.startswith(("libtorch", "libc10", "libcudart")))


def test(tests: list[str]) -> tuple[int, str]:
    need("qemu-aarch64", "qemu-user")
    env = dict(os.environ, PYTHONPATH=f"{TREE}:{SITE}", OMP_NUM_THREADS="2", PYTHONDONTWRITEBYTECODE="1")
    python = [str(PYTHON_WRAPPER)]
    # The tests would pass on the pure-PyTorch fallback too: the library must have loaded.
    rc, _ = run([*python, "-m", "symfocal.info"], LOGS / "info.log", cwd=TREE, env=env, timeout=600)
    info = (LOGS / "info.log").read_text(errors="replace")
    if rc or not re.search(r"extension loaded\W+True", info):
        return 1, f"the library did not load under qemu ({LOGS / 'info.log'})"
    rc, _ = run([*python, "-m",
                 "pytest", "-q", "-p", "no:cacheprovider", "-m", "not emulated", *tests], LOGS / "tests.log",
                cwd=TREE, env=env, timeout=4 * 3600)
    tail = (LOGS / "tests.log").read_text(errors="replace").strip().splitlines()[-1:]
    summary = re.sub(r"^=+ | =+$", "", tail[0]) if tail else f"exit {rc}"
    return rc, summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tests", nargs="*", default=DEFAULT_TESTS, help="test files to run under qemu")
    parser.add_argument("--keep-build", action="store_true", help="test the library the last run built")
    args = parser.parse_args()
    need(CXX, "g++-aarch64-linux-gnu")
    LOGS.mkdir(parents=True, exist_ok=True)
    fetch()
    rc, took, kind = last_build() if args.keep_build else build()
    row = {"torch": f"{TORCH}+cu130 (aarch64 wheel)", "python": f"{PYTHON} (aarch64, qemu-user)",
           "date": dt.date.today().isoformat(), "tests": ""}
    if rc:
        row["build"] = f"cross-compiled {kind}: FAILED after {took:.0f} s (build/aarch64/logs/build.log)"
    else:
        row["build"] = f"cross-compiled {kind} with {CXX}, {took:.0f} s; links {check_library()}"
        rc, row["tests"] = test(args.tests)
        if args.tests != DEFAULT_TESTS:
            row["tests"] += f" ({', '.join(Path(t).name for t in args.tests)})"
    row["ok"] = rc == 0
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results[f"{TORCH}:{PYTHON}:aarch64"] = row
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_table(results)
    print(f"aarch64: {row['build']}; {row['tests']}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
