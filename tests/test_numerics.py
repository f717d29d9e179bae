"""Extreme logits and every kind of gamma: finite, and equal to the reference where it is finite."""

import pytest
import torch

import symfocal
from helpers import grad_of
from symfocal import reference

EXTREMES = [0.0, 1e-8, 3.0, 17.0, 40.0, 100.0, 1e4, 65504.0]


# Finite logits far past float16's range (float32 and float64 only): exp's range reduction must not
# meet them (x - n ln 2 is meaningless once |x| passes 2^24: the AVX-512 exp flushes them to 0).
HUGE = [0.0, 3.0, 1e20, 1e30]


def _extreme_logits(dtype, extremes=EXTREMES):
    vals = torch.tensor(extremes + [-v for v in extremes], dtype=torch.float64)
    n = vals.numel()
    # Every pair (a, b) of extremes appears as (x_ij, x_ji).
    x = vals[:, None].expand(n, n).clone()
    return torch.stack([x, x.t().contiguous()]).to(dtype)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["hard", "soft"])
def test_finite_at_extremes(gamma, mode, dtype, target):
    _check_extremes(_extreme_logits(dtype), gamma, mode, dtype, target)


@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["hard", "soft"])
def test_finite_at_huge_logits(gamma, mode, dtype, target):
    _check_extremes(_extreme_logits(dtype, HUGE), gamma, mode, dtype, target)


def _check_extremes(x, gamma, mode, dtype, target):
    x = x.requires_grad_(True)
    # Hard targets as bool (the hard-target formula), soft ones in float64.
    t = (torch.rand(x.shape) < 0.5) if target == "hard" else torch.rand(x.shape, dtype=torch.float64)
    # Without a penalty modes none and upper stream (their own loop, AVX-512 lanes); with one every
    # mode goes by tile pairs.
    for reduction, penalty in [("mean", 0.1), ("none", 0.1), ("mean", 0.0), ("none", 0.0)]:
        loss = symfocal.sym_focal_loss(x, t, mode=mode, gamma=gamma, reduction=reduction, symmetry_weight=penalty,
                                       symmetry_penalty="huber")
        (g,) = torch.autograd.grad(loss.sum(), x)
        assert torch.isfinite(loss).all(), (loss, x)
        assert torch.isfinite(g).all()

        xr = x.detach().double().requires_grad_(True)
        ref = reference.sym_focal_loss(xr, t, mode=mode, gamma=gamma, reduction=reduction, symmetry_weight=penalty,
                                       symmetry_penalty="huber")
        (gr,) = torch.autograd.grad(ref.sum(), xr)
        rel = {torch.float16: 2e-3, torch.float32: 2e-5, torch.float64: 1e-8}[dtype]
        # The loss (map) cell by cell, down to one ulp of its largest value (what a sum of it sees).
        ok = torch.isfinite(ref)
        ulp = torch.finfo(dtype).eps * ref.detach()[ok].abs().max()
        torch.testing.assert_close(loss.double()[ok], ref.detach()[ok], atol=ulp, rtol=rel)
        # The gradient relative to its own scale: a mean's per-cell gradients are ~1/N.
        ok = torch.isfinite(gr)
        scale = gr[ok].abs().max()
        assert scale > 0
        torch.testing.assert_close(g.double()[ok] / scale, gr[ok] / scale, atol=rel, rtol=rel)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_l1_penalty_is_flat_on_exactly_symmetric_logits(dtype, mode, reduction):
    """SPEC.md: |d| has gradient 0 at d = 0, so on x == x^T the l1 penalty adds nothing."""
    a = torch.randn(2, 40, 40, dtype=torch.float64) * 3
    x = (a + a.transpose(-1, -2)).to(dtype)  # a_ij + a_ji == a_ji + a_ij exactly
    assert torch.equal(x, x.transpose(-1, -2))
    t = torch.rand(2, 40, 40) < 0.1
    g_in = torch.randn(x.shape, dtype=dtype) if reduction == "none" else None
    plain = grad_of(symfocal.sym_focal_loss, x, t, mode=mode, reduction=reduction, incoming=g_in)
    with_l1 = grad_of(symfocal.sym_focal_loss, x, t, mode=mode, reduction=reduction, incoming=plain[2],
                      symmetry_weight=0.5, symmetry_penalty="l1")
    rel = {torch.float64: 1e-12, torch.float32: 1e-6, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(with_l1[0], plain[0], atol=rel, rtol=rel)
    scale = plain[1].abs().max().double()
    torch.testing.assert_close(with_l1[1].double() / scale, plain[1].double() / scale, atol=rel, rtol=rel)


def test_reference_itself_fails_where_we_do_not():
    """gamma < 1 and a confident, correct prediction: autograd's (1 - p_t)^gamma has an infinite slope where
    1 - p_t underflows to 0 (the reference forms it as sigmoid(-z), exactly 0 past z = 745)."""
    x = torch.full((1, 2, 2), 800.0, dtype=torch.float64, requires_grad=True)
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


@pytest.mark.parametrize("target", ["bool", "soft"])
@pytest.mark.parametrize("gamma", [0.0, 2.0, 0.5])
def test_float32_cells_to_a_few_ulp_across_the_logit_range(target, gamma):
    """The CPU's inline log1p (engine/cpu/vec_math.h) and the hard-target formula, cell by cell: every
    float32 logit from -88 to 88 on a fine grid, densest around 0 and around the polynomial's switch
    (e = sqrt(2) - 1, |z| = 0.8814), against float64 on the same float32 inputs."""
    grid = torch.cat([torch.linspace(-88, 88, 40001), torch.linspace(-1.2, 1.2, 20001),
                      torch.logspace(-30, 0, 2001), -torch.logspace(-30, 0, 2001)])
    x = grid.float()
    n = int(x.numel() ** 0.5) + 1
    x = torch.cat([x, torch.zeros(n * n - x.numel())]).reshape(1, n, n)
    y = torch.rand(x.shape) < 0.5
    t = y if target == "bool" else torch.where(y, 0.9, 0.05)
    kw = dict(mode="none", gamma=gamma, alpha=0.25, reduction="none")
    loss, grad, g = grad_of(symfocal.sym_focal_loss, x, t, incoming=torch.ones_like(x), **kw)
    xr = x.double().requires_grad_(True)
    ref = reference.sym_focal_loss(xr, t.double() if target == "soft" else t, **kw)
    (gr,) = torch.autograd.grad(ref, xr, torch.ones_like(ref))
    # A few float32 ulp relative, down to the smallest normal float32 (what the result can hold). A soft
    # target's gradient (1 - t) p - t (1 - p) cancels where p nears t: there an ulp of its terms (<= 1).
    eps, tiny = torch.finfo(torch.float32).eps, torch.finfo(torch.float32).tiny
    floor = {"loss": 16 * tiny, "gradient": 16 * tiny if target == "bool" else 8 * eps}
    for what, ours, theirs in (("loss", loss, ref.detach()), ("gradient", grad, gr)):
        err = (ours.double() - theirs).abs()
        bound = 8 * eps * theirs.abs() + floor[what]
        worst = (err / bound).max()
        assert worst <= 1, f"{what}: {worst:.2f} of the bound at x = {x.reshape(-1)[(err / bound).argmax()]}"
