"""Loads the compiled ops and registers what torch needs around them:
fake (meta) implementations for tracing and torch.compile, and autograd.
"""

from __future__ import annotations

import warnings

import torch

from . import _build

# Loading _C registers torch.ops.symfocal.*. Not built: None, and the reference
# serves with a warning. Built for another torch or CUDA: ImportError, saying why.
_C, LOAD_ERROR = _build.load_extension()

__all__ = ["available", "has_cuda_kernels", "build_info", "warn_fallback_once", "cuda_variants",
           "set_cuda_variant"]


def available() -> bool:
    """Whether the compiled kernels are loaded."""
    return _C is not None


def has_cuda_kernels() -> bool:
    return _C is not None and bool(_C.with_cuda)


def build_info() -> dict:
    if _C is None:
        return {"loaded": False, "error": str(LOAD_ERROR)}
    facts = _build.read_info() or {}
    return {
        "loaded": True,
        "built_with_torch": facts.get("torch", "unknown"),
        "cuda_version": facts.get("cuda"),
        "cuda_archs": facts.get("cuda_archs"),
        "with_cuda": bool(_C.with_cuda),
        "cpu_isa": _C.cpu_isa(),
    }


def cuda_variants() -> list[tuple[str, str, bool]]:
    """(name, what it changes, in this build) of each CUDA kernel variant (csrc/sigmoid/cuda/variants.h);
    empty without the CUDA kernels. For benchmarks: every variant computes the same results."""
    return [tuple(v) for v in _C.cuda_variants()] if has_cuda_kernels() else []


def set_cuda_variant(name: str) -> None:
    """Makes later CUDA launches of this process use variant `name` ("default" to go back)."""
    if not has_cuda_kernels():
        raise RuntimeError("symfocal: this build has no CUDA kernels, so no CUDA kernel variants")
    _C.set_cuda_variant(name)


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

    # The CPU's training forward (csrc/sigmoid/ops.cpp): it also returns the gradient of
    # the unnormalized focal sum, and backward only scales that one buffer. The
    # buffer is donated to backward: a caller of this internal op must not keep
    # its grad_unit output (sym_focal_loss drops it), since an eager backward
    # that frees the graph scales it in place.
    @torch.library.register_fake("symfocal::forward_train")
    def _forward_train_fake(logits, target, lengths, mask, *options):
        loss, stats = _forward_fake(logits, target, lengths, mask, *options)
        return loss, stats, torch.empty_like(logits, memory_format=torch.contiguous_format)

    def _setup_train_context(ctx, inputs, output):
        _, stats, grad_unit = output
        ctx.mark_non_differentiable(stats, grad_unit)
        ctx.set_materialize_grads(False)  # no zero-filled B×L×L gradient for the grad_unit output
        ctx.save_for_backward(grad_unit, stats)  # instead of logits and target
        ctx.num_inputs = len(inputs)

    def _scaled_grad_unit(ctx, grad_loss, scale_of):
        """The backward of a training forward: its grad_unit times scale_of(grad_loss in float64, stats),
        a 0-dim factor or one a sample (shaped to broadcast)."""
        if torch.is_grad_enabled():
            raise RuntimeError("symfocal: the loss is differentiable once; create_graph=True (for a second "
                               "derivative) is not supported")
        grad_unit, stats = ctx.saved_tensors
        none = (None,) * (ctx.num_inputs - 1)
        if grad_loss is None:
            return (None,) + none
        acc = torch.float64 if grad_unit.dtype == torch.float64 else torch.float32
        scale = scale_of(grad_loss.to(torch.float64), stats).to(acc)
        if type(grad_unit) is not torch.Tensor:  # traced: one broadcast multiply, which the compiler fuses
            return ((grad_unit * scale).to(grad_unit.dtype),) + none
        # Nothing reads the buffer after a backward that frees the graph: scale it in place. It then
        # becomes logits.grad as it is, with no new allocation of its size (whose fresh pages cost
        # more than the multiply itself). retain_graph (gradcheck, jacobians, a second backward)
        # will read the buffer again.
        grad = grad_unit if _graph_is_released() else torch.empty_like(grad_unit)
        factors = scale.reshape(-1)
        n = factors.numel()
        rows, out = (grad_unit.view(n, grad_unit.numel() // n), grad.view(n, grad.numel() // n)) if n else ((), ())
        for k in range(n):
            # A 0-dim factor takes ATen's scalar path; a broadcast [B, 1, 1, 1] one of another dtype
            # (float32 onto bfloat16) its elementwise casting loop, some 50x slower.
            torch.mul(rows[k], factors[k], out=out[k])
        return (grad,) + none

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

    _keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)

    def _graph_is_released() -> bool:
        """True in a backward that frees the graph (retain_graph=False)."""
        if _keep_graph is None or torch.compiler.is_compiling():
            return False
        try:
            return not _keep_graph()
        except RuntimeError:  # not inside a graph task
            return False

    torch.library.register_autograd("symfocal::forward_train", _backward_train,
                                    setup_context=_setup_binary_train_context)

    def _no_double_backward(ctx, *grads):
        raise RuntimeError("symfocal: the loss is differentiable once; a second derivative (double "
                           "backward, create_graph=True then grad again) is not supported")

    def _setup_nothing(ctx, inputs, output):
        pass

    torch.library.register_autograd("symfocal::backward", _no_double_backward, setup_context=_setup_nothing)

    # ---- the softmax focal loss over bins (csrc/softmax/ops.cpp) -------------

    SOFTMAX_OPTION_NAMES = ("mode", "gamma", "label_smoothing", "min_separation", "reduction", "normalize")

    @torch.library.register_fake("symfocal::softmax_forward")
    def _softmax_forward_fake(logits, target, alpha, lengths, mask, mode, gamma, label_smoothing, min_separation,
                              reduction, normalize):
        stats = logits.new_empty((logits.shape[:-3].numel(), 3), dtype=torch.float64)
        if reduction == "none":
            loss = logits.new_empty(logits.shape[:-1])
        else:
            loss = logits.new_empty((), dtype=_loss_dtype(logits))
        return loss, stats

    @torch.library.register_fake("symfocal::softmax_backward")
    def _softmax_backward_fake(grad, logits, target, alpha, lengths, mask, stats, *options):
        return torch.empty_like(logits, memory_format=torch.contiguous_format)

    def _softmax_setup_context(ctx, inputs, output):
        logits, target, alpha, lengths, mask, *options = inputs
        _, stats = output
        ctx.mark_non_differentiable(stats)
        # The inputs and [batch, 3] statistics: nothing of size B·L²·C is made for backward.
        ctx.save_for_backward(logits, target, alpha, lengths, mask, stats)
        ctx.options = options

    def _softmax_backward(ctx, grad_loss, _grad_stats):
        logits, target, alpha, lengths, mask, stats = ctx.saved_tensors
        grad = None
        if ctx.needs_input_grad[0]:
            grad = torch.ops.symfocal.softmax_backward(grad_loss, logits, target, alpha, lengths, mask, stats,
                                                       *ctx.options)
        return (grad,) + (None,) * (4 + len(SOFTMAX_OPTION_NAMES))

    torch.library.register_autograd("symfocal::softmax_forward", _softmax_backward,
                                    setup_context=_softmax_setup_context)

    # The CPU's training forward: grad_unit is the gradient of each sample's unnormalized
    # loss sum; backward scales sample b by the incoming gradient times stats[b, 2]. The
    # buffer is donated to backward as forward_train's is (see above).
    @torch.library.register_fake("symfocal::softmax_forward_train")
    def _softmax_forward_train_fake(logits, target, alpha, lengths, mask, *options):
        loss, stats = _softmax_forward_fake(logits, target, alpha, lengths, mask, *options)
        return loss, stats, torch.empty_like(logits, memory_format=torch.contiguous_format)

    def _softmax_backward_train(ctx, grad_loss, _grad_stats, _grad_unit):
        grad_unit = ctx.saved_tensors[0]

        def scale_of(grad, stats):
            return (grad * stats[:, 2]).reshape(grad_unit.shape[:-3] + (1, 1, 1))

        return _scaled_grad_unit(ctx, grad_loss, scale_of)

    torch.library.register_autograd("symfocal::softmax_forward_train", _softmax_backward_train,
                                    setup_context=_setup_train_context)
    torch.library.register_autograd("symfocal::softmax_backward", _no_double_backward, setup_context=_setup_nothing)
