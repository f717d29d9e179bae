"""The binary (sigmoid) loss's argument checks, shared by the fused path and the reference; the
checks both families share are in _checks.py. Every message names the argument and what was expected.
"""

from __future__ import annotations

import math

import torch

from ._checks import (LOGIT_DTYPES, _choice, _element_checks_allowed, _number, check_focal_options,
                      check_ignore_index, check_lengths, check_lengths_range, check_mask, check_normalizer,
                      check_weight)

MODES = ("average", "pair", "upper", "none")
REDUCTIONS = ("mean", "sum", "none")
NORMALIZE = ("cells", "positives", "sample")
PENALTIES = ("l1", "l2", "huber")
# int8: for a negative ignore_index (ESM's -1 for an unknown contact).
TARGET_DTYPES = LOGIT_DTYPES + (torch.bool, torch.uint8, torch.int8)


def check_options(*, mode, alpha, gamma, pos_weight, label_smoothing, min_separation, symmetry_weight,
                  symmetry_penalty, huber_delta, reduction, normalize="cells", ignore_index=None):
    """The scalar options of SPEC.md."""
    check_ignore_index(ignore_index, labels=(0, 1))
    _choice("mode", mode, MODES)
    _choice("reduction", reduction, REDUCTIONS)
    _choice("normalize", normalize, NORMALIZE)
    _choice("symmetry_penalty", symmetry_penalty, PENALTIES)
    if isinstance(alpha, torch.Tensor):
        _per_channel_tensor("alpha", alpha)
    else:
        _number("alpha", alpha, allow_none=True)
        if alpha is not None and not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    check_focal_options(gamma=gamma, label_smoothing=label_smoothing, min_separation=min_separation)
    if isinstance(pos_weight, torch.Tensor):
        _per_channel_tensor("pos_weight", pos_weight)
    else:
        _number("pos_weight", pos_weight, allow_none=True)
        if pos_weight is not None and not 0.0 < pos_weight < math.inf:
            raise ValueError(f"pos_weight must be a finite number > 0 or None, got {pos_weight}")
    _number("symmetry_weight", symmetry_weight)
    if not 0.0 <= symmetry_weight < math.inf:
        raise ValueError(f"symmetry_weight must be a finite number >= 0, got {symmetry_weight}")
    _number("huber_delta", huber_delta)
    if not 0.0 < huber_delta < math.inf:
        raise ValueError(f"huber_delta must be a finite number > 0, got {huber_delta}")


def _per_channel_tensor(name, values):
    if values.dim() != 1 or values.dtype.is_complex or values.dtype == torch.bool:
        raise ValueError(f"{name} as a tensor must be one real value a channel, shape [C], got "
                         f"{values.dtype} of shape {tuple(values.shape)}")
    if values.requires_grad:
        raise ValueError(f"{name} must not require grad (use {name}.detach())")


def check_channel_values(logits, *, alpha, pos_weight, validate=True):
    """Per-channel alpha / pos_weight tensors against the logits: [C] for [..., C, L, L], on their
    device; with validate, alpha in [0, 1] and pos_weight finite and > 0."""
    for name, values in (("alpha", alpha), ("pos_weight", pos_weight)):
        if not isinstance(values, torch.Tensor):
            continue
        if logits.dim() < 3 or values.shape != (logits.shape[-3],):
            raise ValueError(f"{name} as a tensor must have shape [C] for logits [..., C, L, L], got "
                             f"{tuple(values.shape)} for logits of shape {tuple(logits.shape)}")
        if values.device != logits.device:
            raise ValueError(f"{name} is on {values.device} but logits are on {logits.device}")
        if validate and _element_checks_allowed(logits, values) and values.numel():
            v = values.double()
            bad = ~((v >= 0) & (v <= 1)) if name == "alpha" else ~((v > 0) & (v < math.inf))
            if bool(bad.any()):
                rule = "in [0, 1]" if name == "alpha" else "finite and > 0"
                raise ValueError(f"{name} values must be {rule}, got {values.tolist()}")


def check_tensors(logits, target, lengths=None, mask=None, weight=None, *, ignore_index=None, validate=True):
    """Shapes, dtypes and devices; with validate, also target values (0 to 1, or ignore_index), weight
    values and lengths range."""
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.dtype not in LOGIT_DTYPES:
        raise TypeError(f"logits must be float16, bfloat16, float32 or float64, got {logits.dtype}")
    if logits.dim() < 2:
        raise ValueError(f"logits must have at least 2 dims [..., L, L], got shape {tuple(logits.shape)}")
    if logits.shape[-1] != logits.shape[-2]:
        raise ValueError(f"logits must be square in the last two dims [..., L, L], got shape "
                         f"{tuple(logits.shape)}")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.shape != logits.shape:
        raise ValueError(f"target must have the shape of logits {tuple(logits.shape)}, got "
                         f"{tuple(target.shape)}")
    if target.dtype not in TARGET_DTYPES:
        raise TypeError(f"target must be a floating, bool, uint8 or int8 tensor, got {target.dtype}")
    if target.requires_grad:
        raise ValueError("target must not require grad: targets are constants (use target.detach())")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits are on {logits.device}")

    check_mask(mask, logits.shape, logits.device)
    check_weight(weight, logits.shape, logits.device, validate=validate)
    check_lengths(lengths, logits.shape, logits.device)

    if validate and _element_checks_allowed(logits, target, lengths, mask):
        check_lengths_range(lengths, logits.shape[-1])
        if target.dtype != torch.bool and target.numel():
            bad = ~((target >= 0) & (target <= 1))  # NaN is bad too; for integers, neither 0 nor 1
            if ignore_index is not None:
                bad = bad & (target != ignore_index)
            if bool(bad.any()):
                extra = "" if ignore_index is None else f" or ignore_index ({ignore_index})"
                if target.dtype.is_floating_point:
                    raise ValueError(f"target values must be in [0, 1] (soft labels){extra}; found values outside "
                                     f"it or NaN")
                raise ValueError(f"target of dtype {str(target.dtype).replace('torch.', '')} must hold only 0 and "
                                 f"1{extra}")


def check_inputs(logits, target, lengths, mask, weight=None, *, validate, **options):
    check_options(**options)
    check_tensors(logits, target, lengths, mask, weight, ignore_index=options.get("ignore_index"), validate=validate)
    check_channel_values(logits, alpha=options["alpha"], pos_weight=options["pos_weight"], validate=validate)
