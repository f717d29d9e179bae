"""The softmax focal loss over bins of SPEC.md ("Distogram heads") in plain PyTorch."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import check_normalizer
from .._softmax_checks import channel_last, check_softmax_options, check_softmax_tensors
from .cells import valid_cells


def softmax_focal_term(z, t, alpha, gamma):
    """-sum_c t_c alpha_c (1 - p_c)^gamma log p_c over the last dim (t already smoothed)."""
    lp = torch.log_softmax(z, dim=-1)
    weight = t if alpha is None else t * alpha
    if gamma:
        weight = weight * (-torch.expm1(lp)) ** gamma
    return -(weight * lp).sum(-1)


def sym_softmax_focal_loss(logits, target, *, mode="average", gamma=0.0, alpha=None, label_smoothing=0.0,
                           min_separation=0, lengths=None, mask=None, weight=None, ignore_index=None,
                           reduction="mean", normalize="cells", normalizer=None, class_dim=-1, validate=True):
    """Same signature and result as :func:`symfocal.sym_softmax_focal_loss`, in plain PyTorch:
    the symmetrized logits, their log-softmax and its gradient each a full [..., L, L, C] tensor."""
    check_softmax_options(mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                          min_separation=min_separation, reduction=reduction, normalize=normalize,
                          class_dim=class_dim, ignore_index=ignore_index)
    check_softmax_tensors(logits, target, alpha, lengths, mask, weight, class_dim=class_dim, validate=validate,
                          ignore_index=ignore_index)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate,
                                  counts=("cells",))
    x, target = channel_last(logits, target, class_dim)
    C = x.shape[-1]
    if target.dtype.is_floating_point:
        t = target.to(x.dtype)
    else:
        index = target.long()
        if ignore_index is not None:
            # An ignored cell is a masked one (its one-hot row, of bin 0, is dropped with it).
            ignored = index == ignore_index
            mask = ~ignored if mask is None else (mask != 0) & ~ignored
            index = torch.where(ignored, torch.zeros_like(index), index)
        t = F.one_hot(index, C).to(x.dtype)
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
    if weight is not None:
        cell = cell * weight.to(x.dtype)
    valid = valid_cells(x[..., 0], lengths, mask, min_separation, "upper" if mode == "upper" else "none")
    cell = torch.where(valid, cell, torch.zeros_like(cell))
    if reduction == "none":
        return cell
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if normalize == "cells":
        total = cell.to(acc).sum()
        if reduction == "sum":
            return total
        n = valid.sum() if normalizer is None else normalizer.to(acc).reshape(())
        return torch.where(n > 0, total / torch.where(n > 0, n, torch.ones_like(n)), torch.zeros_like(total))
    sums = cell.to(acc).flatten(-2).sum(-1).reshape(-1)
    counts = valid.flatten(-2).sum(-1).reshape(-1)
    means = torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums))
    return means.sum() if reduction == "sum" else means.sum() / max(means.numel(), 1)
