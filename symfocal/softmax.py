"""The softmax focal loss over bins, for distogram heads (SPEC.md, "Distogram heads"):
sym_softmax_focal_loss checks the arguments once and runs the fused op (or, where no
compiled kernel serves the device, the reference, with one warning). The targets from
coordinates (distogram_bins) are in bins.py."""

from __future__ import annotations

import torch

from . import _ops, reference
from .bins import distogram_bins  # noqa: F401  (symfocal.softmax.distogram_bins, as before)
from ._checks import check_normalizer
from ._softmax_checks import channel_last, check_softmax_options, check_softmax_tensors

__all__ = ["sym_softmax_focal_loss", "distogram_bins"]


def sym_softmax_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    mode: str = "average",
    gamma: float = 0.0,
    alpha=None,
    label_smoothing: float = 0.0,
    min_separation: int = 0,
    lengths: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    weight: torch.Tensor | None = None,
    ignore_index: int | None = None,
    reduction: str = "mean",
    normalize: str = "cells",
    normalizer: torch.Tensor | float | None = None,
    class_dim: int = -1,
    validate: bool = True,
) -> torch.Tensor:
    """Symmetric softmax focal loss over C bins of square maps, fused (SPEC.md).

    ``logits``: ``[..., L, L, C]`` (or ``[..., C, L, L]`` with ``class_dim=-3``), any strides.
    ``target``: bin indices ``[..., L, L]`` (uint8, int32, int64) or soft distributions shaped
    like ``logits``. ``mode``: ``"sum"`` (softmax of x + xᵀ, the AlphaFold/OpenFold distogram
    head), ``"average"`` ((x + xᵀ) / 2), ``"pair"``, ``"upper"``, ``"none"``. Per valid cell
    ``-Σ_c t_c α_c (1 - p_c)^γ log p_c``; ``gamma=0`` is cross-entropy, ``alpha`` a ``[C]``
    tensor (or list) of class weights, ``label_smoothing`` ε: t ← t (1 - ε) + ε / C.
    ``normalize="cells"``: the mean over all valid cells; ``"sample"``: each sample's mean,
    then the mean over the batch (OpenFold's ``distogram_loss``); ``normalizer`` (a number or
    one-element tensor, e.g. the valid cells summed over data-parallel ranks) replaces the count
    of ``"cells"``. ``reduction``: ``"mean"``,
    ``"sum"`` or ``"none"`` (the ``[..., L, L]`` map of per-cell losses). ``lengths``,
    ``mask``, ``min_separation`` select cells as for :func:`symfocal.sym_focal_loss`, and
    ``ignore_index`` (a bin index outside [0, C), e.g. -100, with index targets): a cell whose
    target is it does not count. ``weight`` (a float map broadcastable to ``[..., L, L]``, read in
    place) multiplies each cell's loss, not the count.
    """
    options = dict(mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                   min_separation=min_separation, reduction=reduction, normalize=normalize, class_dim=class_dim,
                   ignore_index=ignore_index)
    check_softmax_options(**options)
    check_softmax_tensors(logits, target, alpha, lengths, mask, weight, class_dim=class_dim, validate=validate,
                          ignore_index=ignore_index)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate,
                                  counts=("cells",))
    why_not = _ops.fused_serves(logits.device)
    if why_not is not None:
        _ops.warn_fallback_once(why_not)
        return reference.sym_softmax_focal_loss(logits, target, lengths=lengths, mask=mask, weight=weight,
                                                normalizer=normalizer, validate=False, **options)
    args = softmax_op_arguments(logits, target, lengths, mask, weight, normalizer, **options)
    x = args[0]
    if x.device.type == "cpu" and x.requires_grad and torch.is_grad_enabled() and reduction != "none":
        return _ops.call(torch.ops.symfocal.softmax_forward_train, *args)[0]
    return _ops.call(torch.ops.symfocal.softmax_forward, *args)[0]


def softmax_op_arguments(logits, target, lengths, mask, weight, normalizer, *, mode, gamma, alpha, label_smoothing,
                         min_separation, reduction, normalize, class_dim, ignore_index=None) -> tuple:
    """The arguments of torch.ops.symfocal.softmax_forward in schema order: the channel-last logits and
    target, class weights (float64 [C] or None), lengths, mask, weight, normalizer, the options
    (softmax_backward takes grad, these but the normalizer, then stats before the options)."""
    x, t = channel_last(logits, target, class_dim)
    class_weights = None
    if alpha is not None:
        class_weights = torch.as_tensor(alpha, device=x.device).to(torch.float64).contiguous()
    return (x, t, class_weights, lengths, mask, weight, normalizer, mode, float(gamma), float(label_smoothing),
            int(min_separation), reduction, normalize, None if ignore_index is None else int(ignore_index))
