"""Bitwise-identical loss and gradient across calls and thread counts."""

import pytest
import torch

import symfocal
from helpers import grad_of, random_inputs


def _run(x, t, **kw):
    return grad_of(symfocal.sym_focal_loss, x, t, **kw)[:2]


def test_repeated_calls_are_bitwise_identical():
    x, t = random_inputs((4, 130, 130), target="soft")
    kw = dict(mode="pair", symmetry_weight=0.3, lengths=torch.tensor([130, 100, 64, 3]))
    torch.manual_seed(0)
    first = _run(x, t, **kw)
    for _ in range(3):
        torch.manual_seed(0)
        again = _run(x, t, **kw)
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


# float64 too: its rounding is too fine to hide a sum whose order follows the threads' chunks.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw", [
    dict(mode="average", symmetry_weight=0.2),                       # forward op, then backward op
    dict(mode="pair", lengths=torch.tensor([100, 77, 31, 100, 64, 2])),  # the CPU training forward
    dict(mode="upper", reduction="sum", min_separation=3, symmetry_weight=0.5, symmetry_penalty="huber",
         lengths=torch.tensor([99, 100, 1, 50, 100, 80])),
], ids=["penalty", "lengths", "all"])
def test_thread_count_does_not_change_a_bit(dtype, kw):
    x, t = random_inputs((6, 100, 100), dtype=dtype, target="soft")
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 1):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            results.append(_run(x, t, **kw))
    finally:
        torch.set_num_threads(before)
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]), (loss, results[0][0])
        assert torch.equal(grad, results[0][1])


# Modes none and upper without a penalty stream row by row on the CPU (8-row work items):
# hard (bool) and soft targets, per-cell weights, normalize sample, a gradient map.
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kw", [
    dict(mode="none", target="bool", gamma=0.5),
    dict(mode="upper", target="soft", min_separation=3, lengths=torch.tensor([99, 100, 1, 50, 100, 80])),
    dict(mode="none", target="bool", normalize="sample", min_separation=4,
         mask=torch.rand(6, 100, 100) < 0.9, weight=torch.rand(100, 100)),
    dict(mode="upper", target="bool", reduction="none"),
], ids=["none-hard", "upper-lengths", "none-per-cell", "upper-map"])
def test_streamed_modes_do_not_change_a_bit_with_threads(dtype, kw):
    kw = dict(kw)
    x, t = random_inputs((6, 100, 100), dtype=dtype, target=kw.pop("target"))
    before = torch.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3, 1):
            torch.set_num_threads(n)
            torch.manual_seed(0)  # the same incoming gradient map
            results.append(_run(x, t, **kw))
    finally:
        torch.set_num_threads(before)
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]), (loss, results[0][0])
        assert torch.equal(grad, results[0][1])
