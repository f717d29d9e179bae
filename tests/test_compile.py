"""torch.compile: no graph break, same results as eager, no recompile per L with dynamic=True."""

import pytest
import torch
from torch import nn

import symfocal
from helpers import random_inputs


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 3, padding=1))


@pytest.mark.parametrize("mode", ["average", "pair"])
def test_fullgraph_matches_eager(mode):
    crit = symfocal.SymFocalLoss(mode=mode, min_separation=2, symmetry_weight=0.1)
    feats = torch.randn(2, 3, 40, 40)
    _, y = random_inputs((2, 40, 40))
    lengths = torch.tensor([40, 29])
    results = []
    for compiled in (False, True):
        model = _model()

        def step(f):
            return crit(model(f).squeeze(1), y, lengths=lengths)

        fn = torch.compile(step, fullgraph=True) if compiled else step
        loss = fn(feats)
        loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (l0, g0), (l1, g1) = results
    torch.testing.assert_close(l1, l0, atol=1e-6, rtol=1e-5)
    for a, b in zip(g0, g1):
        torch.testing.assert_close(b, a, atol=1e-6, rtol=1e-4)


def test_dynamic_shapes_compile_once():
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    counter = CompileCounter()
    crit = symfocal.SymFocalLoss(mode="average")

    @torch.compile(backend=counter, dynamic=True, fullgraph=True)
    def loss_of(x, y):
        return crit(x, y)

    for L in (20, 33, 47, 64):
        x, y = random_inputs((2, L, L))
        expect = symfocal.sym_focal_loss(x, y)
        torch.testing.assert_close(loss_of(x, y), expect)
    assert counter.frame_count == 1


def test_validate_is_skipped_under_compile():
    """A target outside [0, 1] raises in eager mode with validate=True; compiled code does not look
    at the elements: one graph (a check would break it, and then raise), holding the op alone,
    computing what eager validate=False computes."""
    x = torch.randn(1, 8, 8)
    bad = torch.full((1, 8, 8), 2.0)
    with pytest.raises(ValueError):
        symfocal.sym_focal_loss(x, bad)

    graphs = []

    def recording_backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(symfocal.sym_focal_loss, backend=recording_backend)(x, bad)  # graph breaks allowed
    assert len(graphs) == 1
    ops = [str(n.target) for n in graphs[0].graph.nodes if n.op in ("call_function", "call_method")]
    assert any("symfocal" in op for op in ops), ops
    assert all("symfocal" in op or "getitem" in op for op in ops), ops
    assert torch.equal(out, symfocal.sym_focal_loss(x, bad, validate=False))
    assert out != symfocal.sym_focal_loss(x, bad.clamp(max=1.0))
