"""What a training loop does on day one: autocast, memory stability, what autograd keeps."""

import os

import pytest
import torch
from torch import nn

import symfocal
from helpers import random_inputs


def test_cpu_autocast_bfloat16_reads_low_precision_logits():
    model = nn.Conv2d(2, 1, 3, padding=1)
    feats = torch.randn(2, 2, 24, 24)
    _, y = random_inputs((2, 24, 24))
    seen = []
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(feats).squeeze(1)
        seen.append(logits.dtype)
        loss = symfocal.sym_focal_loss(logits, y)
    assert seen == [torch.bfloat16]
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, symfocal.sym_focal_loss(logits.detach(), y))
    loss.backward()
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


def _saved_by(fn):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = fn()
    return loss, saved


def test_saved_for_backward_is_only_the_inputs():
    """The recomputing backward (GPU; CPU with reduction 'none' or a penalty) keeps the inputs
    and 6 statistics, nothing else of size B×L×L."""
    x, y = random_inputs((2, 64, 64))
    x.requires_grad_(True)
    mask = torch.rand(64, 64) < 0.9
    lengths = torch.tensor([64, 40])
    for kw in (dict(symmetry_weight=0.5), dict(reduction="none")):
        loss, saved = _saved_by(lambda: symfocal.sym_focal_loss(x, y, mask=mask, lengths=lengths, **kw))
        inputs = {x.data_ptr(), y.data_ptr(), mask.data_ptr(), lengths.data_ptr()}
        others = [t for t in saved if t.data_ptr() not in inputs]
        assert sum(t.numel() for t in others) <= 6, [t.shape for t in others]
        loss.sum().backward()


def test_cpu_training_forward_keeps_one_buffer_instead_of_the_inputs():
    """SPEC.md's exception: on the CPU the forward pass computes the gradient too and keeps that
    one buffer (and 6 statistics) instead of logits and target."""
    x, y = random_inputs((2, 64, 64))
    x.requires_grad_(True)
    loss, saved = _saved_by(lambda: symfocal.sym_focal_loss(x, y))
    assert sorted(t.numel() for t in saved) == [6, x.numel()]
    assert all(t.data_ptr() not in (x.data_ptr(), y.data_ptr()) for t in saved)
    loss.backward()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_memory_growth_over_1000_iterations():
    x, y = random_inputs((4, 48, 48))
    x.requires_grad_(True)
    lengths = torch.tensor([48, 30, 12, 1])

    def step():
        loss = symfocal.sym_focal_loss(x, y, lengths=lengths, mode="pair", symmetry_weight=0.1)
        loss.backward()
        x.grad = None

    for _ in range(100):
        step()
    before = _rss_bytes()
    for _ in range(1000):
        step()
    grown = _rss_bytes() - before
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 1000 steps"


def test_second_backward_through_a_retained_graph():
    """The CPU training path scales its buffer in place only when the graph is freed;
    with retain_graph every backward still gets the right gradient."""
    x, y = random_inputs((2, 40, 40))
    x.requires_grad_(True)
    loss = symfocal.sym_focal_loss(x, y)
    (g1,) = torch.autograd.grad(loss, x, retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x, torch.tensor(2.0), retain_graph=True)
    (g3,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g2, 2 * g1)
    assert torch.equal(g1, g3)
    loss = symfocal.sym_focal_loss(x, y)
    loss.backward(retain_graph=True)
    loss.backward()
    torch.testing.assert_close(x.grad, 2 * g1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_distogram_backward_scales_each_sample(dtype):
    """The softmax loss's training backward scales sample b of its buffer by its own factor
    (normalize="sample"), in place or, with retain_graph, into a new tensor."""
    B, L, C = 3, 20, 9
    lengths = torch.tensor([20, 13, 7])
    t = torch.randint(0, C, (B, L, L))
    x = (torch.randn(B, L, L, C) * 2).to(dtype).requires_grad_(True)
    options = dict(mode="sum", normalize="sample", lengths=lengths)
    loss = symfocal.sym_softmax_focal_loss(x, t, **options)
    (g1,) = torch.autograd.grad(loss, x, torch.tensor(0.5), retain_graph=True)
    (g2,) = torch.autograd.grad(loss, x)
    x64 = x.detach().double().requires_grad_(True)
    symfocal.reference.sym_softmax_focal_loss(x64, t, **options).backward()
    tol = dict(rtol=2e-2, atol=1e-4) if dtype == torch.bfloat16 else dict(rtol=1e-4, atol=1e-7)
    assert g1.dtype == g2.dtype == dtype
    torch.testing.assert_close(g2.double(), x64.grad, **tol)
    torch.testing.assert_close(g1.double(), 0.5 * x64.grad, **tol)
