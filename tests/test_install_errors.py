"""An install that explains itself: a build made for another torch or CUDA, a CUDA
tensor given to a CPU-only build, a GPU the build has no code for. Each case is
simulated; each message must say what was found, what was expected and the fix."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import symfocal
from symfocal import _build, _ops

BUILT = {"symfocal": "0.1.0", "torch": "2.14.1+cu130", "torch_cuda": "13.0", "cuda": "13.0",
         "cuda_archs": "8.0;9.0+PTX"}
CPU_BUILT = dict(BUILT, cuda=None, cuda_archs=None)


def test_a_build_for_the_running_torch_loads():
    assert _build.load_problem(BUILT, "2.14.1+cu130", "13.0") is None
    assert _build.load_problem(BUILT, "2.14.0", "13.2") is None       # patch and CUDA minor may differ
    assert _build.load_problem(CPU_BUILT, "2.14.1+cu130", "13.0") is None  # a CPU build beside CUDA torch
    assert _build.load_problem(CPU_BUILT, "2.14.1+cpu", None) is None


def test_another_torch_release_is_named_with_the_fix():
    msg = _build.load_problem(BUILT, "2.13.0+cpu", None)
    assert "built against torch 2.14.1+cu130" in msg and "torch 2.13.0+cpu is installed" in msg
    assert 'pip install "torch==2.14.*"' in msg and _build.REBUILD in msg


def test_another_cuda_major_is_named_with_the_fix():
    msg = _build.load_problem(dict(BUILT, cuda="12.8"), "2.14.1+cu130", "13.0")
    assert "built with CUDA 12.8" in msg and "uses CUDA 13.0" in msg
    assert "+cu130" in msg and "CUDA_HOME=" in msg


def test_a_cuda_build_beside_a_cpu_torch_is_named_with_the_fix():
    msg = _build.load_problem(BUILT, "2.14.1+cpu", None)
    assert "CUDA kernels (built with CUDA 13.0)" in msg and "CPU-only build" in msg
    assert "+cpu wheel" in msg and "SYMFOCAL_CPU_ONLY=1" in msg


def _package_copy(tmp_path):
    """symfocal as built here, copied elsewhere, to break on purpose."""
    copy = tmp_path / "symfocal"
    shutil.copytree(Path(symfocal.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


# After `pip install -e .`, setuptools' editable finder resolves symfocal's submodules in the
# source tree, so a copy without _C*.so would still load the tree's library. The copy runs
# without that finder.
WITHOUT_EDITABLE_FINDER = ("import sys\n"
                           "sys.meta_path[:] = [f for f in sys.meta_path\n"
                           "                    if not getattr(f, '__module__', '').startswith('__editable__')]\n")


def _run_in_copy(root, code):
    """`code` in a fresh interpreter that imports symfocal from the copy in `root`."""
    return subprocess.run([sys.executable, "-c", WITHOUT_EDITABLE_FINDER + code], cwd=root, capture_output=True,
                          text=True, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def _import_in_subprocess(root):
    return _run_in_copy(root, f"import symfocal\nassert symfocal.__file__.startswith({str(root)!r})\n")


def test_importing_a_build_for_another_torch_fails_clearly(tmp_path):
    copy = _package_copy(tmp_path)
    info = json.loads((copy / "_build_info.json").read_text())
    (copy / "_build_info.json").write_text(json.dumps(dict(info, torch="2.9.0")))
    result = _import_in_subprocess(tmp_path)
    assert result.returncode != 0
    assert "ImportError: symfocal" in result.stderr and "built against torch 2.9.0" in result.stderr
    assert f"torch {torch.__version__} is installed" in result.stderr and "torch==2.9.*" in result.stderr


def test_a_library_that_does_not_load_is_explained_not_just_undefined_symbol(tmp_path):
    copy = _package_copy(tmp_path)
    next(copy.glob("_C*.so")).write_bytes(b"not a shared library")
    result = _import_in_subprocess(tmp_path)
    assert result.returncode != 0
    assert "the compiled extension in" in result.stderr and "did not load" in result.stderr
    assert f"installed: torch {torch.__version__}" in result.stderr and _build.REBUILD in result.stderr


def test_without_a_built_library_the_reference_serves_with_one_warning(tmp_path):
    copy = _package_copy(tmp_path)
    for library in copy.glob("_C*.so"):
        library.unlink()
    code = ("import warnings, torch, symfocal\n"
            "x = torch.randn(1, 5, 5); y = torch.rand(1, 5, 5) < 0.5\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    a = symfocal.sym_focal_loss(x, y); b = symfocal.sym_focal_loss(x, y)\n"
            "assert not symfocal.extension_available()\n"
            "assert torch.equal(a, symfocal.reference.sym_focal_loss(x, y)), (a, b)\n"
            "assert len(w) == 1 and 'reference' in str(w[0].message), [str(m.message) for m in w]\n")
    result = _run_in_copy(tmp_path, code + f"assert symfocal.__file__.startswith({str(tmp_path)!r})\n")
    assert result.returncode == 0, result.stderr


def test_a_cuda_tensor_given_to_a_cpu_only_build_is_an_error(monkeypatch):
    monkeypatch.setattr(_ops, "has_cuda_kernels", lambda: False)
    with pytest.raises(RuntimeError) as excinfo:
        _ops.fused_serves(torch.device("cuda", 0))
    msg = str(excinfo.value)
    assert "logits are on cuda:0" in msg and "no CUDA kernels" in msg
    assert "FORCE_CUDA=1" in msg and "wheel" in msg


@pytest.mark.parametrize("capability, archs, runs", [
    ((8, 0), "8.0;9.0+PTX", True),
    ((8, 6), "8.0;9.0+PTX", True),     # sm_80 machine code runs on 8.x, x >= 0
    ((8, 9), "8.6", True),
    ((8, 0), "8.6", False),            # not on a lower minor
    ((9, 0), "8.0;9.0+PTX", True),
    ((10, 0), "8.0;9.0+PTX", True),    # PTX, compiled by the driver
    ((12, 1), "8.0 9.0+PTX", True),
    ((10, 0), "8.0;9.0", False),       # no PTX, no code of that major
    ((7, 5), "8.0;9.0+PTX", False),    # PTX does not run on an older GPU
    ((9, 0), "9.0a", True),
    ((10, 0), "9.0a", False),
])
def test_which_gpus_a_build_runs_on(capability, archs, runs):
    assert _build.runs_on(capability, archs) is runs


def test_a_gpu_without_code_is_named_with_the_fix():
    msg = _build.arch_problem((7, 5), "Tesla T4", "8.0;9.0+PTX")
    assert "Tesla T4 is sm_75" in msg and "machine code for sm_80, sm_90 and PTX for compute_90" in msg
    assert 'TORCH_CUDA_ARCH_LIST="7.5" FORCE_CUDA=1' in msg
    assert _build.arch_problem((9, 0), "NVIDIA H200", "8.0;9.0+PTX") is None


def test_the_arch_check_runs_before_a_cuda_launch(monkeypatch):
    monkeypatch.setattr(_ops, "has_cuda_kernels", lambda: True)
    monkeypatch.setattr(_build, "read_info", lambda: BUILT)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index: "Tesla T4")
    _build.cuda_device_problem.cache_clear()
    try:
        with pytest.raises(RuntimeError, match=r"Tesla T4 is sm_75.*TORCH_CUDA_ARCH_LIST=\"7.5\""):
            _ops.fused_serves(torch.device("cuda", 0))
    finally:
        _build.cuda_device_problem.cache_clear()


def test_the_build_asks_nvcc_for_exactly_the_listed_architectures():
    assert _build.gencode_flags("8.0;8.8 9.0a;12.1+PTX") == [
        "-gencode=arch=compute_80,code=sm_80", "-gencode=arch=compute_88,code=sm_88",
        "-gencode=arch=compute_90a,code=sm_90a", "-gencode=arch=compute_121,code=sm_121",
        "-gencode=arch=compute_121,code=compute_121"]
    with pytest.raises(ValueError, match="TORCH_CUDA_ARCH_LIST: 'Ampere' is not an architecture"):
        _build.gencode_flags("8.0;Ampere")
