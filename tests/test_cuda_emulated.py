"""The CUDA kernels, compiled as host code and run by tests/cuda_emulator, against
the float64 reference: their tiling, shared-memory transposes, wide and
single-cell accesses, and reductions, checked where no GPU is present. The
emulator also fails a launch on any access outside the launch's tensors, any
misaligned wide access and any barrier that not every thread reaches.
tests/test_cuda.py runs the same kinds of checks on a real GPU.
"""

import itertools

import pytest
import torch

import cuda_emulation
import symfocal
from helpers import compare_with_reference, grad_of, random_inputs, strided_views
from symfocal import reference

pytestmark = pytest.mark.skipif(cuda_emulation.cuda_include_dir() is None,
                                reason="needs CUDA's headers (cuda_fp16.h) to compile the kernels as host code")
MODES = ["average", "pair", "upper", "none"]
REDUCTIONS = ["mean", "sum", "none"]
emulated = cuda_emulation.sym_focal_loss


def check(x, t, **kw):
    return compare_with_reference(x, t, fused=emulated, **kw)


@pytest.mark.parametrize("mode,reduction", list(itertools.product(MODES, REDUCTIONS)))
@pytest.mark.parametrize("L", [45, 64])  # single-cell and wide accesses
def test_every_mode_and_reduction(mode, reduction, L):
    x, t = random_inputs((3, L, L), dtype=torch.float64)
    check(x, t, mode=mode, reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("L", [70, 68])
def test_all_options_together(mode, reduction, L):
    x, t = random_inputs((2, 3, L, L), dtype=torch.float64, target="soft")
    lengths = torch.tensor([[L, 31, 7], [1, 0, 44]])
    mask = torch.rand(L, L) < 0.85
    check(x, t, mode=mode, reduction=reduction, alpha=0.4, gamma=1.5, pos_weight=3.0, label_smoothing=0.1,
          min_separation=3, lengths=lengths, mask=mask, symmetry_weight=0.7, symmetry_penalty="huber",
          huber_delta=0.8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["bool", "uint8", "soft"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 0.5])
def test_dtypes_and_gammas(dtype, target, gamma):
    # L = 68: whole tiles and a last tile one wide group across.
    x, t = random_inputs((2, 68, 68), dtype=dtype, target=target)
    for reduction in REDUCTIONS:
        check(x, t, mode="pair", reduction=reduction, gamma=gamma, symmetry_weight=0.2)


@pytest.mark.parametrize("L", [0, 1, 4, 31, 32, 33, 36, 97, 100])
def test_sizes(L):
    x, t = random_inputs((2, L, L), dtype=torch.float64)
    for reduction in REDUCTIONS:
        check(x, t, mode="average", reduction=reduction, symmetry_weight=0.3)


def test_empty_batch():
    x, t = random_inputs((0, 40, 40), dtype=torch.float32)
    for reduction in REDUCTIONS:
        check(x, t, mode="average", reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous(mode):
    base, tb = random_inputs((4, 72, 72), dtype=torch.float32, target="soft")
    for x, t in strided_views(base, tb):
        check(x, t, mode=mode, symmetry_weight=0.4)
        check(x, t, mode=mode, reduction="none")


def test_broadcast_target_and_mask():
    x, _ = random_inputs((3, 2, 64, 64), dtype=torch.bfloat16)
    t = (torch.rand(64, 64) < 0.05).expand(3, 2, 64, 64)
    mask = (torch.rand(2, 1, 64) < 0.9).expand(2, 64, 64)
    for mode in MODES:
        check(x, t, mode=mode, mask=mask, symmetry_weight=0.1)


@pytest.mark.parametrize("layout", ["expanded", "transposed"])
def test_strided_incoming_gradient(layout):
    """reduction "none": the gradient that comes in may have any strides (sum().backward() expands one)."""
    x, t = random_inputs((2, 64, 64), dtype=torch.float32)
    x64 = x.double()
    g = torch.randn(2, 64, 64)
    g = torch.ones(()).expand(2, 64, 64) if layout == "expanded" else g.transpose(-1, -2)
    for mode in MODES:
        xe = x.clone().requires_grad_(True)
        (ge,) = torch.autograd.grad(emulated(xe, t, mode=mode, reduction="none", symmetry_weight=0.3), xe, g)
        xr = x64.clone().requires_grad_(True)
        (gr,) = torch.autograd.grad(reference.sym_focal_loss(xr, t, mode=mode, reduction="none",
                                                             symmetry_weight=0.3), xr, g.double())
        torch.testing.assert_close(ge.double(), gr, atol=2e-5, rtol=2e-4)


def test_wide_accesses_where_rows_allow():
    """Aligned contiguous rows are read and written four cells at a time; others cell by cell."""
    cuda_emulation.access_counts()
    x, t = random_inputs((2, 64, 64), dtype=torch.bfloat16)
    grad_of(emulated, x, t, mode="average", reduction="none")
    wide, single = cuda_emulation.access_counts()
    cells = x.numel()
    assert wide > 0 and single < cells / 16, (wide, single)

    storage = torch.randn(2 * 64 * 64 + 1).to(torch.bfloat16)
    shifted = storage[1:].view(2, 64, 64)  # contiguous, but the base is one element off alignment
    emulated(shifted, t, mode="average")
    wide, single = cuda_emulation.access_counts()
    # The target is still read four cells at a time; the logits one cell at a time.
    assert wide > 0 and single >= cells, (wide, single)


def test_matches_cpu_kernel():
    x, t = random_inputs((3, 77, 77), dtype=torch.float32, target="soft")
    for mode, reduction in itertools.product(MODES, REDUCTIONS):
        kw = dict(mode=mode, reduction=reduction, symmetry_weight=0.25, gamma=1.5)
        torch.manual_seed(1)  # the same incoming gradient for both
        le, ge, _ = grad_of(emulated, x, t, **kw)
        torch.manual_seed(1)
        lc, gc, _ = grad_of(symfocal.sym_focal_loss, x, t, **kw)
        torch.testing.assert_close(le, lc, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(ge, gc, atol=1e-6, rtol=1e-4)
