"""SymFocalLoss: the nn.Module form of sym_focal_loss."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_options
from .functional import sym_focal_loss

__all__ = ["SymFocalLoss"]

# The options of sym_focal_loss other than the tensors, with their defaults.
_DEFAULTS = dict(mode="average", alpha=0.25, gamma=2.0, pos_weight=None, label_smoothing=0.0,
                 min_separation=0, symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                 reduction="mean", validate=True)


class SymFocalLoss(nn.Module):
    """Fused symmetric focal loss; options as :func:`symfocal.sym_focal_loss`.

    >>> criterion = SymFocalLoss(mode="average", min_separation=6)
    >>> loss = criterion(logits, target, lengths=lengths)

    The options travel with ``state_dict()`` (as the module's extra state), so that a
    checkpoint restores the loss it was trained with; ``repr`` is a constructor call.
    """

    def __init__(self, *, mode="average", alpha=0.25, gamma=2.0, pos_weight=None, label_smoothing=0.0,
                 min_separation=0, symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                 reduction="mean", validate=True):
        super().__init__()
        self._set_options(dict(mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight,
                               label_smoothing=label_smoothing, min_separation=min_separation,
                               symmetry_weight=symmetry_weight, symmetry_penalty=symmetry_penalty,
                               huber_delta=huber_delta, reduction=reduction, validate=validate))

    def _set_options(self, options: dict) -> None:
        unknown = set(options) - set(_DEFAULTS)
        if unknown:
            raise ValueError(f"SymFocalLoss has no option {', '.join(sorted(unknown))}")
        options = {**_DEFAULTS, **options}
        check_options(**{k: v for k, v in options.items() if k != "validate"})
        for name, value in options.items():
            setattr(self, name, value)

    def options(self) -> dict:
        """Every option, by name (what the constructor takes)."""
        return {name: getattr(self, name) for name in _DEFAULTS}

    def forward(self, logits: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        return sym_focal_loss(logits, target, lengths=lengths, mask=mask, **self.options())

    def get_extra_state(self) -> dict:
        return self.options()

    def set_extra_state(self, state: dict) -> None:
        self._set_options(dict(state))

    def extra_repr(self) -> str:
        # The mode, then every option that differs from its default: eval(repr(m)) rebuilds m.
        shown = [f"mode={self.mode!r}"]
        for name, value in self.options().items():
            if name != "mode" and value != _DEFAULTS[name]:
                shown.append(f"{name}={value!r}")
        return ", ".join(shown)
