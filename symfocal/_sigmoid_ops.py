"""Fake kernels and autograd of the binary (sigmoid) loss's ops (csrc/sigmoid/ops.cpp):
torch.ops.symfocal.forward / forward_train / backward. Imported by _ops.py once the library is loaded."""

from __future__ import annotations

import math

import torch

from ._ops import (_loss_dtype, _no_double_backward, _scaled_grad_unit, _setup_nothing, _setup_train_context,
                   register_autograd)

OPTION_NAMES = ("mode", "alpha", "gamma", "pos_weight", "label_smoothing", "min_separation",
                "symmetry_weight", "penalty", "huber_delta", "reduction", "normalize", "ignore_index")
# Slots of the statistics (csrc/engine/types.h's Stat): d loss / d (focal sum), and with
# normalize "sample" one such scale a sample after the NUM_STATS.
FOCAL_SCALE, NUM_STATS = 5, 6


@torch.library.register_fake("symfocal::forward")
def _forward_fake(logits, target, lengths, mask, weight, normalizer, channel_alpha, channel_pos_weight, mode, alpha,
                  gamma, pos_weight, label_smoothing, min_separation, symmetry_weight, penalty, huber_delta,
                  reduction, normalize, ignore_index):
    samples = math.prod(logits.shape[:-2]) if normalize == "sample" else 0
    stats = logits.new_empty((NUM_STATS + samples,), dtype=torch.float64)
    if reduction == "none":
        loss = torch.empty_like(logits, memory_format=torch.contiguous_format)
    else:
        loss = logits.new_empty((), dtype=_loss_dtype(logits))
    return loss, stats


@torch.library.register_fake("symfocal::backward")
def _backward_fake(grad, logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats, *options):
    return torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    logits, target, lengths, mask, weight, _normalizer, channel_alpha, channel_pos_weight, *options = inputs
    _, stats = output
    ctx.mark_non_differentiable(stats)
    # Only the inputs and the statistics (the normalizer is in them): nothing of size B×L×L is made for backward.
    ctx.save_for_backward(logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats)
    ctx.options = options


def _backward(ctx, grad_loss, _grad_stats):
    logits, target, lengths, mask, weight, channel_alpha, channel_pos_weight, stats = ctx.saved_tensors
    grad = None
    if ctx.needs_input_grad[0]:
        grad = torch.ops.symfocal.backward(grad_loss, logits, target, lengths, mask, weight, channel_alpha,
                                           channel_pos_weight, stats, *ctx.options)
    return (grad,) + (None,) * (7 + len(OPTION_NAMES))


register_autograd("symfocal::forward", _backward, setup_context=_setup_context)


# The CPU's training forward (csrc/sigmoid/ops.cpp): it also returns the gradient of
# the unnormalized focal sum, and backward only scales that one buffer. The
# buffer is donated to backward: a caller of this internal op must not keep
# its grad_unit output (sym_focal_loss drops it), since an eager backward
# that frees the graph scales it in place.
@torch.library.register_fake("symfocal::forward_train")
def _forward_train_fake(logits, target, lengths, mask, *tensors_and_options):
    loss, stats = _forward_fake(logits, target, lengths, mask, *tensors_and_options)
    return loss, stats, torch.empty_like(logits, memory_format=torch.contiguous_format)


def _setup_binary_train_context(ctx, inputs, output):
    _setup_train_context(ctx, inputs, output)
    ctx.per_sample = inputs[-2] == "sample"


def _backward_train(ctx, grad_loss, _grad_stats, _grad_unit):
    grad_unit = ctx.saved_tensors[0]

    def scale_of(grad, stats):
        # The forward's finalize left d loss / d (focal sum) in the statistics, for any normalization.
        if ctx.per_sample:
            return (grad * stats[NUM_STATS:]).reshape(grad_unit.shape[:-2] + (1, 1))
        return grad * stats[FOCAL_SCALE]

    return _scaled_grad_unit(ctx, grad_loss, scale_of)


register_autograd("symfocal::forward_train", _backward_train,
                                setup_context=_setup_binary_train_context)


register_autograd("symfocal::backward", _no_double_backward, setup_context=_setup_nothing)
