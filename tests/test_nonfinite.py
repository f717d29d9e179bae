"""Non-finite logits (SPEC.md, "Non-finite logits"), both loss families, the CPU kernels and the CUDA
kernels (emulated): a cell that is not read changes nothing whatever it holds; a NaN that is read
propagates to the loss and to exactly the gradients that read it; an infinite logit gives the limits
of the loss (0 or +inf) and of its gradient (finite), as the float64 reference at a logit of +-30."""

import pytest
import torch

import cuda_emulation
import symfocal
from symfocal import reference
from test_sigmoid_cuda import EMULATED
from test_softmax import random_target

INF = float("inf")
NAN = float("nan")


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def binary(request):
    return cuda_emulation.sym_focal_loss if request.param == "emulated" else symfocal.sym_focal_loss


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def softmax(request):
    return cuda_emulation.sym_softmax_focal_loss if request.param == "emulated" else symfocal.sym_softmax_focal_loss


def _loss_and_grad(fn, x, t, incoming=None, **kw):
    x = x.detach().requires_grad_(True)
    out = fn(x, t, **kw)
    g = incoming if incoming is not None else torch.ones_like(out)
    (gx,) = torch.autograd.grad(out, x, g)
    return out.detach(), gx


def _admitted(B, L, lengths, min_separation):
    i = torch.arange(L).view(L, 1)
    j = torch.arange(L).view(1, L)
    inside = (i < lengths.view(B, 1, 1)) & (j < lengths.view(B, 1, 1))
    return inside & ((i - j).abs() >= min_separation)


def _poison(x, where, generator):
    """x with NaN, +inf or -inf (at random) wherever `where` holds (over x's leading cell dims)."""
    values = torch.tensor([NAN, INF, -INF], dtype=x.dtype)[torch.randint(0, 3, where.shape, generator=generator)]
    if x.dim() > where.dim():  # bins: every bin of the cell
        where = where.unsqueeze(-1).expand(x.shape)
        values = values.unsqueeze(-1).expand(x.shape)
    return torch.where(where, values, x)


def _binary_setup(mode, B=2, L=41, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, L, L, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(B, L, L, generator=g) < 0.08).float()
    t = torch.maximum(t, t.transpose(-1, -2))
    t = torch.where(torch.rand(B, L, L, generator=g) < 0.1, torch.tensor(-1.0), t)  # ignored cells
    lengths = torch.tensor([L, L - 9])
    mask = torch.rand(L, L, generator=g) < 0.85  # not symmetric: a counted cell may have a masked mirror
    weight = torch.rand(B, L, L, generator=g) * (torch.rand(B, L, L, generator=g) < 0.9)
    kw = dict(mode=mode, lengths=lengths, mask=mask, min_separation=2, ignore_index=-1, weight=weight)
    admitted = _admitted(B, L, lengths, 2) & mask & (t != -1)
    triangle = torch.ones(L, L, dtype=torch.bool) if mode != "upper" else torch.ones(L, L).triu().bool()
    counted = admitted & triangle & (weight != 0)
    return x, t, kw, admitted, counted, g


def _binary_read(mode, admitted, counted, with_penalty):
    """The cells whose logits a result reads: a counted cell's own; in modes average and pair its
    mirror's too; with a penalty, both cells of every pair it counts (both admitted, off the diagonal)."""
    read = counted | counted.transpose(-1, -2) if mode in ("average", "pair") else counted.clone()
    if with_penalty:
        pairs = admitted & admitted.transpose(-1, -2)
        pairs &= ~torch.eye(admitted.shape[-1], dtype=torch.bool)
        read |= pairs
    return read


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
@pytest.mark.parametrize("penalty", [0.0, 0.2])
def test_binary_cells_not_read_change_nothing(binary, mode, dtype, penalty):
    x, t, kw, admitted, counted, g = _binary_setup(mode)
    read = _binary_read(mode, admitted, counted, penalty > 0)
    assert (~read).sum() > 100  # padding, masked and ignored cells, the lower triangle of mode upper
    x = x.to(dtype)
    poisoned = _poison(x, ~read, g)
    for reduction, normalize in (("mean", "cells"), ("sum", "cells"), ("none", "cells"), ("mean", "positives"),
                                 ("mean", "sample")):
        incoming = torch.randn(x.shape, generator=g).to(dtype) if reduction == "none" else None
        opts = dict(kw, reduction=reduction, normalize=normalize, symmetry_weight=penalty, gamma=1.5)
        clean_loss, clean_grad = _loss_and_grad(binary, x, t, incoming, **opts)
        loss, grad = _loss_and_grad(binary, poisoned, t, incoming, **opts)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (reduction, normalize)
        assert torch.equal(loss, clean_loss), (reduction, normalize)
        assert torch.equal(grad, clean_grad), (reduction, normalize)
        assert (grad[~read] == 0).all()


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_binary_nan_that_is_read_propagates(binary, mode):
    x, t, kw, admitted, counted, g = _binary_setup(mode)
    x = x.float()
    b, i, j = [int(v) for v in counted.nonzero()[7]]
    x[b, i, j] = NAN
    loss, grad = _loss_and_grad(binary, x, t, **kw)
    assert torch.isnan(loss)
    # The gradients that read the NaN: its own cell's, and in mode average (s = (x_ij + x_ji) / 2) its
    # mirror's; in mode pair the mirror's logit meets the NaN cell's target in a softmax of its own.
    expected = torch.zeros_like(grad, dtype=torch.bool)
    expected[b, i, j] = True
    if mode == "average":
        expected[b, j, i] = True
    assert torch.equal(torch.isnan(grad), expected)


def _limit(x):
    """+-inf -> +-30: where every term is within 1e-12 (relative) of its limit in float64 (exp(-30) = 9e-14;
    further out 1 - p rounds to 0 in the reference, whose autograd then meets 0 * inf in (1 - p_t)^gamma)."""
    return torch.where(torch.isinf(x), torch.sign(x) * 30.0, x.double())


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
@pytest.mark.parametrize("target", ["hard", "soft"])
def test_binary_infinite_logits_give_the_limits(binary, mode, gamma, target):
    g = torch.Generator().manual_seed(1)
    B, L = 2, 36
    y = (torch.rand(B, L, L, generator=g) < 0.1).float()
    y = torch.maximum(y, y.transpose(-1, -2))
    t = y if target == "hard" else torch.where(y > 0, 0.9, 0.05)
    x = torch.randn(B, L, L, generator=g, dtype=torch.float64) * 2
    # Infinite logits in symmetric pairs (mode average's s = (x_ij + x_ji) / 2 is then infinite too):
    # agreeing with the target (+inf at a positive, -inf at a negative) and, separately, disagreeing.
    pick = torch.rand(B, L, L, generator=g) < 0.15
    pick = pick & pick.transpose(-1, -2)
    agree = torch.where(y > 0, INF, -INF)
    options = dict(mode=mode, gamma=gamma, alpha=0.25, pos_weight=3.0)
    for dtype in (torch.float32, torch.float64, torch.float16):
        xa = torch.where(pick, agree, x).to(dtype)
        loss, grad = _loss_and_grad(binary, xa, t, **options)
        ref_x = _limit(xa).requires_grad_(True)
        ref_loss = reference.sym_focal_loss(ref_x, t.double(), **options)
        (ref_grad,) = torch.autograd.grad(ref_loss, ref_x)
        assert torch.isfinite(grad).all()
        if target == "hard":
            tol = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 3e-3}[dtype]
            torch.testing.assert_close(loss.double(), ref_loss.detach(), rtol=tol, atol=tol)
            assert (grad[pick] == 0).all()  # the limit of the gradient where the logit agrees
        else:
            assert loss == INF  # a soft target is never reached
        scale = ref_grad.abs().amax()
        tol = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 3e-3}[dtype]
        torch.testing.assert_close(grad.double() / scale, ref_grad / scale, rtol=tol, atol=tol)

        xd = torch.where(pick, -agree, x).to(dtype)  # disagreeing: +inf loss, the limit of the gradient
        loss, grad = _loss_and_grad(binary, xd, t, **options)
        assert loss == INF
        ref_x = _limit(xd).requires_grad_(True)
        (ref_grad,) = torch.autograd.grad(reference.sym_focal_loss(ref_x, t.double(), **options), ref_x)
        assert torch.isfinite(grad).all()
        scale = ref_grad.abs().amax()
        torch.testing.assert_close(grad.double() / scale, ref_grad / scale, rtol=tol, atol=tol)


# ---- the softmax loss over bins ----------------------------------------------------------------

def _softmax_setup(mode, kind, B=2, L=23, C=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = torch.randn(B, L, L, C, generator=g, dtype=torch.float64) * 2
    t = random_target((B, L, L), C, kind)
    lengths = torch.tensor([L, L - 6])
    mask = torch.rand(L, L, generator=g) < 0.85
    weight = torch.rand(B, L, L, generator=g) * (torch.rand(B, L, L, generator=g) < 0.9)
    kw = dict(mode=mode, lengths=lengths, mask=mask, min_separation=1, weight=weight)
    admitted = _admitted(B, L, lengths, 1) & mask
    if kind != "soft":
        t = torch.where(torch.rand(B, L, L, generator=g) < 0.1, torch.tensor(-100, dtype=t.dtype), t)
        kw["ignore_index"] = -100
        admitted &= t != -100
    triangle = torch.ones(L, L, dtype=torch.bool) if mode != "upper" else torch.ones(L, L).triu().bool()
    counted = admitted & triangle & (weight != 0)
    return x, t, kw, counted, g


@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
@pytest.mark.parametrize("kind", [torch.int64, "soft"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_softmax_cells_not_read_change_nothing(softmax, mode, kind, dtype):
    x, t, kw, counted, g = _softmax_setup(mode, kind)
    read = counted | counted.transpose(-1, -2) if mode in ("sum", "average", "pair") else counted
    assert (~read).sum() > 50
    x = x.to(dtype)
    poisoned = _poison(x, ~read, g)
    for reduction, normalize, gamma in (("mean", "cells", 0.0), ("sum", "cells", 2.0), ("none", "cells", 1.0),
                                        ("mean", "sample", 0.7)):
        incoming = torch.randn(x.shape[:-1], generator=g).to(dtype) if reduction == "none" else None
        opts = dict(kw, reduction=reduction, normalize=normalize, gamma=gamma)
        clean_loss, clean_grad = _loss_and_grad(softmax, x, t, incoming, **opts)
        loss, grad = _loss_and_grad(softmax, poisoned, t, incoming, **opts)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (reduction, normalize)
        assert torch.equal(loss, clean_loss), (reduction, normalize)
        assert torch.equal(grad, clean_grad), (reduction, normalize)
        assert (grad[~read] == 0).all()


@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
@pytest.mark.parametrize("value", [NAN, INF])
def test_softmax_nan_or_plus_inf_that_is_read_propagates(softmax, mode, value):
    """NaN, and +inf (the kernels take no limit of inf - inf; torch.log_softmax neither), in one bin of a
    counted cell: a loss that is NaN (+inf: not finite) and non-finite gradients in the rows that read it."""
    x, t, kw, counted, g = _softmax_setup(mode, torch.int64)
    x = x.float()
    b, i, j = [int(v) for v in counted.nonzero()[5]]
    x[b, i, j, 3] = value
    loss, grad = _loss_and_grad(softmax, x, t, **kw)
    assert torch.isnan(loss) if value != INF else not torch.isfinite(loss)
    rows = ~torch.isfinite(grad).all(-1)
    expected = torch.zeros_like(rows)
    expected[b, i, j] = True
    if mode in ("sum", "average"):  # one softmax of s (x_ij + x_ji); in mode pair the mirror has its own
        expected[b, j, i] = True
    assert torch.equal(rows, expected)


@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
@pytest.mark.parametrize("kind", [torch.int64, "soft"])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_softmax_bins_at_minus_inf_give_the_limits(softmax, mode, kind, gamma):
    """A bin ruled out by a logit of -inf (a common way to forbid one): p = 0 there, the loss and gradient
    those of the reference at -30; where it is a cell's target bin, an infinite loss and a finite gradient."""
    g = torch.Generator().manual_seed(2)
    torch.manual_seed(2)
    B, L, C = 2, 19, 8
    x = torch.randn(B, L, L, C, generator=g, dtype=torch.float64) * 2
    t = random_target((B, L, L), C, kind if kind == "soft" else torch.int64)
    if kind == "soft":  # no mass on the ruled-out bins
        ruled = torch.rand(B, L, L, C, generator=g) < 0.3
        ruled = ruled & ruled.transpose(1, 2)
        t = torch.where(ruled, 0.0, t)
        t = t / t.sum(-1, keepdim=True)
    else:
        ruled = torch.rand(B, L, L, C, generator=g) < 0.3
        ruled = ruled & ruled.transpose(1, 2)
        hot = torch.nn.functional.one_hot(t, C) > 0
        ruled &= ~hot & ~hot.transpose(1, 2)  # neither cell's target (they meet one softmax in sum and average)
    options = dict(mode=mode, gamma=gamma, alpha=torch.rand(C, generator=g, dtype=torch.float64) + 0.2)
    for dtype in (torch.float32, torch.float64):
        xr = torch.where(ruled, -INF, x).to(dtype)
        loss, grad = _loss_and_grad(softmax, xr, t, **options)
        ref_x = _limit(xr).requires_grad_(True)
        ref_loss = reference.sym_softmax_focal_loss(ref_x, t, **options)
        (ref_grad,) = torch.autograd.grad(ref_loss, ref_x)
        tol = {torch.float64: 1e-9, torch.float32: 2e-4}[dtype]
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        torch.testing.assert_close(loss.double(), ref_loss.detach(), rtol=tol, atol=tol)
        scale = ref_grad.abs().amax()
        torch.testing.assert_close(grad.double() / scale, ref_grad / scale, rtol=tol, atol=tol)
        assert (grad[ruled] == 0).all()
    if kind == "soft":
        return
    # The target bin itself at -inf (both cells of a pair: s is -inf there in modes sum and average).
    target_bin = torch.nn.functional.one_hot(t, C).bool()
    hit = (torch.rand(B, L, L, generator=g) < 0.2)
    hit = (hit & hit.transpose(1, 2)).unsqueeze(-1) & target_bin & target_bin.transpose(1, 2)
    xt = torch.where(hit, -INF, x).float()
    loss, grad = _loss_and_grad(softmax, xt, t, **options)
    assert loss == INF
    ref_x = _limit(xt).requires_grad_(True)
    (ref_grad,) = torch.autograd.grad(reference.sym_softmax_focal_loss(ref_x, t, **options), ref_x)
    assert torch.isfinite(grad).all()
    scale = ref_grad.abs().amax()
    torch.testing.assert_close(grad.double() / scale, ref_grad / scale, rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("isa", ["default", "avx2"])
def test_a_nan_logit_propagates_in_the_narrower_kernels(isa):
    """The same NaN rule in the portable and AVX2 CPU kernels (a subprocess: ATen reads
    ATEN_CPU_CAPABILITY once). ATen's exp_u20 clamps a NaN argument to a finite bound, and the
    hard-target formula then weighs the cell's term by an exact 0: a float32 NaN logit came out as a
    finite loss in the AVX2 stream until sf_exp carried NaN (engine/cpu/vec_math.h)."""
    import os
    import platform
    import subprocess
    import sys
    from symfocal import _build
    if isa != "default" and platform.machine() != "x86_64":
        pytest.skip(f"{isa} kernels are x86's")
    built = (_build.read_info() or {}).get("cpu_isas", ["portable", "avx2", "avx512"])
    if isa != "default" and isa not in built:
        pytest.skip(f"this build has the {', '.join(built)} CPU kernels")
    code = (
        "import torch, symfocal; from symfocal import _ops;"
        f"assert _ops.build_info()['cpu_isa'] == '{isa}', _ops.build_info();"
        "g = torch.Generator().manual_seed(3);"
        "x = torch.randn(1, 9, 9, 6, generator=g); x[0, 2, 5, 1] = float('nan');"
        "t = torch.randint(0, 6, (1, 9, 9), generator=g);"
        "assert all(torch.isnan(symfocal.sym_softmax_focal_loss(x, t, mode=m)) for m in ['sum', 'none']);"
        "y = torch.randn(1, 9, 9, generator=g); y[0, 2, 5] = float('nan');"
        "assert torch.isnan(symfocal.sym_focal_loss(y, torch.rand(1, 9, 9, generator=g) < 0.3, mode='none'));"
        "print('ok')"
    )
    env = dict(os.environ, ATEN_CPU_CAPABILITY=isa)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
