"""Random inputs and the comparison against the float64 reference."""

import torch

import symfocal
from symfocal import reference

OPTION_KEYS = ("mode", "alpha", "gamma", "pos_weight", "label_smoothing", "min_separation", "lengths", "mask",
               "symmetry_weight", "symmetry_penalty", "huber_delta", "reduction")


def random_inputs(shape, *, dtype=torch.float32, target="bool", density=0.05, device="cpu", scale=3.0,
                  symmetric_target=True):
    """Logits ~ N(0, scale^2) and a sparse target (symmetric by default, as in real maps)."""
    x = (torch.randn(shape, dtype=torch.float64) * scale).to(dtype)
    y = torch.rand(shape) < density
    if symmetric_target:
        y = y | y.transpose(-1, -2)
    if target == "bool":
        t = y
    elif target == "uint8":
        t = y.to(torch.uint8)
    elif target == "soft":
        t = torch.where(y, torch.rand(shape) * 0.5 + 0.5, torch.rand(shape) * 0.3).to(dtype)
    else:
        t = y.to(target)
    return x.to(device), t.to(device)


def padded_samples(x, pad):
    """[B, L, L] x with its samples `pad` elements apart beyond L * L in one storage: rows
    contiguous, the batch stride L * L + pad (odd for an odd pad)."""
    B, L, _ = x.shape
    storage = torch.zeros(B * (L * L + pad), dtype=x.dtype, device=x.device)
    view = storage.as_strided((B, L, L), (L * L + pad, L, 1))
    view.copy_(x)
    return view


def strided_views(x, t):
    """Views of [B, L, L] inputs (L >= 72) in the layouts the kernels treat differently."""
    return [
        (x.transpose(-1, -2), t.transpose(-1, -2)),  # columns strided
        (x[::2, 3:60, 3:60], t[::2, 3:60, 3:60]),  # rows start unaligned
        (x[:, 4:68, 4:68], t[:, 4:68, 4:68]),  # a view whose rows stay aligned: wide accesses
        (x[:, 1:65, 1:65], t[:, 1:65, 1:65]),  # L divisible by 4, base unaligned
        (x[:1, :64, :64].expand(3, 64, 64), t[:1, :64, :64].expand(3, 64, 64)),  # stride-0 batch
        # rows aligned within a sample, samples 1 or 2 cells off: 1-cell or 2-cell accesses
        (padded_samples(x[:, :64, :64], 1), padded_samples(t[:, :64, :64], 1)),
        (padded_samples(x[:, :64, :64], 2), padded_samples(t[:, :64, :64], 2)),
    ]


def grad_of(loss_fn, x, t, *, incoming=None, **kw):
    """(loss, d loss / d x, incoming gradient) for loss_fn(x, t, **kw); the incoming
    gradient is random unless given."""
    # A detached alias, not a clone: a clone of a view with gaps (a slice) is contiguous, and the
    # kernels must meet the caller's strides and storage offset.
    x = x.detach().requires_grad_(True)
    out = loss_fn(x, t, **kw)
    if incoming is not None:
        g = incoming
    else:
        g = torch.randn_like(out) if out.dim() else torch.ones_like(out) * 1.7
    (gx,) = torch.autograd.grad(out, x, g)
    return out.detach(), gx, g


def compare_with_reference(x, t, *, atol=None, rtol=None, fused=symfocal.sym_focal_loss, incoming=None, **kw):
    """fused (the library's loss unless told) on x, in its own dtype, against the reference
    on float64 copies of the same inputs, both given the same incoming gradient."""
    fused_loss, fused_grad, g = grad_of(fused, x, t, incoming=incoming, **kw)
    x64 = x.detach().double()
    t64 = t.double() if t.dtype.is_floating_point else t
    kw64 = dict(kw)
    ref_x = x64.clone().requires_grad_(True)
    ref_loss = reference.sym_focal_loss(ref_x, t64, **kw64)
    (ref_grad,) = torch.autograd.grad(ref_loss, ref_x, g.double())
    # Half-precision results are rounded to their dtype (half an ulp: 2^-11 for float16, 2^-9 for
    # bfloat16, relative); measured worst cases, gradient over its largest value: 6e-4 and 5e-3.
    if atol is None:
        atol = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[x.dtype]
    if rtol is None:
        rtol = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 2e-3, torch.bfloat16: 1e-2}[x.dtype]
    assert fused_loss.dtype == (torch.float64 if x.dtype == torch.float64 else
                                (x.dtype if kw.get("reduction") == "none" else torch.float32))
    assert fused_grad.dtype == x.dtype and fused_grad.shape == x.shape
    assert torch.isfinite(fused_loss).all() and torch.isfinite(fused_grad).all()
    torch.testing.assert_close(fused_loss.double(), ref_loss.detach(), atol=atol, rtol=rtol)
    # Gradients are small per cell (a mean divides by N); compare relative to their scale.
    scale = ref_grad.abs().amax().clamp(min=1e-30) if ref_grad.numel() else torch.tensor(1.0)
    torch.testing.assert_close(fused_grad.double() / scale, ref_grad / scale, atol=atol, rtol=rtol)
    return fused_loss, fused_grad


def assert_same_loss_and_grad(loss_fn, x, t, first: dict, second: dict):
    """loss_fn with options `first` and with options `second` give bitwise the same loss and
    gradient, for every reduction (the "none" map with a random incoming gradient)."""
    for reduction in ("mean", "sum", "none"):
        g = torch.randn(x.shape, dtype=x.dtype, device=x.device) if reduction == "none" else None
        a = grad_of(loss_fn, x, t, incoming=g, reduction=reduction, **first)
        b = grad_of(loss_fn, x, t, incoming=g if g is not None else a[2], reduction=reduction, **second)
        assert torch.equal(a[0], b[0]), (reduction, a[0], b[0])
        assert torch.equal(a[1], b[1]), reduction
