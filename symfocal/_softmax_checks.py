"""Argument checks of the softmax focal loss over bins, shared by the fused path
and the reference. As in _checks.py: every message names the argument; checks
that read every element run only with validate=True, never while compiled or
captured.
"""

from __future__ import annotations

import torch

from ._checks import (LOGIT_DTYPES, _choice, _element_checks_allowed, check_focal_options, check_ignore_index,
                      check_lengths, check_lengths_range, check_mask, check_weight)

MODES = ("sum", "average", "pair", "upper", "none")
REDUCTIONS = ("mean", "sum", "none")
NORMALIZE = ("cells", "sample")
INDEX_DTYPES = (torch.uint8, torch.int32, torch.int64)
MAX_BINS = 128  # csrc/softmax/types.h, kMaxBins


def check_softmax_options(*, mode, gamma, alpha, label_smoothing, min_separation, reduction, normalize, class_dim,
                          ignore_index=None):
    _choice("mode", mode, MODES)
    _choice("reduction", reduction, REDUCTIONS)
    _choice("normalize", normalize, NORMALIZE)
    check_focal_options(gamma=gamma, label_smoothing=label_smoothing, min_separation=min_separation)
    if class_dim not in (-1, -3):
        raise ValueError(f"class_dim must be -1 (logits [..., L, L, C]) or -3 ([..., C, L, L]), got {class_dim!r}")
    check_ignore_index(ignore_index, labels=())  # against the bins with the tensors
    if alpha is not None and not isinstance(alpha, (torch.Tensor, list, tuple)):
        raise TypeError(f"alpha must be None or a tensor (or list) of C class weights, got {type(alpha).__name__}")


def channel_last(logits, target, class_dim):
    """The [..., L, L, C] views of logits (and of a soft target) for class_dim=-3: no copy."""
    if class_dim == -1:
        return logits, target
    if target.dtype.is_floating_point and target.dim() == logits.dim():
        target = target.movedim(-3, -1)
    return logits.movedim(-3, -1), target


def check_softmax_tensors(logits, target, alpha, lengths, mask, weight=None, *, class_dim, validate,
                          ignore_index=None):
    """logits and target as given (class_dim says where the bins are)."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dtype not in LOGIT_DTYPES:
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64, got {logits.dtype}")
    layout = "[..., L, L, C]" if class_dim == -1 else "[..., C, L, L]"
    if logits.dim() < 3:
        raise ValueError(f"logits must have at least 3 dims {layout}, got shape {tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    cl_logits = logits if class_dim == -1 else logits.movedim(-3, -1)
    *batch, L, L2, C = cl_logits.shape
    if L != L2:
        raise ValueError(f"logits must be square maps {layout}, got shape {tuple(logits.shape)}")
    if C < 2 or C > MAX_BINS:
        raise ValueError(f"logits must have between 2 and {MAX_BINS} bins C (class_dim={class_dim}), got C = {C} "
                         f"in shape {tuple(logits.shape)}")
    cells = cl_logits.shape[:-1]
    if target.dtype in INDEX_DTYPES:
        if target.shape != cells:
            raise ValueError(f"target of bin indices ({target.dtype}) must have shape {tuple(cells)} (logits "
                             f"without the bins), got {tuple(target.shape)}")
    elif target.dtype.is_floating_point:
        if target.shape != logits.shape:
            raise ValueError(f"soft target ({target.dtype}) must have the shape of logits {tuple(logits.shape)}, "
                             f"got {tuple(target.shape)}")
    else:
        raise TypeError(f"target must hold bin indices (uint8, int32, int64) or soft distributions (float), got "
                        f"{target.dtype}")
    if target.requires_grad:
        raise ValueError("target must not require grad: targets are constants (use target.detach())")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits are on {logits.device}")
    if isinstance(alpha, torch.Tensor):
        if alpha.shape != (C,):
            raise ValueError(f"alpha must have shape ({C},), one weight a bin, got {tuple(alpha.shape)}")
        if alpha.device != logits.device:
            raise ValueError(f"alpha is on {alpha.device} but logits are on {logits.device}")
        if not (alpha.dtype.is_floating_point or alpha.dtype in INDEX_DTYPES):
            raise TypeError(f"alpha must be a real tensor, got {alpha.dtype}")
    elif alpha is not None and len(alpha) != C:
        raise ValueError(f"alpha must have {C} entries, one weight a bin, got {len(alpha)}")
    check_mask(mask, cells, logits.device)
    check_weight(weight, cells, logits.device, validate=validate)
    check_lengths(lengths, cells, logits.device)
    if ignore_index is not None:
        if target.dtype not in INDEX_DTYPES:
            raise ValueError("ignore_index needs a target of bin indices, not soft distributions (drop such cells "
                             "with mask instead)")
        check_ignore_index(ignore_index, labels=range(C))

    if validate and _element_checks_allowed(logits, target, lengths, mask):
        check_lengths_range(lengths, L)
        if target.dtype in INDEX_DTYPES and target.numel():
            kept = target if ignore_index is None else target[target != ignore_index]
            low, high = (int(kept.min()), int(kept.max())) if kept.numel() else (0, 0)
            if low < 0 or high >= C:
                extra = "" if ignore_index is None else f" (or ignore_index, {ignore_index})"
                raise ValueError(f"target bin indices must be in [0, C) = [0, {C}){extra}, got values from {low} "
                                 f"to {high}")
        if target.dtype.is_floating_point and target.numel():
            _, soft = channel_last(logits, target, class_dim)
            if bool((~(soft >= 0)).any()):
                raise ValueError("soft target values must be >= 0 (distributions over the bins); found negative "
                                 "values or NaN")
            # Loose enough for rows rounded to bfloat16 bin by bin; catches counts and unnormalized rows.
            tol = 1e-2
            worst = float((soft.sum(-1, dtype=torch.float64) - 1).abs().max())
            if worst > tol:
                raise ValueError(f"soft target rows must sum to 1 over the bins; the worst is off by {worst:.3g}")
        if alpha is not None:
            values = torch.as_tensor(alpha, dtype=torch.float64)
            if values.numel() and not bool(((values >= 0) & torch.isfinite(values)).all()):
                raise ValueError("alpha (class weights) must be finite and >= 0")
