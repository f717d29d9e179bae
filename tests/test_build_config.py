"""The build in the environments users have: the setuptools their venv came with (or none),
and the GPU architectures a source build chooses."""

import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from symfocal import _build

ROOT = Path(__file__).resolve().parent.parent


def _supported():
    return "8.0;8.6;9.0;12.0+PTX"


@pytest.mark.parametrize("asked, visible, expect, why", [
    ("", [((9, 0), "NVIDIA H200")], "9.0+PTX", "visible GPUs (NVIDIA H200)"),
    ("", [((8, 6), "A"), ((8, 0), "B"), ((8, 6), "A")], "8.0;8.6+PTX", "visible GPUs (A, B)"),
    ("", [], "8.0;8.6;9.0;12.0+PTX", "no GPU visible"),
    ("7.5", [((9, 0), "NVIDIA H200")], "7.5", "from TORCH_CUDA_ARCH_LIST"),   # the variable always wins
    ("All", [((9, 0), "NVIDIA H200")], "8.0;8.6;9.0;12.0+PTX", "TORCH_CUDA_ARCH_LIST=all"),
])
def test_a_source_build_compiles_for_the_visible_gpus(asked, visible, expect, why):
    archs, reason = _build.choose_archs(asked, visible, _supported)
    assert archs == expect and why in reason


CUDA13 = dict(nvcc=(13, 0), torch_cuda="13.0")


@pytest.mark.parametrize("options, build, says", [
    (dict(cpu_only=True, force=False, gpus=1, **CUDA13), False, "SYMFOCAL_CPU_ONLY=1"),
    # No GPU to run them: the CPU kernels only, and the line says how to get the CUDA ones.
    (dict(cpu_only=False, force=False, gpus=0, **CUDA13), False, "no GPU visible (FORCE_CUDA=1 builds"),
    (dict(cpu_only=False, force=True, gpus=0, **CUDA13), True, "FORCE_CUDA=1; SYMFOCAL_CPU_ONLY=1 builds the CPU"),
    (dict(cpu_only=False, force=False, gpus=2, **CUDA13), True, "2 GPUs visible; SYMFOCAL_CPU_ONLY=1"),
    (dict(cpu_only=False, force=False, gpus=1, nvcc=(13, 0), torch_cuda="12.4"), False, "FORCE_CUDA=1 insists"),
    (dict(cpu_only=False, force=False, gpus=1, nvcc=None, torch_cuda="13.0"), False, "no nvcc found"),
    (dict(cpu_only=False, force=False, gpus=0, nvcc=(13, 0), torch_cuda=None), False, "this torch has no CUDA"),
])
def test_the_cuda_kernels_are_built_where_they_run_or_where_asked(options, build, says):
    built, line = _build.cuda_choice(**options)
    assert built == build and says in line and "\n" not in line


def test_force_cuda_without_nvcc_says_so():
    with pytest.raises(ValueError, match="FORCE_CUDA=1 but no nvcc"):
        _build.cuda_choice(cpu_only=False, force=True, nvcc=None, torch_cuda="13.0", gpus=0)


@pytest.mark.parametrize("machine, asked, capability, isas", [
    ("x86_64", "", "AVX512", ["avx2", "avx512"]),        # pip and wheels: every x86 processor
    ("x86_64", "all", "AVX2", ["avx2", "avx512"]),
    ("x86_64", "native", "AVX512", ["avx512"]),          # this processor's widest only
    ("x86_64", "native", "AVX2", ["avx2"]),
    ("x86_64", "native", "DEFAULT", []),
    ("x86_64", "avx512, avx2", "DEFAULT", ["avx2", "avx512"]),
    ("aarch64", "all", "DEFAULT", []),
])
def test_the_cpu_instruction_sets_a_build_compiles(machine, asked, capability, isas):
    assert _build.cpu_isa_choice(machine, asked, capability) == isas


def test_an_unknown_instruction_set_is_named():
    with pytest.raises(ValueError, match="SYMFOCAL_CPU_ISAS: sse4 unknown"):
        _build.cpu_isa_choice("x86_64", "avx2,sse4", "AVX2")


def _fake_setuptools(tmp_path, version):
    package = tmp_path / "setuptools"
    package.mkdir()
    (package / "__init__.py").write_text(f"__version__ = {version!r}\n")
    return tmp_path


@pytest.mark.parametrize("version", [None, "58.1.0", "63.4.3"])
def test_the_backend_names_the_setuptools_a_build_needs(tmp_path, version):
    """No setuptools (Python 3.12's venv) or one too old for an editable install: one line that
    says which version is needed and the command that installs it."""
    path = str(_fake_setuptools(tmp_path, version)) if version else ""
    # -S: no site-packages, so the only setuptools is the fake one (or none).
    result = subprocess.run([sys.executable, "-S", "-c", "import build_backend"], cwd=ROOT, text=True,
                            capture_output=True, env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "setuptools >= 64" in lines[0] and "pip install --upgrade 'setuptools>=64'" in lines[0]
    assert ("has none" if version is None else f"found {version}") in lines[0]


def test_the_backend_names_the_wheel_package_an_old_setuptools_needs(tmp_path):
    """setuptools 65.5 (what Python 3.10's and 3.11's venv bring) builds wheels only with the
    wheel package, which those venvs lack."""
    path = _fake_setuptools(tmp_path, "65.5.0")
    result = subprocess.run([sys.executable, "-S", "-c", "import build_backend"], cwd=ROOT, text=True,
                            capture_output=True, env={"PYTHONPATH": str(path), "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert result.stderr.strip() == ("symfocal: building with setuptools 65.5.0 needs the wheel package. "
                                     "Fix: python -m pip install --upgrade 'setuptools>=64' wheel")


def test_the_backend_is_setuptools_with_a_recent_one():
    result = subprocess.run([sys.executable, "-c", "import build_backend; print(build_backend.build_wheel)"],
                            cwd=ROOT, text=True, capture_output=True)
    assert result.returncode == 0 and "setuptools.build_meta" in result.stdout, result.stderr


def test_the_metadata_reads_with_the_setuptools_a_venv_brings(tmp_path):
    """`python -m venv` on Python 3.10 and 3.11 brings setuptools 65.5, which cannot read
    pyproject's newer [project] fields: the package's metadata must build with it."""
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    version = subprocess.run([python, "-c", "import setuptools; print(setuptools.__version__)"], text=True,
                             capture_output=True)
    if version.returncode != 0:
        pytest.skip(f"this Python's venv comes without setuptools ({base})")
    found = tuple(int(n) for n in re.findall(r"\d+", version.stdout)[:2])
    if found >= (77, 0):
        pytest.skip(f"this Python's venv brings setuptools {version.stdout.strip()}, new enough anyway")
    # torch and the rest from this environment, after the venv's own (older) setuptools.
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          text=True, capture_output=True, check=True).stdout.strip()
    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    egg_base = tmp_path / "egg"
    egg_base.mkdir()
    result = subprocess.run([python, "setup.py", "-q", "egg_info", "--egg-base", str(egg_base)], cwd=ROOT,
                            text=True, capture_output=True, env={"SYMFOCAL_CPU_ONLY": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    info = (egg_base / "symfocal.egg-info" / "PKG-INFO").read_text()
    assert "License: Apache-2.0" in info and "Requires-Python: >=3.10" in info and "Name: symfocal" in info


@pytest.mark.parametrize("triple, kernels", [("x86_64-linux-gnu", "portable, avx2, avx512"),
                                             ("aarch64-linux-gnu", "portable")])
def test_the_cpu_kernels_follow_the_compilers_target_not_the_host(tmp_path, triple, kernels):
    # A cross compiler (CXX=aarch64-linux-gnu-g++ on an x86 host) gets no x86 ISA kernels.
    fake = tmp_path / "c++"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = -dumpmachine ] && echo {triple} && exit 0\nexit 1\n")
    fake.chmod(0o755)
    env = dict(os.environ, CXX=str(fake), SYMFOCAL_CPU_ONLY="1")
    env.pop("SYMFOCAL_CPU_ISAS", None)
    result = subprocess.run([sys.executable, "setup.py", "--name"], cwd=ROOT, text=True, capture_output=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert f"symfocal: CPU kernels for {triple.split('-')[0]}: {kernels}" in result.stdout
