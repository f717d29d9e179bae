"""sym_focal_loss: checks the arguments once and runs the fused op (or, where
no compiled kernel serves the device, the reference, with one warning)."""

from __future__ import annotations

import torch

from . import _ops, reference
from ._sigmoid_checks import check_inputs, check_normalizer

__all__ = ["sym_focal_loss", "num_valid_cells", "num_positives"]


def sym_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: str = "average",
    alpha: float | torch.Tensor | None = 0.25,
    gamma: float = 2.0,
    pos_weight: float | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    min_separation: int = 0,
    lengths: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = None,
    symmetry_weight: float = 0.0,
    symmetry_penalty: str = "l1",
    huber_delta: float = 1.0,
    reduction: str = "mean",
    normalize: str = "cells",
    normalizer: torch.Tensor | float | None = None,
    validate: bool = True,
) -> torch.Tensor:
    """Symmetric sigmoid focal loss over square maps ``[..., L, L]``, fused.

    See SPEC.md for the exact definition. ``mode`` is one of ``"average"``
    (focal loss of the symmetrized logits), ``"pair"`` (both halves against
    the target), ``"upper"`` (upper triangle only) and ``"none"`` (plain
    sigmoid focal loss). ``alpha`` and ``pos_weight`` may be ``[C]`` tensors, one value
    a channel of ``[..., C, L, L]`` maps. ``lengths`` ([B] or ``logits.shape[:-2]``) and
    ``mask`` (broadcastable bool/uint8) select the cells that count, as does
    ``min_separation`` (|i - j| >= k), and ``ignore_index`` (an int such as -1: a cell whose target
    equals it is dropped as a mask would drop it; int8 or float targets hold a negative one).
    ``weight`` (a float map broadcastable to logits, read in place) multiplies each cell's loss, not
    the count a mean divides by. ``symmetry_weight`` > 0 adds
    ``symmetry_penalty`` ("l1", "l2", "huber") of x_ij - x_ji. ``reduction``
    is "mean", "sum" or "none" (a per-cell map). A mean divides the focal sum
    by ``normalize``: ``"cells"`` (the valid cells), ``"positives"`` (max(1,
    the valid cells' positive target mass), RetinaNet's normalization) or
    ``"sample"`` (each sample's own mean, then the mean over samples);
    ``normalizer`` (a number or one-element tensor, e.g. a positive count
    all-reduced over data-parallel ranks) replaces the count of "cells" or
    "positives". ``validate=False`` skips the
    checks that look at every element (they never run under torch.compile or
    CUDA graph capture).
    """
    options = dict(mode=mode, alpha=alpha, gamma=gamma, pos_weight=pos_weight,
                   label_smoothing=label_smoothing, min_separation=min_separation,
                   symmetry_weight=symmetry_weight, symmetry_penalty=symmetry_penalty,
                   huber_delta=huber_delta, reduction=reduction, normalize=normalize, ignore_index=ignore_index)
    check_inputs(logits, target, lengths, mask, weight, validate=validate, **options)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate)
    why_not = _ops.fused_serves(logits.device)
    if why_not is not None:
        _ops.warn_fallback_once(why_not)
        return reference.sym_focal_loss(logits, target, lengths=lengths, mask=mask, weight=weight,
                                        normalizer=normalizer, validate=False, **options)
    args = op_arguments(logits, target, lengths, mask, normalizer, weight=weight, **options)
    if _train_on_cpu(logits, reduction, symmetry_weight):
        return _ops.call(torch.ops.symfocal.forward_train, *args)[0]
    return _ops.call(torch.ops.symfocal.forward, *args)[0]


def op_arguments(logits, target, lengths, mask, normalizer=None, *, weight=None, mode, alpha, gamma, pos_weight,
                 label_smoothing, min_separation, symmetry_weight, symmetry_penalty, huber_delta, reduction,
                 normalize="cells", ignore_index=None) -> tuple:
    """The arguments of torch.ops.symfocal.forward in schema order: logits, target, lengths, mask,
    weight, normalizer, the per-channel tensors, the options (backward takes grad, then all of these but
    the normalizer, with stats before the options). A tensor alpha or pos_weight ([C]) goes as a
    float64 per-channel tensor, its scalar option then unused."""
    channel_alpha, channel_pos_weight = (v.to(device=logits.device, dtype=torch.float64).contiguous()
                                         if isinstance(v, torch.Tensor) else None for v in (alpha, pos_weight))
    alpha = None if channel_alpha is not None else alpha
    pos_weight = None if channel_pos_weight is not None else pos_weight
    return (logits, target, lengths, mask, weight, normalizer, channel_alpha, channel_pos_weight, mode,
            None if alpha is None else float(alpha),
            float(gamma), 1.0 if pos_weight is None else float(pos_weight), float(label_smoothing),
            int(min_separation), float(symmetry_weight), symmetry_penalty, float(huber_delta), reduction,
            normalize, None if ignore_index is None else float(ignore_index))


def _train_on_cpu(logits, reduction, symmetry_weight) -> bool:
    """On the CPU, arithmetic is the cost: when a gradient will be needed, the forward
    pass computes it too (sharing the exp and log) and backward only scales it."""
    return (logits.device.type == "cpu" and logits.requires_grad and torch.is_grad_enabled()
            and reduction != "none" and symmetry_weight == 0)


def num_valid_cells(logits: torch.Tensor, *, lengths: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None, min_separation: int = 0,
                    mode: str = "average") -> torch.Tensor:
    """N of SPEC.md: how many cells count in ``mode`` (an int64 tensor on the logits' device).

    With ``reduction="sum"`` and N summed over data-parallel ranks, a loss can be
    normalized by the global count instead of each rank's own (see README).
    """
    return reference.valid_cells(logits, lengths, mask, min_separation, mode).sum()


def num_positives(target: torch.Tensor, *, lengths: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                  min_separation: int = 0, mode: str = "average", ignore_index: int | None = None) -> torch.Tensor:
    """The positive target mass over the cells that count in ``mode`` (float64, on the target's device):
    what ``normalize="positives"`` divides by (before max(1, ·)). Summed over data-parallel ranks and
    passed as ``normalizer``, it normalizes every rank by the global count.
    """
    valid = reference.valid_cells(target, lengths, mask, min_separation, mode)
    if ignore_index is not None:
        valid = valid & (target != ignore_index)
    return torch.where(valid, target.to(torch.float64), torch.zeros((), dtype=torch.float64,
                                                                     device=target.device)).sum()
