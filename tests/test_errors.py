"""Every error of SPEC.md's Errors section: the exception type and a message naming the argument."""

import math

import pytest
import torch

import symfocal
from symfocal import reference


def _xt(shape=(2, 8, 8)):
    return torch.randn(shape), torch.rand(shape) < 0.1


LOSSES = [symfocal.sym_focal_loss, reference.sym_focal_loss]


@pytest.fixture(params=LOSSES, ids=["fused", "reference"])
def loss_fn(request):
    return request.param


@pytest.mark.parametrize("case,exc,name", [
    (lambda x, t: (torch.randn(8), torch.rand(8) < 0.5), ValueError, "logits"),        # rank
    (lambda x, t: (torch.randn(2, 8, 7), torch.rand(2, 8, 7) < 0.5), ValueError, "square"),
    (lambda x, t: (x, t[:, :4, :4]), ValueError, "target"),                           # shape mismatch
    (lambda x, t: (x.int(), t), TypeError, "logits"),                                  # dtype
    (lambda x, t: (x, t.int()), TypeError, "target"),
    (lambda x, t: (x, t.float().requires_grad_(True)), ValueError, "target"),          # needs no grad
    (lambda x, t: ([1.0], t), TypeError, "logits"),
])
def test_tensor_errors(loss_fn, case, exc, name):
    x, t = _xt()
    x, t = case(x, t)
    with pytest.raises(exc, match=name):
        loss_fn(x, t)


def test_target_values_checked_only_when_validating(loss_fn):
    x, _ = _xt()
    for bad in (torch.full(x.shape, 1.5), torch.full(x.shape, -0.1), torch.full(x.shape, math.nan)):
        with pytest.raises(ValueError, match="target"):
            loss_fn(x, bad)
    with pytest.raises(ValueError, match="target"):
        loss_fn(x, torch.full(x.shape, 2, dtype=torch.uint8))
    loss_fn(x, torch.full(x.shape, 1.5), validate=False)  # skipped: no error, no sync


@pytest.mark.parametrize("kw,exc,name", [
    (dict(mode="diagonal"), ValueError, "mode"),
    (dict(reduction="max"), ValueError, "reduction"),
    (dict(symmetry_penalty="l3", symmetry_weight=1.0), ValueError, "symmetry_penalty"),
    (dict(alpha=1.5), ValueError, "alpha"),
    (dict(alpha=-0.1), ValueError, "alpha"),
    (dict(alpha=math.nan), ValueError, "alpha"),
    (dict(alpha="0.25"), TypeError, "alpha"),
    (dict(gamma=-1.0), ValueError, "gamma"),
    (dict(gamma=math.nan), ValueError, "gamma"),
    (dict(pos_weight=0.0), ValueError, "pos_weight"),
    (dict(pos_weight=-2.0), ValueError, "pos_weight"),
    (dict(pos_weight=math.nan), ValueError, "pos_weight"),
    (dict(label_smoothing=1.0), ValueError, "label_smoothing"),
    (dict(label_smoothing=-0.1), ValueError, "label_smoothing"),
    (dict(label_smoothing=math.nan), ValueError, "label_smoothing"),
    (dict(min_separation=-1), ValueError, "min_separation"),
    (dict(min_separation=1.5), TypeError, "min_separation"),
    (dict(symmetry_weight=-0.5), ValueError, "symmetry_weight"),
    (dict(symmetry_weight=math.nan), ValueError, "symmetry_weight"),
    (dict(huber_delta=0.0), ValueError, "huber_delta"),
    (dict(huber_delta=math.nan), ValueError, "huber_delta"),
])
def test_option_errors(loss_fn, kw, exc, name):
    x, t = _xt()
    with pytest.raises(exc, match=name):
        loss_fn(x, t, **kw)


def test_option_errors_at_module_construction():
    with pytest.raises(ValueError, match="gamma"):
        symfocal.SymFocalLoss(gamma=-1)
    with pytest.raises(ValueError, match="mode"):
        symfocal.SymFocalLoss(mode="lower")


@pytest.mark.parametrize("mask,exc", [
    (torch.ones(3, 8, 8, dtype=torch.bool), ValueError),     # does not broadcast to (2, 8, 8)
    (torch.ones(8, 9, dtype=torch.bool), ValueError),
    (torch.ones(8, 8), TypeError),                           # float mask
])
def test_mask_errors(loss_fn, mask, exc):
    x, t = _xt()
    with pytest.raises(exc, match="mask"):
        loss_fn(x, t, mask=mask)


@pytest.mark.parametrize("lengths,exc", [
    (torch.tensor([8, 8, 8]), ValueError),           # wrong shape
    (torch.tensor([[8, 8]]), ValueError),
    (torch.tensor([8.0, 8.0]), TypeError),           # dtype
    (torch.tensor([9, 8]), ValueError),              # > L
    (torch.tensor([-1, 8]), ValueError),             # < 0
    ([8, 8], TypeError),
])
def test_lengths_errors(loss_fn, lengths, exc):
    x, t = _xt()
    with pytest.raises(exc, match="lengths"):
        loss_fn(x, t, lengths=lengths)


def test_lengths_out_of_range_is_safe_without_validation():
    # validate=False skips the range check; the kernels clamp, never read out of bounds.
    x, t = _xt()
    a = symfocal.sym_focal_loss(x, t, lengths=torch.tensor([100, -3]), validate=False)
    b = symfocal.sym_focal_loss(x, t, lengths=torch.tensor([8, 0]))
    assert torch.equal(a, b)


def test_device_mismatch_on_meta(loss_fn):
    # Tensors on different devices, without a GPU: the meta device against the CPU
    # (tests/test_sigmoid_cuda.py repeats this with a GPU).
    x, t = _xt()
    with pytest.raises(ValueError, match="target"):
        loss_fn(x.to("meta"), t)
    with pytest.raises(ValueError, match="mask"):
        loss_fn(x.to("meta"), t.to("meta"), mask=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="lengths"):
        loss_fn(x.to("meta"), t.to("meta"), lengths=torch.tensor([8, 8]))


def test_op_called_directly_checks_too():
    x, t = _xt()
    with pytest.raises(ValueError, match="mode"):
        torch.ops.symfocal.forward(x, t, None, None, None, None, None, None, "bogus", 0.25, 2.0, 1.0, 0.0, 0, 0.0, "l1", 1.0, "mean",
                                   "cells", None)
    with pytest.raises(ValueError, match="target"):
        torch.ops.symfocal.forward(x, t[:1], None, None, None, None, None, None, "pair", 0.25, 2.0, 1.0, 0.0, 0, 0.0, "l1", 1.0,
                                   "mean", "cells", None)
    with pytest.raises(ValueError, match="gamma"):
        torch.ops.symfocal.forward(x, t, None, None, None, None, None, None, "pair", 0.25, -2.0, 1.0, 0.0, 0, 0.0, "l1", 1.0,
                                   "mean", "cells", None)
    with pytest.raises(ValueError, match="normalize must be one of"):
        torch.ops.symfocal.forward(x, t, None, None, None, None, None, None, "pair", 0.25, 2.0, 1.0, 0.0, 0, 0.0, "l1", 1.0,
                                   "mean", "bogus", None)
    with pytest.raises(ValueError, match="normalizer replaces the count"):
        torch.ops.symfocal.forward(x, t, None, None, None, torch.tensor(2.0), None, None, "pair", 0.25, 2.0, 1.0, 0.0, 0, 0.0,
                                   "l1", 1.0, "sum", "cells", None)
