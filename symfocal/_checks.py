"""The argument checks both loss families share: numbers and choices, the options they have in
common, and the cell rules' tensors (lengths, mask) and the weight map. Every message names the argument and what was
expected. Checks that read every element need a device-to-host sync; they run only with
validate=True and never while being compiled or captured into a CUDA graph.
"""

from __future__ import annotations

import math
import numbers

import torch

LOGIT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
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


def _element_checks_allowed(*tensors):
    if torch.compiler.is_compiling():
        return False
    if any(t is not None and t.is_cuda for t in tensors) and torch.cuda.is_current_stream_capturing():
        return False
    return True


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


def check_weight(weight, cells_shape, device, *, validate=True):
    """weight: a floating tensor broadcastable to the cells' shape [..., L, L], on `device`, not requiring
    grad; with validate, finite and >= 0."""
    if weight is None:
        return
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a torch.Tensor or None, got {type(weight).__name__}")
    if not weight.dtype.is_floating_point:
        raise TypeError(f"weight must be a floating tensor, got {weight.dtype}")
    if weight.requires_grad:
        raise ValueError("weight must not require grad: the loss is not differentiated with respect to it "
                         "(use weight.detach())")
    if weight.device != device:
        raise ValueError(f"weight is on {weight.device} but logits are on {device}")
    try:
        shape = torch.broadcast_shapes(weight.shape, cells_shape)
    except RuntimeError:
        shape = None
    if shape != cells_shape:
        raise ValueError(f"weight of shape {tuple(weight.shape)} does not broadcast to the cells' shape "
                         f"{tuple(cells_shape)}")
    if validate and _element_checks_allowed(weight) and weight.numel():
        bad = ~((weight >= 0) & (weight < math.inf))  # NaN is bad too
        if bool(bad.any()):
            raise ValueError("weight values must be finite and >= 0; found values outside that or NaN")


def check_ignore_index(ignore_index, *, labels):
    """ignore_index: None, or an int that is none of the `labels` (it would drop real cells)."""
    if ignore_index is None:
        return
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__}")
    if ignore_index in labels:
        raise ValueError(f"ignore_index must not be a label the target uses ({labels[0]} to {labels[-1]}), got "
                         f"{ignore_index}: every such cell would be dropped")


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


def check_normalizer(normalizer, logits, *, reduction, normalize, validate=True, counts=("cells", "positives")):
    """normalizer: None, or a number or one-element tensor (no grad, on the logits' device) that replaces
    the count a mean divides by (for the normalizations in `counts`); with validate, finite and > 0.
    Returns it as a tensor (or None)."""
    if normalizer is None:
        return None
    if reduction != "mean" or normalize not in counts:
        raise ValueError(f"normalizer replaces the count of reduction='mean' with normalize="
                         f"{' or '.join(repr(c) for c in counts)}, got reduction={reduction!r}, "
                         f"normalize={normalize!r}")
    if isinstance(normalizer, torch.Tensor):
        if normalizer.numel() != 1:
            raise ValueError(f"normalizer must be a number or a one-element tensor, got shape "
                             f"{tuple(normalizer.shape)}")
        if normalizer.dtype.is_complex or normalizer.dtype == torch.bool:
            raise TypeError(f"normalizer must be a real tensor, got {normalizer.dtype}")
        if normalizer.requires_grad:
            raise ValueError("normalizer must not require grad: it is a count (use normalizer.detach())")
        if normalizer.device != logits.device:
            raise ValueError(f"normalizer is on {normalizer.device} but logits are on {logits.device}")
    else:
        _number("normalizer", normalizer)
        normalizer = torch.tensor(float(normalizer), dtype=torch.float64, device=logits.device)
    if validate and _element_checks_allowed(logits, normalizer):
        value = float(normalizer)
        if not 0.0 < value < math.inf:
            raise ValueError(f"normalizer must be finite and > 0, got {value}")
    return normalizer
