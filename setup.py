"""Builds symfocal._C: a CUDAExtension when CUDA can be built, else a CppExtension.

Environment variables:
  FORCE_CUDA=1            build the CUDA kernels, or stop saying why not (needs nvcc of
                          torch's CUDA major); by default they are built where nvcc is
                          found and its CUDA major is torch's, GPU or not
  SYMFOCAL_CPU_ONLY=1     never build the CUDA kernels
  TORCH_CUDA_ARCH_LIST    e.g. "8.0;9.0+PTX", or "all" (every arch from 8.0 that nvcc
                          supports, PTX for the newest: what wheels get); default: the
                          visible GPUs' archs (PTX for the newest), or "all" without a GPU
  CUDA_HOME               the toolkit (default: /usr/local/cuda when it exists)
  MAX_JOBS                parallel compile jobs
  SYMFOCAL_LOCAL_VERSION  local version label, e.g. "cu130" or "cpu" (wheels)
  SYMFOCAL_DEBUG_INFO=1   keep debug info: host -g and CUDA line info (for profilers and
                          compute-sanitizer; make build sets it); without it the library
                          is several times smaller
  SYMFOCAL_SANITIZE=1     the host code built with AddressSanitizer and UndefinedBehaviorSanitizer
                          (`make sanitize`, scripts/sanitize.py: the library then loads only with
                          libasan preloaded); not for a library anyone uses
"""

import concurrent.futures
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

# torch reads CUDA_HOME when cpp_extension is imported. On machines where `nvcc`
# on PATH is a wrapper outside the toolkit, torch would guess the wrong root.
if "CUDA_HOME" not in os.environ and Path("/usr/local/cuda/bin/nvcc").exists():
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

import setuptools  # noqa: E402
from setuptools import setup  # noqa: E402

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # pragma: no cover - explained to the user
    sys.exit(
        "symfocal: torch must be importable to build the extension. Install torch first, "
        "then build without isolation:\n    pip install --no-build-isolation -e ."
    )

ROOT = Path(__file__).parent
BUILD_INFO = "_build_info.json"
CSRC = Path("csrc")  # setuptools wants source paths relative to setup.py
os.chdir(ROOT)
# symfocal/_build.py reads architecture lists at run time; the build uses the same reader.
_spec = importlib.util.spec_from_file_location("symfocal_build", ROOT / "symfocal" / "_build.py")
symfocal_build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(symfocal_build)
VERSION = re.search(r'^__version__ = "(.+)"', (ROOT / "symfocal" / "version.py").read_text(), re.M)[1]


def truthy(name):
    return os.environ.get(name, "").lower() in ("1", "true", "yes", "on")


def nvcc_version():
    home = cpp_extension.CUDA_HOME
    if home is None:
        return None
    try:
        out = subprocess.check_output([os.path.join(home, "bin", "nvcc"), "--version"], text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"release (\d+)\.(\d+)", out)
    return (int(m[1]), int(m[2])) if m else None


def want_cuda():
    """Whether to build the CUDA kernels (symfocal/_build.py's cuda_choice), said in one line."""
    try:
        build, line = symfocal_build.cuda_choice(
            cpu_only=truthy("SYMFOCAL_CPU_ONLY"), force=truthy("FORCE_CUDA"), nvcc=nvcc_version(),
            torch_cuda=torch.version.cuda, gpus=len(visible_gpus()))
    except ValueError as exc:
        sys.exit(f"symfocal: {exc}")
    print(line)
    return build


def check_cuda_match(nvcc):
    torch_cuda = torch.version.cuda
    if torch_cuda is None:
        sys.exit(
            f"symfocal: this torch ({torch.__version__}) has no CUDA, but a CUDA build was asked for. "
            "Install a CUDA build of torch, or build for the CPU only with SYMFOCAL_CPU_ONLY=1."
        )
    if int(torch_cuda.split(".")[0]) != nvcc[0]:
        sys.exit(
            f"symfocal: nvcc is CUDA {nvcc[0]}.{nvcc[1]} but torch was built with CUDA {torch_cuda}; "
            "their major versions must match. Point CUDA_HOME at a CUDA "
            f"{torch_cuda.split('.')[0]}.x toolkit, install the torch build for CUDA {nvcc[0]}, "
            "or build for the CPU only with SYMFOCAL_CPU_ONLY=1."
        )


def supported_archs():
    """Every architecture from 8.0 that this nvcc can compile for, PTX for the newest."""
    try:
        out = subprocess.check_output(
            [os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc"), "--list-gpu-arch"], text=True
        )
        archs = sorted({int(a) for a in re.findall(r"compute_(\d+)", out)})
    except (OSError, subprocess.CalledProcessError):
        archs = [80, 86, 89, 90]
    archs = [a for a in archs if a >= 80]
    names = [f"{a // 10}.{a % 10}" for a in archs]
    names[-1] += "+PTX"
    return ";".join(names)


def visible_gpus():
    """[(capability, name)] of the GPUs this process sees (none on a login node or CI)."""
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except RuntimeError:
        count = 0
    return [(torch.cuda.get_device_capability(i), torch.cuda.get_device_name(i)) for i in range(count)]


# Each loss family's CPU kernels, compiled once for any processor (the portable ones) and once more
# for each wider x86 instruction set, picked at run time (csrc/engine/cpu/dispatch.cpp); only these
# files get the ISA flags.
CPU_KERNELS = ("sigmoid/cpu/kernels", "softmax/cpu/kernels")
ISA_FLAGS = {
    "avx2": ["-mavx2", "-mfma", "-mf16c"],
    # GCC 12 warns falsely inside its own AVX-512 intrinsics (uninitialized __Y).
    "avx512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mf16c",
               "-Wno-uninitialized", "-Wno-maybe-uninitialized"],
}


def kernel_sources(machine, isas):
    """{source: (optimization, ISA flags)} of the CPU kernels. On x86-64 the portable kernels are the
    fallback for processors without AVX2 (and what ATEN_CPU_CAPABILITY=default tests): -O1 gives the same
    results and halves the longest compile of the build (ATen's portable vectors are loops of scalars,
    which -O3 unrolls everywhere). Elsewhere (aarch64) they are the kernels that run: -O3."""
    portable_opt = "-O1" if machine == "x86_64" else "-O3"
    sources = {f"{k}_default.cpp": (portable_opt, []) for k in CPU_KERNELS}
    for isa in isas:
        sources.update({f"{k}_{isa}.cpp": ("-O3", ISA_FLAGS[isa]) for k in CPU_KERNELS})
    return sources


def target_machine():
    """The machine the C++ compiler builds for: a cross compiler's target (CXX=aarch64-linux-gnu-g++
    on an x86 host), not the host's."""
    try:
        triple = subprocess.check_output([*shlex.split(cpp_extension.get_cxx_compiler()), "-dumpmachine"], text=True)
    except (OSError, subprocess.CalledProcessError):
        return os.uname().machine
    return triple.strip().split("-")[0]


def cpu_capability():
    """ATen's reading of this processor ("AVX512", "AVX2", "DEFAULT"): what SYMFOCAL_CPU_ISAS=native builds."""
    try:
        return torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return "DEFAULT"


def debug_flags():
    # Python's own CFLAGS carry -g; a later -g0 wins.
    if truthy("SYMFOCAL_DEBUG_INFO"):
        return ["-g"]
    # Line tables for the sanitizers' stack traces (full -g makes GCC's variable tracking crawl there).
    return ["-g1"] if truthy("SYMFOCAL_SANITIZE") else ["-g0"]


def sanitizer_opt():
    """-O1 under the sanitizers: the same vector code (the kernels' SIMD is written out, not left to the
    optimizer), clearer reports, and a build in a fraction of -O3's time with ASan."""
    return "-O1" if truthy("SYMFOCAL_SANITIZE") else None


def sanitizer_flags():
    """ASan and UBSan (every UB check stops the process; vptr is left out: torch's classes come from a
    library built without it). GCC 12 warns falsely about bounds under ASan, so warnings stay warnings."""
    if not truthy("SYMFOCAL_SANITIZE"):
        return []
    return ["-fsanitize=address,undefined", "-fno-sanitize=vptr", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-Wno-error"]


def warning_flags():
    # torch's headers become system headers, so -Werror applies to our code only.
    system = [f for p in cpp_extension.include_paths() for f in ("-isystem", p)]
    return ["-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror", *system]


def cxx_standard():
    # The standard torch's own extension builder uses (C++20 from torch 2.10, else C++17).
    return "-std=c++20" if "-std=c++20" in Path(cpp_extension.__file__).read_text() else "-std=c++17"


class BuildExtension(cpp_extension.BuildExtension):
    """torch's builder, plus the CPU kernels compiled with their own flags, beside torch's own
    compile of the other sources: both run at once, and the library is linked when all are done."""

    def build_extensions(self):
        # torch routes the compiler's compile through one ninja file; the kernels' own compiles run
        # beside it, so they take the plain one.
        self.plain_compile = self.compiler.compile
        super().build_extensions()

    def build_extension(self, ext):
        def compile_kernels(source, opt, isa_flags):
            opt = sanitizer_opt() or opt
            flags = [opt, "-fPIC", "-fopenmp", "-fvisibility=hidden", cxx_standard(), *debug_flags(),
                     *warning_flags(), *sanitizer_flags(), *isa_flags,
                     f"-D_GLIBCXX_USE_CXX11_ABI={int(torch._C._GLIBCXX_USE_CXX11_ABI)}"]
            return self.plain_compile(
                [str(CSRC / source)], output_dir=self.build_temp,
                include_dirs=[str(CSRC.absolute()), *cpp_extension.include_paths()], extra_postargs=flags)

        jobs = max(1, int(os.environ.get("MAX_JOBS") or os.cpu_count() or 1))
        link = self.compiler.link_shared_object
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            kernels = [pool.submit(compile_kernels, source, *how)
                       for source, how in getattr(ext, "kernel_sources", {}).items()]

            def link_with_kernels(objects, *args, **kwargs):
                return link(list(objects) + [o for k in kernels for o in k.result()], *args, **kwargs)

            self.compiler.link_shared_object = link_with_kernels
            try:
                super().build_extension(ext)
            finally:
                self.compiler.link_shared_object = link
                for k in kernels:
                    k.cancel()
        # Beside the library: what it was built for, readable before loading it
        # (symfocal/_build.py checks it against the running torch).
        Path(self.get_ext_fullpath(ext.name)).with_name(BUILD_INFO).write_text(
            json.dumps(ext.build_facts, indent=2) + "\n")

    def copy_extensions_to_source(self):
        """An in-place build copies the library into the source tree; its build info goes with it."""
        super().copy_extensions_to_source()
        package_dir = Path(self.get_finalized_command("build_py").get_package_dir("symfocal"))
        (package_dir / BUILD_INFO).write_text(Path(self.build_lib, "symfocal", BUILD_INFO).read_text())


def cuda_compile_order(path):
    """The longest compiles first (ninja starts them in the order given): the kernel variants' files,
    then the double- and float-accumulation tile-pair kernels, then the rest. Each file is one ptxas
    run per architecture, so a long one started last would leave a core idle at the end."""
    name = path.name
    rank = 0 if name.startswith("kernel_variant_") else 1 if name.endswith("_double.cu") else \
        2 if name.startswith("kernel_") else 3
    return rank, str(path)


def make_extension():
    cuda = want_cuda()
    cpu_sources = ["engine/module.cpp", "engine/views.cpp", "engine/cpu/dispatch.cpp",
                   "sigmoid/ops.cpp", "sigmoid/problem.cpp", "softmax/ops.cpp", "softmax/problem.cpp"]
    machine = target_machine()
    try:
        isas = symfocal_build.cpu_isa_choice(machine, os.environ.get("SYMFOCAL_CPU_ISAS", ""), cpu_capability())
    except ValueError as exc:
        sys.exit(f"symfocal: {exc}")
    everything = "" if isas == symfocal_build.cpu_isa_choice(machine, "all", "") else \
        " (SYMFOCAL_CPU_ISAS=all builds every one)"
    print(f"symfocal: CPU kernels for {machine}: {', '.join(['portable', *isas])}{everything}")
    sources = [str(CSRC / s) for s in cpu_sources]
    # -fopenmp: at::parallel_for is inline and runs OpenMP in our own code.
    # The instruction sets dispatch.cpp may pick (ATen's choice, where it was built).
    cxx = [sanitizer_opt() or "-O3", "-fopenmp", "-fvisibility=hidden", *debug_flags(), *warning_flags(), *sanitizer_flags(),
           *[f"-DSYMFOCAL_CPU_{isa.upper()}" for isa in isas]]
    nvcc_flags = []
    facts = {"symfocal": version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
             "cuda": None, "cuda_archs": None, "cpu_isas": ["portable", *isas]}
    if cuda:
        nvcc = nvcc_version()
        check_cuda_match(nvcc)
        archs, why = symfocal_build.choose_archs(os.environ.get("TORCH_CUDA_ARCH_LIST", ""), visible_gpus(),
                                                 supported_archs)
        try:
            gencode = symfocal_build.gencode_flags(archs)
        except ValueError as exc:
            sys.exit(f"symfocal: {exc}")
        sources += [str(p) for p in sorted(CSRC.glob("*/cuda/*.cu"), key=cuda_compile_order)]
        sources.append(str(CSRC / "engine" / "cuda" / "ops_cuda.cpp"))
        facts.update(cuda=f"{nvcc[0]}.{nvcc[1]}", cuda_archs=archs, cuda_variants=truthy("SYMFOCAL_CUDA_VARIANTS"))
        macros = ["-DSYMFOCAL_WITH_CUDA"]
        # The kernel variants a first GPU run times (csrc/sigmoid/cuda/variants.h); `make gpu-check` only.
        if truthy("SYMFOCAL_CUDA_VARIANTS"):
            macros.append("-DSYMFOCAL_CUDA_VARIANTS")
            print("symfocal: with the CUDA kernel variants (SYMFOCAL_CUDA_VARIANTS)")
        cxx += macros
        # Our .cu includes no torch headers, so every warning in it is ours.
        # -Xptxas=-v: the resource report (registers, stack, spills) goes into the build log,
        # where tests/test_cuda_build.py checks that the kernels neither spill nor use a stack.
        # Our own -gencode flags, not torch's reading of TORCH_CUDA_ARCH_LIST: torch knows only the
        # archs of its release (torch 2.14 rejects 8.8, which nvcc 13 compiles for).
        # -Xfatbin=-compress-all: the GPU code of eleven architectures shrinks about ninefold.
        nvcc_flags = ["-O3", "--Werror", "all-warnings", "-Xptxas=-v", "-Xfatbin=-compress-all", "--threads", "2",
                      *(["-lineinfo"] if truthy("SYMFOCAL_DEBUG_INFO") else []), *macros, *gencode]
        print(f"symfocal: building CUDA kernels (nvcc {nvcc[0]}.{nvcc[1]}, archs {archs}: {why})")
        ext = cpp_extension.CUDAExtension
    else:
        ext = cpp_extension.CppExtension
    extension = ext(
        "symfocal._C",
        sources,
        include_dirs=[str(CSRC.absolute())],
        extra_compile_args={"cxx": cxx, "nvcc": nvcc_flags},
        extra_link_args=["-fopenmp", *sanitizer_flags()],
    )
    extension.kernel_sources = kernel_sources(machine, isas)
    extension.build_facts = facts
    return extension


def version():
    local = os.environ.get("SYMFOCAL_LOCAL_VERSION")
    return f"{VERSION}+{local}" if local else VERSION


def torch_requirement():
    """A wheel runs only with the torch release (major.minor) it was built against."""
    major, minor = torch.__version__.split("+")[0].split(".")[:2]
    return f"torch>={major}.{minor},<{major}.{int(minor) + 1}"


def license_metadata():
    """The license as the running setuptools spells it: an SPDX expression from 77 on (the plain
    `license` field is deprecated there), the plain field before."""
    major = int(re.match(r"\d+", setuptools.__version__)[0])
    return {"license_expression": "Apache-2.0"} if major >= 77 else {"license": "Apache-2.0"}


setup(
    name="symfocal",
    version=version(),
    description="Fused symmetric focal loss for sparse symmetric maps (contact maps, base-pair maps, Hi-C, "
                "adjacency), CPU and CUDA kernels for PyTorch",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=["symfocal", "symfocal.reference"],
    install_requires=[torch_requirement(), "numpy"],
    extras_require={"test": ["pytest", "hypothesis", "numpy"], "bench": ["matplotlib", "tqdm"]},
    ext_modules=[make_extension()],
    cmdclass={"build_ext": BuildExtension},
    **license_metadata(),
)
