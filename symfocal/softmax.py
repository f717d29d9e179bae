"""The softmax focal loss over bins, for distogram heads (SPEC.md, "Distogram heads"):
sym_softmax_focal_loss checks the arguments once and runs the fused op (or, where no
compiled kernel serves the device, the reference, with one warning); distogram_bins
makes a head's integer targets from coordinates, as OpenFold bins them."""

from __future__ import annotations

import torch

from . import _ops, reference
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
    ``mask``, ``min_separation`` select cells as for :func:`symfocal.sym_focal_loss`.
    """
    options = dict(mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                   min_separation=min_separation, reduction=reduction, normalize=normalize, class_dim=class_dim)
    check_softmax_options(**options)
    check_softmax_tensors(logits, target, alpha, lengths, mask, class_dim=class_dim, validate=validate)
    normalizer = check_normalizer(normalizer, logits, reduction=reduction, normalize=normalize, validate=validate,
                                  counts=("cells",))
    why_not = _ops.fused_serves(logits.device)
    if why_not is not None:
        _ops.warn_fallback_once(why_not)
        return reference.sym_softmax_focal_loss(logits, target, lengths=lengths, mask=mask, normalizer=normalizer,
                                                validate=False, **options)
    x, t = channel_last(logits, target, class_dim)
    weights = None
    if alpha is not None:
        weights = torch.as_tensor(alpha, device=x.device).to(torch.float64).contiguous()
    args = (x, t, weights, lengths, mask, normalizer, mode, float(gamma), float(label_smoothing),
            int(min_separation), reduction, normalize)
    if x.device.type == "cpu" and x.requires_grad and torch.is_grad_enabled() and reduction != "none":
        return torch.ops.symfocal.softmax_forward_train(*args)[0]
    return torch.ops.symfocal.softmax_forward(*args)[0]


def distogram_bins(coords: torch.Tensor, min_bin: float = 2.3125, max_bin: float = 21.6875,
                   num_bins: int = 64) -> torch.Tensor:
    """Distance bins of every pair of points, ``[..., L, 3] -> uint8 [..., L, L]``, as OpenFold's
    ``distogram_loss`` makes its targets: the squared distance compared with the squared
    boundaries ``linspace(min_bin, max_bin, num_bins - 1)``; bin k holds the pairs with k
    boundaries below their distance (so bin 0 is closer than ``min_bin``, the last bin beyond
    ``max_bin``)."""
    if not isinstance(coords, torch.Tensor) or not coords.dtype.is_floating_point:
        raise TypeError(f"coords must be a floating torch.Tensor, got "
                        f"{coords.dtype if isinstance(coords, torch.Tensor) else type(coords).__name__}")
    if coords.dim() < 2 or coords.shape[-1] != 3:
        raise ValueError(f"coords must have shape [..., L, 3], got {tuple(coords.shape)}")
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or not 2 <= num_bins <= 256:
        raise ValueError(f"num_bins must be an int in [2, 256] (the bins fit uint8), got {num_bins!r}")
    if not min_bin < max_bin:
        raise ValueError(f"min_bin must be below max_bin, got {min_bin} and {max_bin}")
    boundaries = torch.linspace(min_bin, max_bin, num_bins - 1, device=coords.device, dtype=coords.dtype) ** 2
    d2 = ((coords[..., :, None, :] - coords[..., None, :, :]) ** 2).sum(-1)
    # The number of boundaries strictly below d2, without a [..., L, L, num_bins - 1] comparison.
    return torch.bucketize(d2, boundaries, right=False).to(torch.uint8)
