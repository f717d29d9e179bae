"""Fake kernels and autograd of the softmax loss's ops (csrc/softmax/ops.cpp):
torch.ops.symfocal.softmax_forward / softmax_forward_train / softmax_backward. Imported by _ops.py once
the library is loaded."""

from __future__ import annotations

import torch

from ._ops import (_loss_dtype, _no_double_backward, _scaled_grad_unit, _setup_nothing, _setup_train_context,
                   register_autograd)

OPTION_NAMES = ("mode", "gamma", "label_smoothing", "min_separation", "reduction", "normalize", "ignore_index")


@torch.library.register_fake("symfocal::softmax_forward")
def _softmax_forward_fake(logits, target, alpha, lengths, mask, weight, normalizer, mode, gamma, label_smoothing,
                          min_separation, reduction, normalize, ignore_index):
    stats = logits.new_empty((logits.shape[:-3].numel(), 3), dtype=torch.float64)
    if reduction == "none":
        loss = logits.new_empty(logits.shape[:-1])
    else:
        loss = logits.new_empty((), dtype=_loss_dtype(logits))
    return loss, stats


@torch.library.register_fake("symfocal::softmax_backward")
def _softmax_backward_fake(grad, logits, target, alpha, lengths, mask, weight, stats, *options):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _softmax_setup_context(ctx, inputs, output):
    logits, target, alpha, lengths, mask, weight, _normalizer, *options = inputs
    _, stats = output
    ctx.mark_non_differentiable(stats)
    # The inputs and [batch, 3] statistics: nothing of size B·L²·C is made for backward.
    ctx.save_for_backward(logits, target, alpha, lengths, mask, weight, stats)
    ctx.options = options


def _softmax_backward(ctx, grad_loss, _grad_stats):
    logits, target, alpha, lengths, mask, weight, stats = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = torch.ops.symfocal.softmax_backward(grad_loss, logits, target, alpha, lengths, mask, weight, stats,
                                                   *ctx.options)
    return (grad,) + (None,) * (6 + len(OPTION_NAMES))


register_autograd("symfocal::softmax_forward", _softmax_backward,
                                setup_context=_softmax_setup_context)


# The CPU's training forward: grad_unit is the gradient of each sample's unnormalized
# loss sum; backward scales sample b by the incoming gradient times stats[b, 2]. The
# buffer is donated to backward as forward_train's is (_sigmoid_ops.py).
@torch.library.register_fake("symfocal::softmax_forward_train")
def _softmax_forward_train_fake(logits, target, alpha, lengths, mask, weight, normalizer, *options):
    loss, stats = _softmax_forward_fake(logits, target, alpha, lengths, mask, weight, normalizer, *options)
    return loss, stats, torch.empty_like(logits, memory_format=torch.contiguous_format)


def _softmax_backward_train(ctx, grad_loss, _grad_stats, _grad_unit):
    grad_unit = ctx.saved_tensors[0]

    def scale_of(grad, stats):
        return (grad * stats[:, 2]).reshape(grad_unit.shape[:-3] + (1, 1, 1))

    return _scaled_grad_unit(ctx, grad_loss, scale_of)


register_autograd("symfocal::softmax_forward_train", _softmax_backward_train,
                                setup_context=_setup_train_context)


register_autograd("symfocal::softmax_backward", _no_double_backward, setup_context=_setup_nothing)
