"""The multi-conformer distogram loss (Boltz-2's distogramv2): D predicted distograms against K target
conformers, each sample's loss the minimum over the predictions of the per-sample mean loss, averaged
over the conformers, then over the samples.

Fused on the softmax loss's engine: one forward pass reads the logits through stride-0 views of all
K × D (conformer, prediction) combinations, without copying them, and returns each combination's loss
sum and cell count (the op's per-sample statistics); the min and means are over those B·K·D numbers.
Backward is one pass per conformer over the D predictions, each combination's gradient scaled by its
share of the loss (1 / (samples · K · cells) where the prediction is the minimum, else 0), summed into
one gradient of the logits' size.
"""

from __future__ import annotations

import torch

from . import _ops
from ._checks import check_lengths, check_mask
from ._softmax_checks import check_softmax_options, check_softmax_tensors
from .reference.cells import valid_cells
from .reference.softmax import sym_softmax_focal_loss as reference_loss

__all__ = ["multi_conformer_distogram_loss"]


def multi_conformer_distogram_loss(logits: torch.Tensor, target: torch.Tensor, *, lengths: torch.Tensor | None = None,
                                   mask: torch.Tensor | None = None, min_separation: int = 1, mode: str = "none",
                                   gamma: float = 0.0, alpha=None, label_smoothing: float = 0.0,
                                   validate: bool = True, _kernels=None) -> torch.Tensor:
    """Boltz-2's multi-conformer distogram loss, fused.

    ``logits``: ``[B, D, L, L, C]`` (D predicted distograms); ``target``: ``[B, K, L, L]`` bin indices or
    ``[B, K, L, L, C]`` distributions (K conformers). With m[b, k, d] the mean over sample b's valid
    cells of the softmax focal loss of prediction d against conformer k (the options of
    :func:`symfocal.sym_softmax_focal_loss`; the defaults, mode "none", gamma 0 and
    min_separation 1, are Boltz-2's cross-entropy without the diagonal), the loss is
    mean_b mean_k min_d m[b, k, d]. ``lengths`` ``[B]`` and ``mask`` (broadcastable to ``[B, L, L]``)
    select the cells of each sample, for every conformer and prediction.
    """
    check_softmax_options(mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                          min_separation=min_separation, reduction="sum", normalize="sample", class_dim=-1)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 5:
        raise ValueError(f"logits must have shape [B, D, L, L, C], got "
                         f"{tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__}")
    if not isinstance(target, torch.Tensor) or target.dim() not in (4, 5):
        raise ValueError("target must be [B, K, L, L] bin indices or [B, K, L, L, C] distributions")
    B, D, L, _, C = logits.shape
    K = target.shape[1]
    if target.shape[0] != B or target.shape[2:4] != logits.shape[2:4] or K == 0 or D == 0:
        raise ValueError(f"target must have shape [B, K, L, L] or [B, K, L, L, C] with B, L of logits "
                         f"{tuple(logits.shape)} and K >= 1 (and D >= 1), got {tuple(target.shape)}")
    soft = target.dim() == 5
    check_lengths(lengths, (B, L, L), logits.device)
    check_mask(mask, (B, L, L), logits.device)
    expanded = _combinations(logits, target, mask, K, D, soft)
    check_softmax_tensors(*expanded[:2], alpha, lengths, expanded[2], class_dim=-1, validate=validate)
    weights = None if alpha is None else torch.as_tensor(alpha, device=logits.device).to(torch.float64).contiguous()
    options = (mode, float(gamma), float(label_smoothing), int(min_separation), "sum", "sample", None)
    if _kernels is None:  # (tests pass the emulated CUDA kernels)
        why_not = _ops.fused_serves(logits.device)
        if why_not is not None:
            _ops.warn_fallback_once(why_not)
            return _reference(logits, target, lengths, mask, weights, options, K, D, soft)
        _kernels = torch.ops.symfocal
    return _MultiConformer.apply(logits, target, weights, lengths, mask, K, D, soft, options, _kernels)


def _combinations(logits, target, mask, K, D, soft):
    """Views over [B, K, D, ...] of the logits, the targets and the mask, every one without a copy."""
    B, _, L, _, C = logits.shape
    x = logits.unsqueeze(1).expand(B, K, D, L, L, C)
    t = (target.unsqueeze(2).expand(B, K, D, L, L, C) if soft else target.unsqueeze(2).expand(B, K, D, L, L))
    m = None if mask is None else mask.expand(B, L, L)[:, None, None].expand(B, K, D, L, L)
    return x, t, m


def _sample_means(stats, B, K, D):
    """m[b, k, d] from the op's per-sample statistics (loss sum, cells): 0 for a sample without cells."""
    sums, cells = stats[:, 0], stats[:, 1]
    return torch.where(cells > 0, sums / cells.clamp(min=1), torch.zeros_like(sums)).reshape(B, K, D)


class _MultiConformer(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits, target, alpha, lengths, mask, K, D, soft, options, kernels):
        B = logits.shape[0]
        x, t, m = _combinations(logits, target, mask, K, D, soft)
        _, stats = kernels.softmax_forward(x, t, alpha, lengths, m, None, None, *options)
        means = _sample_means(stats, B, K, D)
        best = means.min(-1)
        ctx.save_for_backward(logits, target, alpha, lengths, mask, stats, best.indices)
        ctx.shape, ctx.options, ctx.kernels = (B, K, D), options, kernels
        return best.values.mean(-1).mean().to(_accumulation(logits))

    @staticmethod
    def backward(ctx, grad):
        logits, target, alpha, lengths, mask, stats, best = ctx.saved_tensors
        B, K, D = ctx.shape
        cells = stats[:, 1].reshape(B, K, D)
        chosen = torch.nn.functional.one_hot(best, D).to(torch.float64)  # [B, K, D]
        scale = torch.where(cells > 0, chosen / (B * K * cells.clamp(min=1)), torch.zeros_like(chosen))
        L = logits.shape[2]
        m = None if mask is None else mask.expand(B, L, L)[:, None].expand(B, D, L, L)
        grad = grad.to(_accumulation(logits))
        total = None
        for k in range(K):  # one pass a conformer, over its D combinations: B·D samples
            t_k = target[:, k]
            t_k = t_k.unsqueeze(1).expand(B, D, *t_k.shape[1:])
            stats_k = torch.zeros(B * D, 3, dtype=torch.float64, device=logits.device)
            stats_k[:, 2] = scale[:, k].reshape(-1)  # the backward op's per-sample scale (softmax/types.h)
            g = ctx.kernels.softmax_backward(grad, logits, t_k, alpha, lengths, m, None, stats_k, *ctx.options)
            total = g if total is None else total.add_(g)
        return (total,) + (None,) * 9


def _accumulation(logits):
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _reference(logits, target, lengths, mask, alpha, options, K, D, soft):
    """The same loss in plain PyTorch (where no compiled kernel serves the device)."""

    mode, gamma, label_smoothing, min_separation, *_ = options
    B = logits.shape[0]
    x, t, m = _combinations(logits, target, mask, K, D, soft)
    loss = reference_loss(x, t, mode=mode, gamma=gamma, alpha=alpha, label_smoothing=label_smoothing,
                           min_separation=min_separation, lengths=lengths, mask=m, reduction="none",
                           validate=False)
    valid = valid_cells(x[..., 0], lengths, m, min_separation, "upper" if mode == "upper" else "none")
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    sums, counts = loss.to(acc).sum((-1, -2)), valid.sum((-1, -2))
    means = torch.where(counts > 0, sums / counts.clamp(min=1), torch.zeros_like(sums)).reshape(B, K, D)
    return means.min(-1).values.mean(-1).mean()
