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
           "set_cuda_variant", "fused_serves"]


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


def fused_serves(device: torch.device) -> str | None:
    """None if the compiled kernels serve `device`; why not, if the reference must
    (the extension was not built). Raises where the build cannot serve a CUDA tensor."""
    if not available():
        return f"the compiled extension did not load ({LOAD_ERROR})"
    if device.type == "cpu":
        return None
    if device.type == "cuda":
        if not has_cuda_kernels():
            cuda_tag = "+cu" + (torch.version.cuda or "XY").replace(".", "")
            raise RuntimeError(
                f"symfocal: logits are on {device}, but this symfocal build has no CUDA kernels (it was built "
                f"for the CPU only). Fix: install the symfocal wheel for your CUDA ({cuda_tag}), or rebuild "
                f"with the CUDA toolkit: FORCE_CUDA=1 {_build.REBUILD}")
        if not torch.compiler.is_compiling():  # traced: the launch reports a missing kernel image
            problem = _build.cuda_device_problem(device.index if device.index is not None
                                                 else torch.cuda.current_device())
            if problem is not None:
                raise RuntimeError(problem)
        return None
    return f"no kernels for device type {device.type!r}"


_warned = False


def warn_fallback_once(reason: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"symfocal: using the pure-PyTorch reference (slower, more memory): {reason}",
                      RuntimeWarning, stacklevel=3)


# ---- autograd pieces both families' registrations use (_sigmoid_ops.py, _softmax_ops.py) ----

# Each loss op's autograd, by op name: (setup_context, backward), registered with torch.library (what
# torch.compile traces) and kept here for eager calls (`call`).
_AUTOGRAD: dict[str, tuple] = {}


def register_autograd(name, backward, *, setup_context):
    torch.library.register_autograd(name, backward, setup_context=setup_context)
    _AUTOGRAD[name] = (setup_context, backward)


class _Eager(torch.autograd.Function):
    """An op with its registered setup_context and backward, in one autograd.Function node.

    torch.library's own wrapper around a registered autograd costs about 0.1-0.15 ms a call for ops
    of twenty arguments (torch/_library/utils.py's fill_defaults rebuilds the schema's argument
    list once an argument, twice), a tenth of a [8, 512, 512] step on the CPU. Called with every
    argument in schema order, nothing needs filling in."""

    @staticmethod
    def forward(ctx, op, setup_context, backward, *args):
        with torch._C._AutoDispatchBelowAutograd():  # straight to the kernel (grad mode is off here)
            out = op(*args)
        ctx.op_backward = backward
        setup_context(ctx, args, out)
        return out

    @staticmethod
    def backward(ctx, *grads):
        whole = ctx.needs_input_grad
        ctx.needs_input_grad = whole[3:]  # the op's own inputs, as its backward expects
        try:
            return (None, None, None) + tuple(ctx.op_backward(ctx, *grads))
        finally:  # a retained graph's next backward sees them all again
            ctx.needs_input_grad = whole


def call(op, *args):
    """op(*args) (every argument of its schema, in order) with its registered autograd; eagerly
    through _Eager, traced (torch.compile) through torch.library's registration."""
    if torch.compiler.is_compiling() or not torch.is_grad_enabled() or not args[0].requires_grad:
        return op(*args)
    setup_context, backward = _AUTOGRAD[op._qualified_op_name]  # op: torch.ops.symfocal.<name>
    return _Eager.apply(op, setup_context, backward, *args)

def _loss_dtype(logits):
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


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
    released = _graph_is_released()
    factors = scale.reshape(-1)
    n = factors.numel()
    # The buffer is the gradient already (loss.backward() of a sum, or a mean the forward pre-scaled).
    # One factor is read as a number: after a forward over a large map this Python runs from a cold
    # cache, and every small tensor op it spares is some microseconds of a step.
    if n == 1 and factors.item() == 1.0 or n > 1 and bool((factors == 1.0).all()):
        return (grad_unit if released else grad_unit.clone(),) + none
    grad = grad_unit if released else torch.empty_like(grad_unit)
    rows, out = (grad_unit.view(n, grad_unit.numel() // n), grad.view(n, grad.numel() // n)) if n else ((), ())
    for k in range(n):
        # A 0-dim factor takes ATen's scalar path; a broadcast [B, 1, 1, 1] one of another dtype
        # (float32 onto bfloat16) its elementwise casting loop, some 50x slower.
        torch.mul(rows[k], factors[k], out=out[k])
    return (grad,) + none


_keep_graph = getattr(torch._C._autograd, "_get_current_graph_task_keep_graph", None)


def _graph_is_released() -> bool:
    """True in a backward that frees the graph (retain_graph=False)."""
    if _keep_graph is None or torch.compiler.is_compiling():
        return False
    try:
        return not _keep_graph()
    except RuntimeError:  # not inside a graph task
        return False


def _no_double_backward(ctx, *grads):
    raise RuntimeError("symfocal: the loss is differentiable once; a second derivative (double "
                       "backward, create_graph=True then grad again) is not supported")


def _setup_nothing(ctx, inputs, output):
    pass


if _C is not None:
    # The fake kernels and autograd of each family's ops (csrc/sigmoid/ops.cpp, csrc/softmax/ops.cpp).
    from . import _sigmoid_ops, _softmax_ops  # noqa: E402,F401
