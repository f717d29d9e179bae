"""symfocal/_ops.py's eager autograd: an op's registered setup_context and backward in one
autograd.Function node (`_Eager`), in place of torch.library's per-call wrapper (whose argument
filling cost about 0.1 ms a call). Both must give the same loss and the same gradient, bitwise; a
retained graph must give it again; and an eager call must not go through the wrapper at all."""

from __future__ import annotations

import pytest
import torch

import symfocal
from symfocal import _ops


def _library_path(monkeypatch):
    """Every op call through torch.library's registered autograd, as before _Eager."""
    monkeypatch.setattr(_ops, "call", lambda op, *args: op(*args))


def _binary(reduction, mode):
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 37, 37, generator=g, dtype=torch.float32) * 3
    y = torch.rand(2, 37, 37, generator=g) < 0.1
    incoming = torch.rand(2, 37, 37, generator=g) if reduction == "none" else None

    def run():
        xr = x.clone().requires_grad_(True)
        loss = symfocal.sym_focal_loss(xr, y, mode=mode, reduction=reduction, lengths=torch.tensor([37, 30]))
        loss.backward(incoming if incoming is not None else None)
        return loss.detach(), xr.grad
    return run


def _distogram(reduction, mode):
    g = torch.Generator().manual_seed(12)
    x = torch.randn(2, 23, 23, 9, generator=g)
    t = torch.randint(0, 9, (2, 23, 23), generator=g)
    t = torch.minimum(t, t.transpose(-1, -2))
    incoming = torch.rand(2, 23, 23, generator=g) if reduction == "none" else None

    def run():
        xr = x.clone().requires_grad_(True)
        loss = symfocal.sym_softmax_focal_loss(xr, t, mode=mode, reduction=reduction, gamma=1.0)
        loss.backward(incoming if incoming is not None else None)
        return loss.detach(), xr.grad
    return run


CASES = [(_binary, r, m) for r in ("mean", "sum", "none") for m in ("none", "average")] + \
        [(_distogram, r, m) for r in ("mean", "none") for m in ("average", "sum")]


@pytest.mark.parametrize("make, reduction, mode", CASES)
def test_same_loss_and_gradient_as_the_library_wrapper(make, reduction, mode, monkeypatch):
    run = make(reduction, mode)
    loss, grad = run()
    _library_path(monkeypatch)
    loss_lib, grad_lib = run()
    assert torch.equal(loss, loss_lib)
    assert torch.equal(grad, grad_lib)


@pytest.mark.parametrize("family", ["binary", "distogram"])
@pytest.mark.parametrize("reduction", ["mean", "none"])  # the CPU's training forward; forward and backward ops
def test_a_retained_graph_gives_the_gradient_again(family, reduction):
    """backward twice (retain_graph): the second one sees the op's inputs' needs_input_grad again."""
    g = torch.Generator().manual_seed(13)
    if family == "binary":
        x = torch.randn(1, 20, 20, generator=g).requires_grad_(True)
        out = symfocal.sym_focal_loss(x, torch.rand(1, 20, 20, generator=g) < 0.2, mode="none", reduction=reduction)
    else:
        x = torch.randn(1, 15, 15, 6, generator=g).requires_grad_(True)
        out = symfocal.sym_softmax_focal_loss(x, torch.randint(0, 6, (1, 15, 15), generator=g), reduction=reduction)
    assert type(out.grad_fn).__name__ == "_EagerBackward"
    loss = out.sum()
    loss.backward(retain_graph=True)
    first = x.grad.clone()
    assert first.abs().sum() > 0
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * first, rtol=1e-6, atol=0)


def test_an_eager_call_skips_the_library_wrapper(monkeypatch):
    import torch._library.utils as library_utils

    def fail(*_):
        raise AssertionError("torch.library's autograd wrapper ran (fill_defaults)")
    monkeypatch.setattr(library_utils, "fill_defaults", fail)
    x = torch.randn(1, 12, 12, requires_grad=True)
    y = torch.rand(1, 12, 12) < 0.3
    for reduction in ("mean", "none"):  # the CPU's training forward, and the plain forward
        loss = symfocal.sym_focal_loss(x, y, reduction=reduction)
        loss.sum().backward()
    x = torch.randn(1, 10, 10, 5, requires_grad=True)
    symfocal.sym_softmax_focal_loss(x, torch.randint(0, 5, (1, 10, 10))).backward()
    assert x.grad is not None


def test_without_a_gradient_no_node_is_made():
    x = torch.randn(1, 12, 12)
    y = torch.rand(1, 12, 12) < 0.3
    assert symfocal.sym_focal_loss(x, y).grad_fn is None
    with torch.no_grad():
        assert symfocal.sym_focal_loss(x.requires_grad_(True), y).grad_fn is None
