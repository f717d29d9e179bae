"""Smoke suite for an installed symfocal (a wheel), run from outside the source tree
by scripts/wheel_check.sh. SYMFOCAL_SOURCE_TREE names the checkout the import must
not come from; SYMFOCAL_EXPECT is "cuda" or "cpu", the kind of build installed."""

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import symfocal
from symfocal import _build, _ops, reference

EXPECT = os.environ.get("SYMFOCAL_EXPECT", "cpu")


def test_imported_from_the_installation_not_the_source_tree():
    source_package = Path(os.environ["SYMFOCAL_SOURCE_TREE"]).resolve() / "symfocal"
    installed = Path(symfocal.__file__).resolve().parent
    assert installed != source_package, f"symfocal was imported from the source tree: {installed}"
    assert installed.parent.name == "site-packages", installed


def test_the_extension_loaded_and_is_the_expected_kind():
    info = _ops.build_info()
    assert info["loaded"], info
    assert info["with_cuda"] == (EXPECT == "cuda"), info
    assert info["built_with_torch"].split("+")[0] == torch.__version__.split("+")[0]
    label = "+cu" + (torch.version.cuda or "").replace(".", "") if EXPECT == "cuda" else "+cpu"
    assert importlib.metadata.version("symfocal") == symfocal.__version__ + label
    assert _build.read_info()["symfocal"] == symfocal.__version__ + label


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_loss_and_gradient_match_the_reference(mode):
    logits = torch.randn(2, 37, 37, dtype=torch.float64, requires_grad=True)
    target = torch.rand(2, 37, 37) < 0.05
    lengths = torch.tensor([37, 20])
    options = dict(mode=mode, lengths=lengths, min_separation=2, symmetry_weight=0.1)
    loss = symfocal.sym_focal_loss(logits, target, **options)
    (grad,) = torch.autograd.grad(loss, logits)
    want = reference.sym_focal_loss(logits, target, **options)
    (want_grad,) = torch.autograd.grad(want, logits)
    torch.testing.assert_close(loss, want, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(grad, want_grad, rtol=1e-9, atol=1e-12)


def test_info_lists_what_was_built():
    out = subprocess.run([sys.executable, "-m", "symfocal.info"], capture_output=True, text=True, check=True).stdout
    assert re.search(r"symfocal\s+" + re.escape(importlib.metadata.version("symfocal")), out), out
    archs = _build.read_info()["cuda_archs"]
    if EXPECT == "cuda":
        assert archs and archs in out, out
    else:
        assert archs is None and "CPU-only build" in out, out


def _cuobjdump():
    """The toolkit's cuobjdump, else the copy that torch's triton carries."""
    candidates = [shutil.which("cuobjdump"), Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "cuobjdump")]
    try:
        import triton
        candidates.append(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump")
    except ImportError:
        pass
    return next((str(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.mark.skipif(EXPECT != "cuda", reason="a CPU-only build has no GPU code")
def test_machine_code_for_every_architecture_requested():
    tool = _cuobjdump()
    assert tool, "cuobjdump not found (set CUDA_HOME)"
    library = str(next(Path(symfocal.__file__).parent.glob("_C*.so")))
    elf = subprocess.run([tool, "--list-elf", library], capture_output=True, text=True, check=True).stdout
    ptx = subprocess.run([tool, "--list-ptx", library], capture_output=True, text=True, check=True).stdout
    sass, ptx_wanted = _build.parse_archs(_build.read_info()["cuda_archs"])
    assert sass
    for major, minor, suffix in sass:
        assert re.search(rf"\.sm_{major}{minor}{suffix}\.cubin", elf), f"no machine code for sm_{major}{minor}:\n{elf}"
    for major, minor in ptx_wanted:
        assert re.search(rf"\.sm_{major}{minor}\.ptx", ptx), f"no PTX for compute_{major}{minor}:\n{ptx}"
