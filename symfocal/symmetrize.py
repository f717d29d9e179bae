"""Inference-time symmetrization of a predicted map."""

from __future__ import annotations

import torch

from .metrics import best_threshold

__all__ = ["symmetrize", "better_half"]


def symmetrize(logits: torch.Tensor, how: str = "average") -> torch.Tensor:
    """A symmetric map from ``[..., L, L]`` logits.

    ``"average"``: (x + xᵀ) / 2, what mode "average" trains. ``"upper"``:
    the upper triangle (diagonal included) mirrored below it, what mode
    "upper" trains. ``"lower"``: the lower triangle mirrored above it.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dim() < 2 or logits.shape[-1] != logits.shape[-2]:
        raise ValueError(f"logits must have shape [..., L, L], got {tuple(logits.shape)}")
    xt = logits.transpose(-1, -2)
    if how == "average":
        return (logits + xt) / 2
    if how == "upper":
        return torch.triu(logits) + torch.triu(logits, 1).transpose(-1, -2)
    if how == "lower":
        return torch.tril(logits) + torch.tril(logits, -1).transpose(-1, -2)
    raise ValueError(f"how must be one of 'average', 'upper', 'lower', got {how!r}")


def better_half(logits: list[torch.Tensor], pairs: list, *, thresholds=None, min_separation: int = 1) -> str:
    """``"upper"`` or ``"lower"``: which triangle, mirrored, predicts the true pairs better (the
    higher mean per-sequence base-pair F1 at its best threshold) on held-out data; a model
    trained with mode "pair" learns both halves, and at test time keeps the one chosen here.
    ``logits`` holds one ``[L, L]`` map per sequence, ``pairs`` its true pairs (i, j)."""
    scores = {}
    for how in ("upper", "lower"):
        probs = [torch.sigmoid(symmetrize(x.detach().float(), how)) for x in logits]
        scores[how] = best_threshold(probs, pairs, thresholds=thresholds, min_separation=min_separation)[1]
    return "upper" if scores["upper"] >= scores["lower"] else "lower"
