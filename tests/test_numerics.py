"""Extreme logits and every kind of gamma: finite, and equal to the reference where it is finite."""

import pytest
import torch

import symfocal
from symfocal import reference

EXTREMES = [0.0, 1e-8, 3.0, 17.0, 40.0, 100.0, 1e4, 65504.0]


def _extreme_logits(dtype):
    vals = torch.tensor(EXTREMES + [-v for v in EXTREMES], dtype=torch.float64)
    n = vals.numel()
    # Every pair (a, b) of extremes appears as (x_ij, x_ji).
    x = vals[:, None].expand(n, n).clone()
    return torch.stack([x, x.t().contiguous()]).to(dtype)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["hard", "soft"])
def test_finite_at_extremes(gamma, mode, dtype, target):
    x = _extreme_logits(dtype).requires_grad_(True)
    t = (torch.rand(x.shape) < 0.5).double() if target == "hard" else torch.rand(x.shape, dtype=torch.float64)
    for reduction in ("mean", "none"):
        loss = symfocal.sym_focal_loss(x, t, mode=mode, gamma=gamma, reduction=reduction, symmetry_weight=0.1,
                                       symmetry_penalty="huber")
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert torch.isfinite(loss).all(), (loss, x)
        assert torch.isfinite(g).all()

        xr = x.detach().double().requires_grad_(True)
        ref = reference.sym_focal_loss(xr, t, mode=mode, gamma=gamma, reduction=reduction, symmetry_weight=0.1,
                                       symmetry_penalty="huber")
        (gr,) = torch.autograd.grad(ref.sum(), xr)
        ok = torch.isfinite(ref)
        tol = dict(atol=1e-6, rtol=1e-6) if dtype == torch.float64 else dict(atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(loss.double()[ok], ref.detach()[ok], **tol)
        ok = torch.isfinite(gr)
        torch.testing.assert_close(g.double()[ok], gr[ok], **tol)


def test_reference_itself_fails_where_we_do_not():
    """gamma < 1 and a confident, correct prediction: autograd's (1 - p_t)^gamma has an infinite slope."""
    x = torch.full((1, 2, 2), 40.0, dtype=torch.float64, requires_grad=True)
    t = torch.ones(1, 2, 2, dtype=torch.float64)
    ref = reference.sym_focal_loss(x, t, gamma=0.5, mode="none")
    (gr,) = torch.autograd.grad(ref, x)
    assert not torch.isfinite(gr).all()
    loss = symfocal.sym_focal_loss(x, t, gamma=0.5, mode="none")
    (g,) = torch.autograd.grad(loss, x)
    assert torch.isfinite(g).all()


def test_tiny_losses_keep_relative_accuracy():
    # log1p without cancellation: for z = -30, t = 0 the loss is ~ e^-30 * ...; not rounded to 0.
    x = torch.full((1, 1, 1), -30.0, dtype=torch.float64)
    t = torch.zeros(1, 1, 1)
    ours = symfocal.sym_focal_loss(x, t, gamma=0.0, alpha=None)
    expect = torch.nn.functional.softplus(x).sum()
    torch.testing.assert_close(ours, expect, rtol=1e-12, atol=0)
    x32 = x.float()
    ours32 = symfocal.sym_focal_loss(x32, t, gamma=0.0, alpha=None)
    torch.testing.assert_close(ours32.double(), expect, rtol=1e-5, atol=0)
