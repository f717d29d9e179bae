"""Metrics that contact-map prediction reports, on CPU or GPU tensors.

All work on batches of square maps ``[B, L, L]`` of scores (logits or
probabilities: only their order matters for precision, and thresholds apply
to probabilities), count each unordered pair i < j once, and honour
``lengths`` (cells beyond a sample's length do not exist) and
``min_separation`` (pairs with j - i below it are ignored).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SEPARATION_RANGES", "top_precision", "f1_mcc", "symmetry_error"]

# Sequence-separation ranges of contact prediction: j - i in [low, high].
SEPARATION_RANGES = {"short": (6, 11), "medium": (12, 23), "long": (24, None)}


def _pairs(L: int, device, low: int = 1, high: int | None = None):
    """Indices (i, j) of the pairs i < j with low <= j - i <= high."""
    i, j = torch.triu_indices(L, L, offset=max(low, 1), device=device)
    if high is not None:
        keep = (j - i) <= high
        i, j = i[keep], j[keep]
    return i, j


def _lengths_of(scores, lengths):
    B, L = scores.shape[0], scores.shape[-1]
    if lengths is None:
        return [L] * B
    return [int(v) for v in lengths.reshape(-1).tolist()]


def top_precision(scores: torch.Tensor, target: torch.Tensor, *, lengths: torch.Tensor | None = None,
                  min_separation: int = 0, ranges: dict | None = None, fractions=(1, 2, 5)) -> dict:
    """Precision of the top L/f predicted pairs in each separation range (f in ``fractions``).

    Returns ``{"long P@L/5": value, ...}``, each the mean over samples of
    (true contacts among the ceil(len / f) highest-scored pairs) / ceil(len / f).
    Pairs closer than ``min_separation`` are left out of every range.
    """
    ranges = SEPARATION_RANGES if ranges is None else ranges
    scores, target = scores.detach(), target.detach()
    out = {}
    for name, (low, high) in ranges.items():
        for f in fractions:
            values = []
            for b, n in enumerate(_lengths_of(scores, lengths)):
                k = math.ceil(n / f)
                i, j = _pairs(n, scores.device, max(low, min_separation), high)
                if k == 0 or i.numel() == 0:
                    values.append(0.0)
                    continue
                top = torch.topk(scores[b, i, j].float(), min(k, i.numel())).indices
                values.append(float((target[b, i[top], j[top]] != 0).sum()) / k)
            out[f"{name} P@L/{f}" if f != 1 else f"{name} P@L"] = sum(values) / max(len(values), 1)
    return out


def f1_mcc(probs: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5,
           lengths: torch.Tensor | None = None, min_separation: int = 0) -> dict:
    """F1 and Matthews correlation of ``probs >= threshold`` over the valid pairs i < j."""
    tp = fp = fn = tn = 0
    probs, target = probs.detach(), target.detach()
    for b, n in enumerate(_lengths_of(probs, lengths)):
        i, j = _pairs(n, probs.device, max(min_separation, 1))
        pred = probs[b, i, j] >= threshold
        true = target[b, i, j] != 0
        tp += int((pred & true).sum())
        fp += int((pred & ~true).sum())
        fn += int((~pred & true).sum())
        tn += int((~pred & ~true).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / denom if denom else 0.0
    return {"F1": f1, "MCC": mcc, "TP": tp, "FP": fp, "FN": fn, "TN": tn}


def symmetry_error(probs: torch.Tensor, *, lengths: torch.Tensor | None = None,
                   min_separation: int = 0) -> float:
    """Mean |p_ij - p_ji| over the valid pairs i < j (0 for a symmetric map)."""
    total, count = 0.0, 0
    probs = probs.detach()
    for b, n in enumerate(_lengths_of(probs, lengths)):
        i, j = _pairs(n, probs.device, max(min_separation, 1))
        total += float((probs[b, i, j].double() - probs[b, j, i].double()).abs().sum())
        count += i.numel()
    return total / count if count else 0.0
