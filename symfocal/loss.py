"""SymFocalLoss: the nn.Module form of sym_focal_loss."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_options
from .functional import sym_focal_loss

__all__ = ["SymFocalLoss"]


class SymFocalLoss(nn.Module):
    """Fused symmetric focal loss; options as :func:`symfocal.sym_focal_loss`.

    >>> criterion = SymFocalLoss(mode="average", min_separation=6)
    >>> loss = criterion(logits, target, lengths=lengths)
    """

    def __init__(self, *, mode="average", alpha=0.25, gamma=2.0, pos_weight=None, label_smoothing=0.0,
                 min_separation=0, symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                 reduction="mean", validate=True):
        super().__init__()
        check_options(mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight,
                      label_smoothing=label_smoothing, min_separation=min_separation,
                      symmetry_weight=symmetry_weight, symmetry_penalty=symmetry_penalty,
                      huber_delta=huber_delta, reduction=reduction)
        self.mode = mode
        self.alpha = alpha
        self.gamma = gamma
        self.pos_weight = pos_weight
        self.label_smoothing = label_smoothing
        self.min_separation = min_separation
        self.symmetry_weight = symmetry_weight
        self.symmetry_penalty = symmetry_penalty
        self.huber_delta = huber_delta
        self.reduction = reduction
        self.validate = validate

    _OPTIONS = ("mode", "alpha", "gamma", "pos_weight", "label_smoothing", "min_separation",
                "symmetry_weight", "symmetry_penalty", "huber_delta", "reduction", "validate")
    _DEFAULTS = dict(mode="average", alpha=0.25, gamma=2.0, pos_weight=None, label_smoothing=0.0,
                     min_separation=0, symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                     reduction="mean", validate=True)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return sym_focal_loss(logits, target, lengths=lengths, mask=mask,
                              **{name: getattr(self, name) for name in self._OPTIONS})

    def extra_repr(self) -> str:
        # Every option that differs from the default, plus the mode.
        shown = [f"mode={self.mode!r}"]
        for name in self._OPTIONS[1:]:
            value = getattr(self, name)
            if value != self._DEFAULTS[name]:
                shown.append(f"{name}={value!r}")
        return ", ".join(shown)
