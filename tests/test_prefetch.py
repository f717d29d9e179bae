"""The CPU kernels' software prefetches are in the compiled library.

GCC deletes every call to a helper whose only effect is __builtin_prefetch (it finds the helper free
of side effects), which for a while left both CPU kernels without a single prefetch and the
distogram pass waiting on its mirror cells (csrc/engine/cpu/prefetch.h). Nothing numeric shows
that; the disassembly does."""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import symfocal
from symfocal import _ops

pytestmark = [
    pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's prefetcht0"),
    pytest.mark.skipif(shutil.which("objdump") is None, reason="needs objdump (binutils)"),
    pytest.mark.skipif(not _ops.available(), reason="the extension is not built"),
]


@pytest.fixture(scope="module")
def disassembly() -> tuple[set[str], dict[str, set[str]]]:
    """The ISA namespaces whose distogram pass is built, and {ISA: names of the kernel functions that
    contain a prefetch instruction}."""
    library = next(Path(symfocal.__file__).parent.glob("_C*.so"))
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(library)], capture_output=True,
                          text=True, check=True).stdout
    built: set[str] = set()
    found: dict[str, set[str]] = {}
    function, isa = "", None
    for line in text.splitlines():
        header = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if header:
            function = header.group(1)
            match = re.search(r"symfocal::cpu::(DEFAULT|AVX2|AVX512)::", function)
            isa = match.group(1) if match else None
            if isa and "softmax::run_pass" in function:
                built.add(isa)
        elif isa and "prefetch" in line:
            found.setdefault(isa, set()).add(function)
    return built, found


@pytest.mark.parametrize("isa", ["DEFAULT", "AVX2", "AVX512"])
def test_each_kernel_prefetches(isa, disassembly):
    built, found = disassembly
    if isa not in built:
        pytest.skip(f"this build has no {isa} kernels")
    functions = found.get(isa, set())
    softmax = [f for f in functions if "softmax::run_pass" in f]
    sigmoid = [f for f in functions if "::Kernels<" in f]
    assert softmax, f"{isa}: the distogram pass (softmax::run_pass) has no prefetch instruction"
    assert sigmoid, f"{isa}: the binary tile-pair kernels (Kernels<...>) have no prefetch instruction"
