"""torch.autograd.gradcheck of the fused op in float64, and the double-backward error."""

import pytest
import torch

import symfocal
from helpers import random_inputs


def _check(L=13, **kw):
    x, t = random_inputs((2, L, L), dtype=torch.float64, target="soft", scale=1.5)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda z: symfocal.sym_focal_loss(z, t, **kw), (x,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_each_mode(mode, reduction):
    _check(mode=mode, reduction=reduction)


@pytest.mark.parametrize("penalty", ["l1", "l2", "huber"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_each_penalty(penalty, reduction):
    # Random logits keep |x_ij - x_ji| away from 0 (l1's kink) and from huber's delta.
    _check(mode="pair", reduction=reduction, symmetry_weight=0.8, symmetry_penalty=penalty, huber_delta=0.7)


@pytest.mark.parametrize("mode", ["average", "upper"])
def test_with_lengths_mask_separation(mode):
    L = 35  # more than one tile
    mask = torch.rand(L, L) < 0.8
    _check(L=L, mode=mode, lengths=torch.tensor([35, 20]), mask=mask, min_separation=3, symmetry_weight=0.5,
           gamma=1.5, alpha=None, pos_weight=2.0, label_smoothing=0.1)


@pytest.mark.parametrize("kw", [dict(), dict(reduction="none"), dict(symmetry_weight=0.5)])
def test_double_backward_raises_clearly(kw):
    x, t = random_inputs((2, 10, 10), dtype=torch.float64)
    x.requires_grad_(True)
    with pytest.raises(RuntimeError, match="differentiable once"):
        (g,) = torch.autograd.grad(symfocal.sym_focal_loss(x, t, **kw).sum(), x, create_graph=True)
        torch.autograd.grad(g.sum(), x)
