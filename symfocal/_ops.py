"""Loads the compiled ops and registers what torch needs around them:
fake (meta) implementations for tracing and torch.compile, and autograd.
"""

from __future__ import annotations

import warnings

import torch

try:
    from . import _C  # noqa: F401  (loading it registers torch.ops.symfocal.*)

    LOAD_ERROR = None
except ImportError as exc:  # the extension was not built, or for another torch
    _C = None
    LOAD_ERROR = exc

__all__ = ["available", "has_cuda_kernels", "build_info", "warn_fallback_once"]


def available() -> bool:
    """Whether the compiled kernels are loaded."""
    return _C is not None


def has_cuda_kernels() -> bool:
    return _C is not None and bool(_C.with_cuda)


def build_info() -> dict:
    if _C is None:
        return {"loaded": False, "error": str(LOAD_ERROR)}
    return {
        "loaded": True,
        "built_with_torch": _C.torch_version,
        "cuda_version": _C.cuda_version or None,
        "cuda_archs": _C.cuda_archs or None,
        "with_cuda": bool(_C.with_cuda),
        "cpu_isa": _C.cpu_isa(),
    }


_warned = False


def warn_fallback_once(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"symfocal: using the pure-PyTorch reference (slower, more memory): {reason}",
                      RuntimeWarning, stacklevel=3)


OPTION_NAMES = ("mode", "alpha", "gamma", "pos_weight", "label_smoothing", "min_separation",
                "symmetry_weight", "penalty", "huber_delta", "reduction")

if _C is not None:

    def _loss_dtype(logits):
        return torch.float64 if logits.dtype == torch.float64 else torch.float32

    @torch.library.register_fake("symfocal::forward")
    def _forward_fake(logits, target, lengths, mask, mode, alpha, gamma, pos_weight, label_smoothing,
                      min_separation, symmetry_weight, penalty, huber_delta, reduction):
        stats = logits.new_empty((4,), dtype=torch.float64)
        if reduction == "none":
            loss = torch.empty_like(logits, memory_format=torch.contiguous_format)
        else:
            loss = logits.new_empty((), dtype=_loss_dtype(logits))
        return loss, stats

    @torch.library.register_fake("symfocal::backward")
    def _backward_fake(grad, logits, target, lengths, mask, stats, *options):
        return torch.empty_like(logits, memory_format=torch.contiguous_format)

    def _setup_context(ctx, inputs, output):
        logits, target, lengths, mask, *options = inputs
        _, stats = output
        ctx.mark_non_differentiable(stats)
        # Only the inputs and 4 statistics: nothing of size B×L×L is made for backward.
        ctx.save_for_backward(logits, target, lengths, mask, stats)
        ctx.options = options

    def _backward(ctx, grad_loss, _grad_stats):
        logits, target, lengths, mask, stats = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = torch.ops.symfocal.backward(grad_loss, logits, target, lengths, mask, stats, *ctx.options)
        return (grad, None, None, None) + (None,) * len(OPTION_NAMES)

    torch.library.register_autograd("symfocal::forward", _backward, setup_context=_setup_context)

    def _no_double_backward(ctx, *grads):
        raise RuntimeError("symfocal: the loss is differentiable once; a second derivative (double "
                           "backward, create_graph=True then grad again) is not supported")

    def _setup_nothing(ctx, inputs, output):
        pass

    torch.library.register_autograd("symfocal::backward", _no_double_backward, setup_context=_setup_nothing)
