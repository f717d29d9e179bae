"""The binary (sigmoid) focal loss of SPEC.md in plain PyTorch."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .._sigmoid_checks import check_inputs, check_normalizer
from .cells import _admitted, valid_cells


def focal_term(z, t, alpha: Optional[float], gamma: float, pos_weight: Optional[float]):
    """FL(z, t) of SPEC.md, elementwise (t already smoothed)."""
    w = 1.0 if pos_weight is None else pos_weight
    # softplus(z) = log(1 + e^z) as logaddexp(z, 0): accurate at every z (F.softplus is linear past z = 20,
    # a relative error of 1e-10 there), its gradient sigmoid(z); 1 - p_t from sigmoid(z) and sigmoid(-z),
    # neither formed as 1 - p.
    zero = torch.zeros_like(z)
    ce = w * t * torch.logaddexp(-z, zero) + (1 - t) * torch.logaddexp(z, zero)
    one_minus_p_t = torch.sigmoid(z) * (1 - t) + torch.sigmoid(-z) * t
    loss = ce * one_minus_p_t ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return loss


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
    weight=None,
    ignore_index=None,
    symmetry_weight=0.0,
    symmetry_penalty="l1",
    huber_delta=1.0,
    reduction="mean",
    normalize="cells",
    normalizer=None,
    validate=True,
):
    """Same signature and result as :func:`symfocal.sym_focal_loss`, in plain PyTorch."""
    check_inputs(logits, target, lengths, mask, weight, mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight,
                 label_smoothing=label_smoothing, min_separation=min_separation,
                 symmetry_weight=symmetry_weight, symmetry_penalty=symmetry_penalty,
                 huber_delta=huber_delta, reduction=reduction, normalize=normalize, ignore_index=ignore_index,
                 validate=validate)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate)
    x = logits
    t = target.to(x.dtype)
    if ignore_index is not None:
        # An ignored cell is a masked one; its target read as 0 keeps its (dropped) term finite.
        ignored = target == ignore_index
        mask = ~ignored if mask is None else (mask != 0) & ~ignored
        t = torch.where(ignored, torch.zeros_like(t), t)
    # Per-channel alpha / pos_weight ([C] tensors): broadcast over the [..., C, L, L] maps.
    if isinstance(alpha, torch.Tensor):
        alpha = alpha.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1)
    if isinstance(pos_weight, torch.Tensor):
        pos_weight = pos_weight.to(device=x.device, dtype=x.dtype).reshape(-1, 1, 1)
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

    if weight is not None:
        cell = cell * weight.to(x.dtype)
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

    if normalize == "sample":
        focal = _sample_means(cell.to(acc), valid, reduction)
    elif reduction == "sum":
        focal = cell.to(acc).sum()
    elif normalizer is not None:
        focal = _safe_divide(cell.to(acc).sum(), normalizer.to(acc).reshape(()))
    elif normalize == "positives":  # RetinaNet's: over max(1, the positive mass of the valid cells)
        positives = torch.where(valid, target.to(acc), torch.zeros((), dtype=acc)).sum()
        focal = cell.to(acc).sum() / positives.clamp(min=1)
    else:
        focal = _safe_divide(cell.to(acc).sum(), valid.sum())
    if rho is None:
        return focal
    penalty_sum = rho.to(acc).sum()
    penalty = penalty_sum if reduction == "sum" else _safe_divide(penalty_sum, pairs.sum())
    return focal + symmetry_weight * penalty


def _safe_divide(total, count):
    """total / count, and 0 where count is not > 0 (SPEC.md: never NaN)."""
    ok = count > 0
    return torch.where(ok, total / torch.where(ok, count, torch.ones_like(count)), torch.zeros_like(total))


def _sample_means(cell, valid, reduction):
    """normalize="sample": each sample's (all batch dims flattened) mean over its valid cells, then their
    mean (reduction "sum": their sum)."""
    sums = cell.flatten(-2).sum(-1).reshape(-1)  # (not reshape(-1, L, L): ambiguous where L == 0)
    counts = valid.flatten(-2).sum(-1).reshape(-1)
    means = _safe_divide(sums, counts)
    return means.sum() if reduction == "sum" else means.sum() / max(means.numel(), 1)
