"""Argument checks, shared by the fused path and the reference.

Every message names the argument and what was expected. Checks that read
every element (target values, lengths range) need a device-to-host sync; they
run only with validate=True and never while being compiled or captured into
a CUDA graph.
"""

from __future__ import annotations

import math
import numbers

import torch

MODES = ("average", "pair", "upper", "none")
REDUCTIONS = ("mean", "sum", "none")
PENALTIES = ("l1", "l2", "huber")
LOGIT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
TARGET_DTYPES = LOGIT_DTYPES + (torch.bool, torch.uint8)
MASK_DTYPES = (torch.bool, torch.uint8)


def _number(name, value, *, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number{' or None' if allow_none else ''}, "
                        f"got {type(value).__name__}")
    if value != value:  # NaN (math.isnan does not trace under torch.compile with dynamic floats)
        raise ValueError(f"{name} must not be NaN")


def _choice(name, value, options):
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(repr(o) for o in options)}, got {value!r}")


def check_focal_options(*, gamma, label_smoothing, min_separation):
    """The options the binary loss and the softmax loss over bins share."""
    _number("gamma", gamma)
    if not 0.0 <= gamma < math.inf:
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma}")
    _number("label_smoothing", label_smoothing)
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    if isinstance(min_separation, bool) or not isinstance(min_separation, numbers.Integral):
        raise TypeError(f"min_separation must be an int, got {type(min_separation).__name__}")
    if min_separation < 0:
        raise ValueError(f"min_separation must be >= 0, got {min_separation}")


def check_options(*, mode, alpha, gamma, pos_weight, label_smoothing, min_separation, symmetry_weight,
                  symmetry_penalty, huber_delta, reduction):
    """The scalar options of SPEC.md."""
    _choice("mode", mode, MODES)
    _choice("reduction", reduction, REDUCTIONS)
    _choice("symmetry_penalty", symmetry_penalty, PENALTIES)
    _number("alpha", alpha, allow_none=True)
    if alpha is not None and not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] or None, got {alpha}")
    check_focal_options(gamma=gamma, label_smoothing=label_smoothing, min_separation=min_separation)
    _number("pos_weight", pos_weight, allow_none=True)
    if pos_weight is not None and not 0.0 < pos_weight < math.inf:
        raise ValueError(f"pos_weight must be a finite number > 0 or None, got {pos_weight}")
    _number("symmetry_weight", symmetry_weight)
    if not 0.0 <= symmetry_weight < math.inf:
        raise ValueError(f"symmetry_weight must be a finite number >= 0, got {symmetry_weight}")
    _number("huber_delta", huber_delta)
    if not 0.0 < huber_delta < math.inf:
        raise ValueError(f"huber_delta must be a finite number > 0, got {huber_delta}")


def _element_checks_allowed(*tensors):
    if torch.compiler.is_compiling():
        return False
    if any(t is not None and t.is_cuda for t in tensors) and torch.cuda.is_current_stream_capturing():
        return False
    return True


def check_tensors(logits, target, lengths=None, mask=None, *, validate=True):
    """Shapes, dtypes and devices; with validate, also target values and lengths range."""
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
        raise TypeError(f"target must be a floating, bool or uint8 tensor, got {target.dtype}")
    if target.requires_grad:
        raise ValueError("target must not require grad: targets are constants (use target.detach())")
    if target.device != logits.device:
        raise ValueError(f"target is on {target.device} but logits are on {logits.device}")

    check_mask(mask, logits.shape, logits.device)
    check_lengths(lengths, logits.shape, logits.device)

    if validate and _element_checks_allowed(logits, target, lengths, mask):
        check_lengths_range(lengths, logits.shape[-1])
        if target.dtype == torch.uint8 and target.numel() and bool((target > 1).any()):
            raise ValueError("target of dtype uint8 must hold only 0 and 1")
        if target.dtype.is_floating_point and target.numel():
            bad = ~((target >= 0) & (target <= 1))  # NaN is bad too
            if bool(bad.any()):
                raise ValueError("target values must be in [0, 1] (soft labels); found values outside it "
                                 "or NaN")


def check_mask(mask, cells_shape, device):
    """mask: bool/uint8, broadcastable to the cells' shape [..., L, L], on `device`."""
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.dtype not in MASK_DTYPES:
        raise TypeError(f"mask must be a bool or uint8 tensor, got {mask.dtype}")
    if mask.device != device:
        raise ValueError(f"mask is on {mask.device} but logits are on {device}")
    try:
        shape = torch.broadcast_shapes(mask.shape, cells_shape)
    except RuntimeError:
        shape = None
    if shape != cells_shape:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not broadcast to the cells' shape "
                         f"{tuple(cells_shape)}")


def check_lengths(lengths, cells_shape, device):
    """lengths: integer, of shape cells_shape[:-2] or cells_shape[:1], on `device`."""
    if lengths is None:
        return
    if not isinstance(lengths, torch.Tensor):
        raise TypeError(f"lengths must be an integer torch.Tensor or None, got {type(lengths).__name__}")
    if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
        raise TypeError(f"lengths must be an integer tensor, got {lengths.dtype}")
    if lengths.device != device:
        raise ValueError(f"lengths is on {lengths.device} but logits are on {device}")
    allowed = [tuple(cells_shape[:-2])]
    if len(cells_shape) > 2:
        allowed.append(tuple(cells_shape[:1]))
    if tuple(lengths.shape) not in allowed:
        raise ValueError(f"lengths must have shape {allowed[0]} (the batch dims)"
                         + (f" or {allowed[1]}" if len(allowed) > 1 else "")
                         + f", got {tuple(lengths.shape)}")


def check_lengths_range(lengths, L):
    """With validate: every length in [0, L] (a device-to-host sync)."""
    if lengths is not None and lengths.numel() and bool(((lengths < 0) | (lengths > L)).any()):
        raise ValueError(f"lengths must be in [0, L] = [0, {L}], got values from "
                         f"{int(lengths.min())} to {int(lengths.max())}")


def check_inputs(logits, target, lengths, mask, *, validate, **options):
    check_options(**options)
    check_tensors(logits, target, lengths, mask, validate=validate)
