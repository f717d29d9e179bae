"""SymFocalLoss and SymSoftmaxFocalLoss: the nn.Module forms of the two losses."""

from __future__ import annotations

import torch
from torch import nn

from ._sigmoid_checks import check_options
from ._softmax_checks import check_softmax_options
from .softmax import sym_softmax_focal_loss
from .sigmoid import sym_focal_loss

__all__ = ["SymFocalLoss", "SymSoftmaxFocalLoss"]

# The options of sym_focal_loss other than the tensors, with their defaults.
_DEFAULTS = dict(mode="average", alpha=0.25, gamma=2.0, pos_weight=None, label_smoothing=0.0,
                 min_separation=0, symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                 reduction="mean", normalize="cells", ignore_index=None, validate=True)


class SymFocalLoss(nn.Module):
    """Fused symmetric focal loss; options as :func:`symfocal.sym_focal_loss`.

    >>> criterion = SymFocalLoss(mode="average", min_separation=6)
    >>> loss = criterion(logits, target, lengths=lengths)
    >>> retinanet = SymFocalLoss(mode="none", normalize="positives")  # the focal sum over the positives
    >>> loss = retinanet(logits, target, normalizer=positives_over_all_ranks)  # DDP: one global count
    >>> esm = SymFocalLoss(mode="none", ignore_index=-1)  # int8 targets, -1 where unknown
    >>> loss = esm(logits, target, weight=pair_weights)  # each cell's loss times its weight

    The options travel with ``state_dict()`` (as the module's extra state), so that a
    checkpoint restores the loss it was trained with; ``repr`` is a constructor call.
    """

    def __init__(self, *, mode="average", alpha=0.25, gamma=2.0, pos_weight=None, label_smoothing=0.0,
                 min_separation=0, symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                 reduction="mean", normalize="cells", ignore_index=None, validate=True):
        super().__init__()
        self._set_options(dict(mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight,
                               label_smoothing=label_smoothing, min_separation=min_separation,
                               symmetry_weight=symmetry_weight, symmetry_penalty=symmetry_penalty,
                               huber_delta=huber_delta, reduction=reduction, normalize=normalize,
                               ignore_index=ignore_index, validate=validate))

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
                mask: torch.Tensor | None = None, normalizer: torch.Tensor | float | None = None,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        return sym_focal_loss(logits, target, lengths=lengths, mask=mask, weight=weight, normalizer=normalizer,
                              **self.options())

    def get_extra_state(self) -> dict:
        return self.options()

    def set_extra_state(self, state: dict) -> None:
        self._set_options(dict(state))

    def extra_repr(self) -> str:
        # The mode, then every option that differs from its default: eval(repr(m)) rebuilds m.
        shown = [f"mode={self.mode!r}"]
        for name, value in self.options().items():
            if name != "mode" and (isinstance(value, torch.Tensor) or value != _DEFAULTS[name]):
                shown.append(f"{name}={value!r}")
        return ", ".join(shown)


_SOFTMAX_DEFAULTS = dict(mode="average", gamma=0.0, alpha=None, label_smoothing=0.0, min_separation=0,
                         reduction="mean", normalize="cells", class_dim=-1, ignore_index=None, validate=True)


class SymSoftmaxFocalLoss(nn.Module):
    """Fused symmetric softmax focal loss over bins (distogram heads); options as
    :func:`symfocal.sym_softmax_focal_loss`.

    >>> criterion = SymSoftmaxFocalLoss(mode="sum", normalize="sample")  # OpenFold's distogram loss
    >>> loss = criterion(logits, distogram_bins(coords), mask=pair_mask)

    ``alpha`` (class weights, a tensor or list) is kept as a buffer, so that it follows
    ``.to(device)``; the other options travel with ``state_dict()`` as extra state.
    """

    def __init__(self, *, mode="average", gamma=0.0, alpha=None, label_smoothing=0.0, min_separation=0,
                 reduction="mean", normalize="cells", class_dim=-1, ignore_index=None, validate=True):
        super().__init__()
        self.register_buffer("alpha", None if alpha is None else torch.as_tensor(alpha, dtype=torch.float64))
        self._set_options(dict(mode=mode, gamma=gamma, label_smoothing=label_smoothing,
                               min_separation=min_separation, reduction=reduction, normalize=normalize,
                               class_dim=class_dim, ignore_index=ignore_index, validate=validate))

    def _set_options(self, options: dict) -> None:
        names = set(_SOFTMAX_DEFAULTS) - {"alpha"}
        unknown = set(options) - names
        if unknown:
            raise ValueError(f"SymSoftmaxFocalLoss has no option {', '.join(sorted(unknown))}")
        options = {k: v for k, v in _SOFTMAX_DEFAULTS.items() if k != "alpha"} | options
        check_softmax_options(alpha=self.alpha, **{k: v for k, v in options.items() if k != "validate"})
        for name, value in options.items():
            setattr(self, name, value)

    def options(self) -> dict:
        """Every option but alpha, by name."""
        return {name: getattr(self, name) for name in _SOFTMAX_DEFAULTS if name != "alpha"}

    def forward(self, logits: torch.Tensor, target: torch.Tensor, lengths: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, normalizer: torch.Tensor | float | None = None,
                weight: torch.Tensor | None = None) -> torch.Tensor:
        return sym_softmax_focal_loss(logits, target, lengths=lengths, mask=mask, weight=weight, alpha=self.alpha,
                                      normalizer=normalizer, **self.options())

    def get_extra_state(self) -> dict:
        return self.options()

    def set_extra_state(self, state: dict) -> None:
        self._set_options(dict(state))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The checkpoint's class weights (or none), whatever this module was made with.
        saved = state_dict.get(prefix + "alpha")
        self.alpha = None if saved is None else torch.empty_like(saved, device=self.alpha.device
                                                                  if self.alpha is not None else saved.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        shown = [f"mode={self.mode!r}"]
        for name, value in self.options().items():
            if name != "mode" and value != _SOFTMAX_DEFAULTS[name]:
                shown.append(f"{name}={value!r}")
        return ", ".join(shown)
