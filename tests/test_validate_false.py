"""validate=False (SPEC.md, "Unchecked values"): every value the skipped checks would have rejected gives
the result SPEC.md states, never a read or write outside the tensors. On the CPU kernels (make sanitize
runs this file under ASan and UBSan) and on the CUDA kernels, emulated: the emulator checks every global
access against the bounds of the tensor it belongs to and raises on any outside them."""

import pytest
import torch

import cuda_emulation
import symfocal
from symfocal import reference
from test_sigmoid_cuda import EMULATED
from test_softmax import random_target


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def binary(request):
    return cuda_emulation.sym_focal_loss if request.param == "emulated" else symfocal.sym_focal_loss


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def softmax(request):
    return cuda_emulation.sym_softmax_focal_loss if request.param == "emulated" else symfocal.sym_softmax_focal_loss


def _loss_and_grad(fn, x, t, **kw):
    x = x.detach().requires_grad_(True)
    out = fn(x, t, **kw)
    (gx,) = torch.autograd.grad(out, x, torch.ones_like(out))
    return out.detach(), gx


def _same(fn, x, t, unchecked: dict, checked: dict, **kw):
    """fn with the unchecked values and validate=False == fn with what SPEC.md says they mean, bitwise."""
    loss, grad = _loss_and_grad(fn, x, t, validate=False, **unchecked, **kw)
    want_loss, want_grad = _loss_and_grad(fn, x, t, **checked, **kw)
    assert torch.equal(loss, want_loss) and torch.equal(grad, want_grad)


BAD_LENGTHS = [torch.tensor([-3, 40]), torch.tensor([2**40, -(2**40)]), torch.tensor([-1, 10**12], dtype=torch.int64),
               torch.tensor([127, -128], dtype=torch.int8)]


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_binary_lengths_out_of_range_are_clamped(binary, mode):
    x = torch.randn(2, 37, 37)
    t = torch.rand(2, 37, 37) < 0.1
    for lengths in BAD_LENGTHS:
        clamped = lengths.long().clamp(0, 37)
        for reduction in ("mean", "sum", "none"):
            _same(binary, x, t, dict(lengths=lengths), dict(lengths=clamped), mode=mode, reduction=reduction,
                  symmetry_weight=0.1, normalize="sample" if reduction == "mean" else "cells")


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_binary_mask_values_other_than_0_and_1_mean_true(binary, mode):
    x = torch.randn(2, 33, 33)
    t = torch.rand(2, 33, 33) < 0.1
    raw = torch.randint(0, 256, (2, 33, 33), dtype=torch.uint8) * (torch.rand(2, 33, 33) < 0.8)
    _same(binary, x, t, dict(mask=raw), dict(mask=raw != 0), mode=mode, symmetry_weight=0.3)


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_binary_targets_out_of_range_enter_the_formula_as_given(binary, mode):
    """Targets outside [0, 1] (and not ignore_index), negative or infinite weights, a normalizer <= 0: the
    formulas of SPEC.md on the values as given (the float64 reference's result, which computes the same)."""
    x = torch.randn(2, 31, 31, dtype=torch.float64)
    t = torch.rand(2, 31, 31, dtype=torch.float64) * 3 - 1  # [-1, 2]
    weight = torch.randn(31, 31, dtype=torch.float64)
    for kw in (dict(gamma=2.0), dict(gamma=1.0, weight=weight), dict(gamma=0.0, pos_weight=3.0)):
        loss, grad = _loss_and_grad(binary, x, t, validate=False, mode=mode, **kw)
        ref_loss, ref_grad = _loss_and_grad(reference.sym_focal_loss, x, t, validate=False, mode=mode, **kw)
        torch.testing.assert_close(loss, ref_loss, rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-10)
    uint8_t = torch.randint(0, 256, (2, 31, 31), dtype=torch.uint8)  # 0..255 as targets
    loss, grad = _loss_and_grad(binary, x, uint8_t, validate=False, mode=mode, gamma=2.0)
    ref_loss, ref_grad = _loss_and_grad(reference.sym_focal_loss, x, uint8_t.double(), validate=False, mode=mode,
                                        gamma=2.0)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-10)
    # float32 logits too: the CPU's hard-target formula serves bool targets only, never uint8 ones
    x32 = x.float()
    loss, grad = _loss_and_grad(binary, x32, uint8_t, validate=False, mode=mode, gamma=2.0)
    ref_loss, ref_grad = _loss_and_grad(reference.sym_focal_loss, x32.double(), uint8_t.double(), validate=False,
                                        mode=mode, gamma=2.0)
    scale = ref_grad.abs().max()  # (1 - t) p - t (1 - p) at t = 255 cancels: float32's ulp of its terms
    torch.testing.assert_close(loss.double(), ref_loss, rtol=1e-5, atol=0)
    torch.testing.assert_close(grad.double() / scale, ref_grad / scale, rtol=0, atol=1e-5)
    for bad in (0.0, -2.0):  # a focal term of 0, no gradient from it (the penalty's stays)
        loss, grad = _loss_and_grad(binary, x, t.clamp(0, 1), validate=False, mode=mode, normalizer=bad)
        assert loss == 0 and (grad == 0).all()


@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
@pytest.mark.parametrize("kind", [torch.uint8, torch.int32, torch.int64])
def test_softmax_bins_out_of_range_are_clamped(softmax, mode, kind):
    C = 12
    x = torch.randn(2, 21, 21, C)
    t = random_target((2, 21, 21), C, torch.int64)
    big = torch.iinfo(kind).max
    low = -1 if kind != torch.uint8 else 0
    wild = torch.where(torch.rand(2, 21, 21) < 0.2, torch.tensor(big), t)
    wild = torch.where(torch.rand(2, 21, 21) < 0.2, torch.tensor(low), wild).to(kind)
    clamped = wild.long().clamp(0, C - 1)
    for reduction in ("mean", "none"):
        loss, grad = _loss_and_grad(softmax, x, wild, validate=False, mode=mode, reduction=reduction, gamma=1.0)
        want_loss, want_grad = _loss_and_grad(softmax, x, clamped, mode=mode, reduction=reduction, gamma=1.0)
        assert torch.equal(loss, want_loss) and torch.equal(grad, want_grad)


@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
def test_softmax_lengths_and_mask_out_of_range(softmax, mode):
    C = 9
    x = torch.randn(2, 19, 19, C)
    t = random_target((2, 19, 19), C, torch.int64)
    raw_mask = torch.randint(0, 256, (19, 19), dtype=torch.uint8)
    for lengths in BAD_LENGTHS:
        _same(softmax, x, t, dict(lengths=lengths, mask=raw_mask),
              dict(lengths=lengths.long().clamp(0, 19), mask=raw_mask != 0), mode=mode, normalize="sample")


@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
def test_softmax_soft_targets_and_weights_as_given(softmax, mode):
    """Soft targets that are negative or do not sum to 1, negative weights, a negative alpha: the formulas
    on the values as given, as the float64 reference computes them."""
    C = 7
    x = torch.randn(2, 17, 17, C, dtype=torch.float64)
    t = torch.randn(2, 17, 17, C, dtype=torch.float64)
    kw = dict(mode=mode, gamma=0.0, weight=torch.randn(17, 17, dtype=torch.float64),
              alpha=torch.randn(C, dtype=torch.float64))
    loss, grad = _loss_and_grad(softmax, x, t, validate=False, **kw)
    ref_loss, ref_grad = _loss_and_grad(reference.sym_softmax_focal_loss, x, t, validate=False, **kw)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-9, atol=1e-10)
