"""The CPU training forward's gradient: written already scaled (backward has nothing left to do
for `loss.backward()`), into a buffer that a later step may get again once it is freed
(csrc/engine/cpu/grad_buffer.h). A reused buffer holds the last step's values: every cell of
the new gradient must be written, and a buffer still in use must never be handed out."""

import pytest
import torch

import symfocal
from symfocal import reference

# Buffers of 1 MiB or more come from the keeping allocator: [2, 64, 64, 40] float32 is 1.25 MiB,
# [4, 256, 256] float32 1 MiB.
SOFTMAX_SHAPE, BINS = (2, 64, 64), 40
BINARY_SHAPE = (4, 256, 256)


def softmax_inputs(seed, masked_fraction):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*SOFTMAX_SHAPE, BINS, generator=gen, dtype=torch.float64) * 2
    bins = torch.randint(0, BINS, SOFTMAX_SHAPE, generator=gen)
    bins = torch.where(torch.rand(SOFTMAX_SHAPE, generator=gen) < 0.1, torch.full_like(bins, -100), bins)
    mask = torch.rand(SOFTMAX_SHAPE, generator=gen) >= masked_fraction
    lengths = torch.tensor([64, 41])
    return x, bins, mask, lengths


def softmax_grad(x, bins, mask, lengths, dtype=torch.float32, **kw):
    x = x.detach().to(dtype).clone().requires_grad_(True)
    symfocal.sym_softmax_focal_loss(x, bins, mask=mask, lengths=lengths, ignore_index=-100, **kw).backward()
    return x.grad


def reference_softmax_grad(x, bins, mask, lengths, **kw):
    x = x.detach().double().clone().requires_grad_(True)
    reference.sym_softmax_focal_loss(x, bins, mask=mask, lengths=lengths, ignore_index=-100, **kw).backward()
    return x.grad


@pytest.mark.parametrize("mode,normalize,reduction", [("sum", "sample", "mean"), ("pair", "cells", "mean"),
                                                      ("upper", "sample", "sum"), ("average", "cells", "sum")])
def test_softmax_gradient_of_loss_backward_is_prescaled_and_exact(mode, normalize, reduction):
    # Samples with different counts of cells (lengths, mask, ignored bins): a scale a sample.
    x, bins, mask, lengths = softmax_inputs(0, 0.3)
    kw = dict(mode=mode, normalize=normalize, reduction=reduction, gamma=1.5)
    got = softmax_grad(x, bins, mask, lengths, **kw)
    want = reference_softmax_grad(x, bins, mask, lengths, **kw)
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=2e-4)
    # An incoming gradient other than 1 still scales it.
    x2 = x.float().requires_grad_(True)
    (symfocal.sym_softmax_focal_loss(x2, bins, mask=mask, lengths=lengths, ignore_index=-100, **kw) * -2.5).backward()
    torch.testing.assert_close(x2.grad.double(), -2.5 * want, atol=5e-6, rtol=2e-4)


def test_softmax_buffer_reused_with_every_cell_written():
    x, bins, mask, lengths = softmax_inputs(1, 0.0)
    first = softmax_grad(x, bins, mask, lengths, mode="sum", normalize="sample")
    address = first.data_ptr()
    first.fill_(float("nan"))  # what a stale buffer may hold
    del first
    # More cells masked and other bins: a cell that does not count must be written as 0 too.
    x, bins, mask, lengths = softmax_inputs(2, 0.5)
    second = softmax_grad(x, bins, mask, lengths, mode="sum", normalize="sample")
    assert second.data_ptr() == address  # the freed buffer came back
    torch.testing.assert_close(second.double(), reference_softmax_grad(x, bins, mask, lengths, mode="sum",
                                                                       normalize="sample"), atol=2e-6, rtol=2e-4)


def test_buffer_in_use_is_never_handed_out():
    x, bins, mask, lengths = softmax_inputs(3, 0.2)
    first = softmax_grad(x, bins, mask, lengths, mode="pair")
    kept = first.clone()
    second = softmax_grad(x * 0.5, bins, mask, lengths, mode="pair")
    assert second.data_ptr() != first.data_ptr()
    assert torch.equal(first, kept)


def test_binary_buffer_reused_with_every_cell_written():
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(BINARY_SHAPE, generator=gen, dtype=torch.float64) * 3
    y = torch.rand(BINARY_SHAPE, generator=gen) < 0.05
    lengths = torch.tensor([256, 200, 131, 77])
    loss = symfocal.SymFocalLoss(mode="average", min_separation=3)
    a = x.float().requires_grad_(True)
    loss(a, y, lengths=lengths).backward()
    address = a.grad.data_ptr()
    a.grad.fill_(float("nan"))
    a.grad = None
    b = x.flip(0).float().requires_grad_(True)  # other lengths on the same rows: other cells count
    loss(b, y, lengths=lengths).backward()
    assert b.grad.data_ptr() == address
    ref = x.flip(0).requires_grad_(True)
    reference.sym_focal_loss(ref, y, mode="average", min_separation=3, lengths=lengths).backward()
    torch.testing.assert_close(b.grad.double(), ref.grad, atol=1e-8, rtol=1e-4)


def test_bfloat16_gradient_through_a_kept_buffer():
    x, bins, mask, lengths = softmax_inputs(5, 0.1)
    # bfloat16 [2, 64, 64, 40] is 0.6 MiB: the default allocator. Twice the bins: a kept buffer.
    x = torch.cat([x, x.flip(-1)], dim=-1)
    bins2 = torch.where(bins == -100, bins, bins * 2)
    got = softmax_grad(x, bins2, mask, lengths, dtype=torch.bfloat16, mode="average")
    want = reference_softmax_grad(x.bfloat16(), bins2, mask, lengths, mode="average")
    torch.testing.assert_close(got.double(), want, atol=2e-3, rtol=3e-2)
