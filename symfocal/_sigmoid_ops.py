"""Fake kernels and autograd of the binary (sigmoid) loss's ops (csrc/sigmoid/ops.cpp):
torch.ops.symfocal.forward / forward_train / backward. Imported by _ops.py once the library is loaded."""

from __future__ import annotations

import torch

from ._ops import _loss_dtype, _no_double_backward, _scaled_grad_unit, _setup_nothing, _setup_train_context

OPTION_NAMES = ("mode", "alpha", "gamma", "pos_weight", "label_smoothing", "min_separation",
                "symmetry_weight", "penalty", "huber_delta", "reduction")


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


# The CPU's training forward (csrc/sigmoid/ops.cpp): it also returns the gradient of
# the unnormalized focal sum, and backward only scales that one buffer. The
# buffer is donated to backward: a caller of this internal op must not keep
# its grad_unit output (sym_focal_loss drops it), since an eager backward
# that frees the graph scales it in place.
@torch.library.register_fake("symfocal::forward_train")
def _forward_train_fake(logits, target, lengths, mask, *options):
    loss, stats = _forward_fake(logits, target, lengths, mask, *options)
    return loss, stats, torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_binary_train_context(ctx, inputs, output):
    _setup_train_context(ctx, inputs, output)
    ctx.mean = inputs[-1] == "mean"


def _backward_train(ctx, grad_loss, _grad_stats, _grad_unit):
    def scale_of(grad, stats):
        if not ctx.mean:
            return grad
        cells = stats[1]
        return torch.where(cells > 0, grad / cells.clamp(min=1), torch.zeros_like(grad))

    return _scaled_grad_unit(ctx, grad_loss, scale_of)


torch.library.register_autograd("symfocal::forward_train", _backward_train,
                                setup_context=_setup_binary_train_context)


torch.library.register_autograd("symfocal::backward", _no_double_backward, setup_context=_setup_nothing)
