"""SPEC.md written as plain PyTorch: the "naive" baseline and the fallback.

This is how the loss is usually hand-rolled: full B×L×L intermediates, the
transpose read through a strided view, autograd for the backward pass. It is
the ground truth of the tests (run in float64) and what the benchmarks compare
the fused kernels against. It computes in the logits' dtype, as a user's own
code would.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ._sigmoid_checks import check_inputs
from ._softmax_checks import channel_last, check_softmax_options, check_softmax_tensors

__all__ = ["sym_focal_loss", "focal_term", "valid_cells", "sym_softmax_focal_loss", "softmax_focal_term"]


def focal_term(z, t, alpha: Optional[float], gamma: float, pos_weight: Optional[float]):
    """FL(z, t) of SPEC.md, elementwise (t already smoothed)."""
    w = 1.0 if pos_weight is None else pos_weight
    p = torch.sigmoid(z)
    ce = w * t * F.softplus(-z) + (1 - t) * F.softplus(z)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


def _admitted(logits, lengths, mask, min_separation):
    """Cells that lengths, mask and separation admit (no triangle rule), as bool."""
    *batch, L, _ = logits.shape
    idx = torch.arange(L, device=logits.device)
    ok = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
    if min_separation > 0:
        ok = ok & ((idx[:, None] - idx[None, :]).abs() >= min_separation)
    if lengths is not None:
        lengths = lengths.to(device=logits.device, dtype=torch.long)
        if lengths.dim() == 1 and len(batch) > 1 and lengths.numel() == batch[0]:
            lengths = lengths.view(-1, *([1] * (len(batch) - 1))).expand(*batch)
        lengths = lengths.reshape(*batch, 1, 1)
        ok = ok & (idx[:, None] < lengths) & (idx[None, :] < lengths)
    if mask is not None:
        ok = ok & (mask != 0)
    return ok


def valid_cells(logits, lengths=None, mask=None, min_separation=0, mode="average"):
    """The cells that count in `mode` (SPEC.md, "A cell is valid when ...")."""
    ok = _admitted(logits, lengths, mask, min_separation)
    if mode == "upper":
        ok = ok & torch.ones_like(ok).triu()
    return ok


def sym_focal_loss(
    logits,
    target,
    *,
    mode="average",
    alpha=0.25,
    gamma=2.0,
    pos_weight=None,
    label_smoothing=0.0,
    min_separation=0,
    lengths=None,
    mask=None,
    symmetry_weight=0.0,
    symmetry_penalty="l1",
    huber_delta=1.0,
    reduction="mean",
    validate=True,
):
    """Same signature and result as :func:`symfocal.sym_focal_loss`, in plain PyTorch."""
    check_inputs(logits, target, lengths, mask, mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight,
                 label_smoothing=label_smoothing, min_separation=min_separation,
                 symmetry_weight=symmetry_weight, symmetry_penalty=symmetry_penalty,
                 huber_delta=huber_delta, reduction=reduction, validate=validate)
    x = logits
    t = target.to(x.dtype)
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / 2
    xt = x.transpose(-1, -2)

    def fl(z):
        return focal_term(z, t, alpha, gamma, pos_weight)

    if mode == "average":
        cell = fl((x + xt) / 2)
    elif mode == "pair":
        cell = 0.5 * (fl(x) + fl(xt))
    else:
        cell = fl(x)

    valid = valid_cells(x, lengths, mask, min_separation, mode)
    cell = torch.where(valid, cell, torch.zeros_like(cell))
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32

    if symmetry_weight > 0:
        admitted = _admitted(x, lengths, mask, min_separation)
        pairs = admitted & admitted.transpose(-1, -2) & torch.ones_like(admitted).triu(1)
        d = x - xt
        if symmetry_penalty == "l1":
            rho = d.abs()
        elif symmetry_penalty == "l2":
            rho = d * d
        else:
            rho = F.huber_loss(d, torch.zeros_like(d), reduction="none", delta=huber_delta)
        rho = torch.where(pairs, rho, torch.zeros_like(rho))
    else:
        pairs = rho = None

    if reduction == "none":
        if rho is None:
            return cell
        half = 0.5 * symmetry_weight * rho
        return cell + half + half.transpose(-1, -2)

    focal_sum = cell.to(acc).sum()
    penalty_sum = rho.to(acc).sum() if rho is not None else focal_sum.new_zeros(())
    if reduction == "sum":
        return focal_sum + symmetry_weight * penalty_sum
    n = valid.sum()
    focal = torch.where(n > 0, focal_sum / n.clamp(min=1), torch.zeros_like(focal_sum))
    if rho is None:
        return focal
    p = pairs.sum()
    penalty = torch.where(p > 0, penalty_sum / p.clamp(min=1), torch.zeros_like(penalty_sum))
    return focal + symmetry_weight * penalty


# ---- the softmax focal loss over bins (SPEC.md, "Distogram heads") ----------


def softmax_focal_term(z, t, alpha, gamma):
    """-sum_c t_c alpha_c (1 - p_c)^gamma log p_c over the last dim (t already smoothed)."""
    lp = torch.log_softmax(z, dim=-1)
    weight = t if alpha is None else t * alpha
    if gamma:
        weight = weight * (-torch.expm1(lp)) ** gamma
    return -(weight * lp).sum(-1)


def sym_softmax_focal_loss(logits, target, *, mode="average", gamma=0.0, alpha=None, label_smoothing=0.0,
                           min_separation=0, lengths=None, mask=None, reduction="mean", normalize="cells",
                           class_dim=-1, validate=True):
    """Same signature and result as :func:`symfocal.sym_softmax_focal_loss`, in plain PyTorch:
    the symmetrized logits, their log-softmax and its gradient each a full [..., L, L, C] tensor."""
    check_softmax_options(mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                          min_separation=min_separation, reduction=reduction, normalize=normalize,
                          class_dim=class_dim)
    check_softmax_tensors(logits, target, alpha, lengths, mask, class_dim=class_dim, validate=validate)
    x, target = channel_last(logits, target, class_dim)
    C = x.shape[-1]
    if target.dtype.is_floating_point:
        t = target.to(x.dtype)
    else:
        t = F.one_hot(target.long(), C).to(x.dtype)
    if label_smoothing:
        t = t * (1 - label_smoothing) + label_smoothing / C
    a = None if alpha is None else torch.as_tensor(alpha, device=x.device).to(x.dtype)
    xt = x.transpose(-2, -3)

    def fl(z):
        return softmax_focal_term(z, t, a, gamma)

    if mode == "sum":
        cell = fl(x + xt)
    elif mode == "average":
        cell = fl((x + xt) / 2)
    elif mode == "pair":
        cell = 0.5 * (fl(x) + fl(xt))
    else:
        cell = fl(x)
    valid = valid_cells(x[..., 0], lengths, mask, min_separation, "upper" if mode == "upper" else "none")
    cell = torch.where(valid, cell, torch.zeros_like(cell))
    if reduction == "none":
        return cell
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if normalize == "cells":
        total = cell.to(acc).sum()
        if reduction == "sum":
            return total
        n = valid.sum()
        return torch.where(n > 0, total / n.clamp(min=1), torch.zeros_like(total))
    sums = cell.to(acc).flatten(-2).sum(-1).reshape(-1)
    counts = valid.flatten(-2).sum(-1).reshape(-1)
    means = torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums))
    return means.sum() if reduction == "sum" else means.sum() / max(means.numel(), 1)
