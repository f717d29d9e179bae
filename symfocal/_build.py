"""What the compiled extension was built for, and whether it fits this process.

setup.py writes ``_build_info.json`` beside ``symfocal._C``. It is read before
the library is loaded, so that a build made for another torch or another CUDA
fails with a message that says what was found, what was expected and which
command fixes it, instead of "undefined symbol". The same facts tell which
GPUs the CUDA kernels can run on.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import torch

PACKAGE_DIR = Path(__file__).parent
INFO_FILE = PACKAGE_DIR / "_build_info.json"

# How to rebuild against what is installed; run in symfocal's source tree.
REBUILD = "pip install --no-build-isolation --force-reinstall --no-deps ."


@functools.lru_cache(maxsize=1)
def read_info() -> dict | None:
    """The build's facts ({symfocal, torch, torch_cuda, cuda, cuda_archs}), or None if unknown.
    Read once: the import, build_info() and the per-device GPU check all ask."""
    try:
        return json.loads(INFO_FILE.read_text())
    except (OSError, ValueError):
        return None


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def load_problem(info: dict, torch_version: str, torch_cuda: str | None) -> str | None:
    """Why a build described by `info` cannot load beside this torch, or None if it can."""
    built = info["torch"]
    built_mm = "{}.{}".format(*_major_minor(built))
    if _major_minor(built) != _major_minor(torch_version):
        return (f"symfocal {info['symfocal']} was built against torch {built}, but torch {torch_version} "
                f"is installed. A compiled extension runs only with the torch release (major.minor) it "
                f"was built against. Fix: install torch {built_mm} (pip install \"torch=={built_mm}.*\"), "
                f"or rebuild symfocal against the installed torch: {REBUILD}")
    cuda = info.get("cuda")
    if cuda is None:
        return None  # a CPU-only build loads beside any build of this torch release
    if torch_cuda is None:
        return (f"symfocal {info['symfocal']} has CUDA kernels (built with CUDA {cuda}), but torch "
                f"{torch_version} is a CPU-only build. Fix: install a CUDA {cuda.split('.')[0]} build of "
                f"torch {built_mm}, or a CPU-only symfocal (the +cpu wheel, or SYMFOCAL_CPU_ONLY=1 {REBUILD})")
    if cuda.split(".")[0] != torch_cuda.split(".")[0]:
        return (f"symfocal {info['symfocal']} was built with CUDA {cuda}, but torch {torch_version} uses "
                f"CUDA {torch_cuda}; their major versions must match. Fix: install the symfocal wheel made "
                f"for CUDA {torch_cuda.split('.')[0]} (+cu{torch_cuda.replace('.', '')}), or rebuild with a CUDA "
                f"{torch_cuda.split('.')[0]}.x toolkit: CUDA_HOME=/path/to/cuda-{torch_cuda} {REBUILD}")
    return None


def library_present() -> bool:
    return any(PACKAGE_DIR.glob("_C*.so")) or any(PACKAGE_DIR.glob("_C*.pyd"))


def load_extension():
    """Imports symfocal._C. Returns (module, None), or (None, reason) when it was never built
    (the caller falls back to the reference). Raises ImportError for a build that is there
    but made for something else."""
    info = read_info()
    if info is not None and library_present():
        problem = load_problem(info, torch.__version__, torch.version.cuda)
        if problem is not None:
            raise ImportError(problem)
    try:
        from . import _C
    except ImportError as exc:
        if not library_present():
            return None, exc
        built = (f"built against torch {info['torch']}, CUDA {info.get('cuda') or 'none'}" if info
                 else "built for an unknown torch")
        raise ImportError(
            f"symfocal: the compiled extension in {PACKAGE_DIR} did not load ({built}; installed: torch "
            f"{torch.__version__}, CUDA {torch.version.cuda or 'none'}): {exc}. Fix: rebuild it against "
            f"the installed torch: {REBUILD}") from exc
    return _C, None


# ---- which GPUs the CUDA kernels run on -------------------------------------------------------

def parse_archs(archs: str, *, strict: bool = False) -> tuple[list[tuple[int, int, str]], list[tuple[int, int]]]:
    """'8.0;9.0a;10.0+PTX' -> machine code [(8, 0, ''), (9, 0, 'a'), (10, 0, '')], PTX [(10, 0)].
    An item that is not an architecture is skipped, or with `strict` a ValueError."""
    sass, ptx = [], []
    for item in re.split(r"[;\s,]+", archs.strip()):
        m = re.fullmatch(r"(\d+)\.(\d+)([af]?)(\+PTX)?", item, flags=re.I)
        if m is None:
            if strict and item:
                raise ValueError(f"TORCH_CUDA_ARCH_LIST: {item!r} is not an architecture; expected items "
                                 f"like 8.0, 9.0a or 12.0+PTX, separated by ';'")
            continue
        major, minor, suffix = int(m[1]), int(m[2]), m[3].lower()
        sass.append((major, minor, suffix))
        if m[4]:
            ptx.append((major, minor))
    return sass, ptx


def gencode_flags(archs: str) -> list[str]:
    """nvcc's flags for `archs`: machine code for each, PTX where '+PTX' asks for it."""
    sass, ptx = parse_archs(archs, strict=True)
    return ([f"-gencode=arch=compute_{M}{m}{s},code=sm_{M}{m}{s}" for M, m, s in sass]
            + [f"-gencode=arch=compute_{M}{m},code=compute_{M}{m}" for M, m in ptx])


def choose_archs(asked: str, visible: list[tuple[tuple[int, int], str]], supported) -> tuple[str, str]:
    """The architectures a source build compiles for, and why. `asked` is TORCH_CUDA_ARCH_LIST, which
    always wins ("all": every supported architecture, what wheels get); else the `visible` GPUs
    [(capability, name)], PTX for the newest (torch's convention for extensions built from
    source); else, with no GPU visible (a login node building for the compute nodes), every
    supported one. `supported()` gives those: from 8.0, PTX for the newest."""
    asked = asked.strip()
    if asked.lower() == "all":
        return supported(), "TORCH_CUDA_ARCH_LIST=all: every architecture this nvcc supports from 8.0"
    if asked:
        return asked, "from TORCH_CUDA_ARCH_LIST"
    if visible:
        archs = ["{}.{}".format(*cap) for cap in sorted({cap for cap, _ in visible})]
        archs[-1] += "+PTX"
        names = ", ".join(sorted({name for _, name in visible}))
        return ";".join(archs), f"the visible GPUs ({names}); TORCH_CUDA_ARCH_LIST overrides"
    return supported(), "no GPU visible: every architecture this nvcc supports from 8.0; TORCH_CUDA_ARCH_LIST overrides"


def runs_on(capability: tuple[int, int], archs: str) -> bool:
    """Whether a build for `archs` has code that a GPU of compute `capability` can run:
    machine code of the same major and a minor not above it (sm_80 runs on 8.6; sm_90a
    only on 9.0), or PTX for a capability not above it (compiled by the driver)."""
    sass, ptx = parse_archs(archs)
    major, minor = capability
    if any(m == major and (n == minor if s == "a" else n <= minor) for m, n, s in sass):
        return True
    return any((m, n) <= (major, minor) for m, n in ptx)


def describe_archs(archs: str) -> str:
    sass, ptx = parse_archs(archs)
    parts = ["machine code for " + ", ".join(f"sm_{m}{n}{s}" for m, n, s in sass)] if sass else []
    if ptx:
        parts.append("PTX for " + ", ".join(f"compute_{m}{n}" for m, n in ptx))
    return " and ".join(parts) or "no architectures"


def arch_problem(capability: tuple[int, int], device_name: str, archs: str) -> str | None:
    if runs_on(capability, archs):
        return None
    cc = "{}.{}".format(*capability)
    return (f"symfocal has no CUDA kernel for this GPU: {device_name} is sm_{cc.replace('.', '')}, and this "
            f"build has {describe_archs(archs)}, none of which runs on it. Fix: rebuild for it: "
            f"TORCH_CUDA_ARCH_LIST=\"{cc}\" FORCE_CUDA=1 {REBUILD}")


@functools.lru_cache(maxsize=None)
def cuda_device_problem(index: int) -> str | None:
    """Why this build's CUDA kernels cannot run on cuda:`index`, or None (cached per device)."""
    info = read_info()
    if info is None or not info.get("cuda_archs"):
        return None  # unknown: the launch itself reports a missing kernel image
    return arch_problem(torch.cuda.get_device_capability(index), torch.cuda.get_device_name(index),
                        info["cuda_archs"])


# ---- what a source build compiles ------------------------------------------------------------

def cuda_choice(*, cpu_only: bool, force: bool, nvcc: tuple[int, int] | None, torch_cuda: str | None,
                gpus: int) -> tuple[bool, str]:
    """Whether a source build compiles the CUDA kernels, and the one line that says so and how to
    get the other. torch's convention for extensions: the CUDA kernels where a GPU is visible (for its
    architectures) or where FORCE_CUDA=1 asks (a GPU node's build made elsewhere, a wheel, CI). Without
    either, nvcc would spend most of the build on code this machine cannot run.
    Raises ValueError where FORCE_CUDA=1 cannot be honoured."""
    if cpu_only:
        return False, "symfocal: building the CPU kernels only (SYMFOCAL_CPU_ONLY=1)"
    if force:
        if nvcc is None:
            raise ValueError("FORCE_CUDA=1 but no nvcc was found; set CUDA_HOME to the CUDA toolkit.")
        return True, "symfocal: building the CPU and CUDA kernels (FORCE_CUDA=1; SYMFOCAL_CPU_ONLY=1 builds the CPU ones only)"
    if torch_cuda is None:
        return False, "symfocal: building the CPU kernels only: this torch has no CUDA"
    if nvcc is None:
        return False, ("symfocal: building the CPU kernels only: no nvcc found (set CUDA_HOME to a CUDA toolkit and "
                       "FORCE_CUDA=1 for the CUDA kernels)")
    major = torch_cuda.split(".")[0]
    if int(major) != nvcc[0]:
        # Not asked for: a CPU build that works beats a stop (a CUDA tensor then gets an error that
        # says how to get the kernels).
        return False, (f"symfocal: nvcc is CUDA {nvcc[0]}.{nvcc[1]} but torch uses CUDA {torch_cuda}: building the CPU "
                       f"kernels only (a CUDA {major}.x toolkit in CUDA_HOME builds the CUDA kernels too; FORCE_CUDA=1 "
                       "insists)")
    if gpus == 0:
        return False, ("symfocal: building the CPU kernels only: no GPU visible (FORCE_CUDA=1 builds the CUDA kernels "
                       "too, as for a GPU node or a wheel)")
    return True, (f"symfocal: building the CPU and CUDA kernels ({gpus} GPU{'s' if gpus > 1 else ''} visible; "
                  "SYMFOCAL_CPU_ONLY=1 builds the CPU ones only)")


# The CPU kernels' instruction sets beyond the portable ones, widest last, by the ATen capability
# that runs them (csrc/engine/cpu/dispatch.cpp follows ATen's choice).
X86_ISAS = ("avx2", "avx512")


def cpu_isa_choice(machine: str, asked: str, capability: str) -> list[str]:
    """The x86 instruction sets whose CPU kernels a build compiles, besides the portable ones.
    `asked` is SYMFOCAL_CPU_ISAS: "" or "all" (what wheels and pip get: any x86 processor runs its
    widest), "native" (only the widest that this processor runs, `capability` being ATen's
    reading of it: a quicker build for this machine alone), or a list such as "avx2,avx512"."""
    if machine != "x86_64":
        return []
    asked = asked.strip().lower()
    if asked in ("", "all"):
        return list(X86_ISAS)
    if asked == "native":
        widest = capability.strip().lower()
        return [widest] if widest in X86_ISAS else []
    chosen = [a for a in re.split(r"[,;\s]+", asked) if a]
    unknown = [a for a in chosen if a not in X86_ISAS]
    if unknown:
        raise ValueError(f"SYMFOCAL_CPU_ISAS: {', '.join(unknown)} unknown; expected 'all', 'native' or a list of "
                         f"{', '.join(X86_ISAS)}")
    return [a for a in X86_ISAS if a in chosen]
