"""weight= (a float map broadcastable to the cells, each cell's loss times it) and ignore_index= (a target
value that drops its cell) for both loss families: against the float64 reference, against the formulas
of the projects users come from (torch's binary_cross_entropy_with_logits with weight, ESM's -1 targets,
cross_entropy's ignore_index), on the CPU kernels and the CUDA kernels (emulated)."""

import pytest
import torch
import torch.nn.functional as F

import cuda_emulation
import symfocal
from helpers import compare_with_reference, grad_of, random_inputs
from test_sigmoid_cuda import EMULATED
from test_softmax import compare, loss_and_grad, random_logits, random_target


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def binary(request):
    return cuda_emulation.sym_focal_loss if request.param == "emulated" else symfocal.sym_focal_loss


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def softmax(request):
    return cuda_emulation.sym_softmax_focal_loss if request.param == "emulated" else symfocal.sym_softmax_focal_loss


def _unknown(t, fraction=0.15, value=-1):
    """t with a random `fraction` of its cells set to `value` (ESM's -1 for an unknown contact)."""
    return torch.where(torch.rand(t.shape) < fraction, torch.tensor(value, dtype=t.dtype), t)


def _weights(B, L):
    """Weight maps of every broadcast a user passes: shared [L, L], per sample [B, 1, 1], per row [B, L, 1],
    full float64 (converted to the accumulation dtype), and one with zeros."""
    zeros = torch.rand(B, L, L) * (torch.rand(B, L, L) < 0.7)
    return [torch.rand(L, L) * 3, torch.rand(B, 1, 1) + 0.5, torch.rand(B, L, 1), torch.rand(B, L, L).double(), zeros]


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_binary_weight_against_the_reference(binary, mode):
    x, t = random_inputs((2, 37, 37), target="soft")
    for weight in _weights(2, 37):
        for reduction in ("mean", "sum", "none"):
            compare_with_reference(x, t, fused=binary, mode=mode, weight=weight, reduction=reduction,
                                   lengths=torch.tensor([37, 30]), symmetry_weight=0.1)
    for normalize in ("positives", "sample"):
        compare_with_reference(x, t, fused=binary, mode=mode, weight=_weights(2, 37)[2], normalize=normalize,
                               gamma=1.5, label_smoothing=0.1)


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("target", ["soft", torch.int8, torch.float16])
def test_binary_ignore_index_against_the_reference(binary, mode, target):
    # gamma 0.5: with the -1 read as a target, 1 - p_t < 0 and its power would be NaN.
    x, t = random_inputs((2, 35, 35), target=target)
    t = _unknown(t)
    mask = torch.rand(35, 35) < 0.9
    for reduction in ("mean", "sum", "none"):
        compare_with_reference(x, t, fused=binary, mode=mode, ignore_index=-1, gamma=0.5, reduction=reduction,
                               mask=mask, symmetry_weight=0.2, weight=torch.rand(35, 35))
    compare_with_reference(x, t, fused=binary, mode=mode, ignore_index=-1, normalize="positives")
    compare_with_reference(x, t, fused=binary, mode=mode, ignore_index=-1, normalize="sample", label_smoothing=0.1)


def test_binary_weight_is_torchs_weighted_bce(binary):
    # mode none, gamma 0, alpha None is binary cross-entropy; weight= as torch's: each element's loss times
    # its weight, the mean over all cells (not over the weights).
    x, t = random_inputs((3, 40, 40), dtype=torch.float64, target="soft")
    w = torch.rand(40, 40, dtype=torch.float64) * 2
    ours, grad, _ = grad_of(binary, x, t, mode="none", alpha=None, gamma=0.0, weight=w)
    xr = x.clone().requires_grad_(True)
    theirs = F.binary_cross_entropy_with_logits(xr, t, weight=w)
    theirs.backward(torch.tensor(1.7, dtype=torch.float64))
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, xr.grad, rtol=1e-10, atol=1e-15)


def test_binary_ignore_index_is_esms_masked_bce(binary):
    # ESM's contact regression drops the -1 cells and averages over the rest.
    x, t = random_inputs((2, 30, 30), dtype=torch.float64, target=torch.int8)
    t = _unknown(t, 0.3)
    ours, grad, _ = grad_of(binary, x, t, mode="none", alpha=None, gamma=0.0, ignore_index=-1)
    xr = x.clone().requires_grad_(True)
    keep = t != -1
    theirs = F.binary_cross_entropy_with_logits(xr[keep], t[keep].double())
    theirs.backward(torch.tensor(1.7, dtype=torch.float64))
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, xr.grad, rtol=1e-10, atol=1e-15)
    assert torch.count_nonzero(grad[~keep]) == 0
    # The positives of normalize="positives" count only the known cells.
    positives = symfocal.num_positives(t, mode="none", ignore_index=-1)
    assert positives == float((t == 1).sum())


def test_an_ignored_cell_is_a_masked_cell(binary):
    # Bitwise: ignore_index gives what the mask of the known cells gives, in every mode (penalty pairs too).
    x, t = random_inputs((2, 33, 33), target="soft")
    t = _unknown(t)
    known = t != -1
    for mode in ("average", "pair", "upper", "none"):
        a = grad_of(binary, x, t, mode=mode, ignore_index=-1, symmetry_weight=0.3)
        b = grad_of(binary, x, torch.where(known, t, 0.0), mode=mode, mask=known, symmetry_weight=0.3,
                    incoming=a[2])
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]), mode


def test_weight_map_read_as_given_and_broadcast(binary):
    # A shared [L, L] weight gives what the same weight expanded per sample gives, and a float16 copy of a
    # weight what its float32 values give: one conversion of the small tensor, never a per-sample copy.
    x, t = random_inputs((3, 40, 40), target="soft")
    w = torch.rand(40, 40).half().float()
    a = grad_of(binary, x, t, weight=w, reduction="sum")
    b = grad_of(binary, x, t, weight=w.expand(3, 40, 40).contiguous(), reduction="sum", incoming=a[2])
    c = grad_of(binary, x, t, weight=w.half(), reduction="sum", incoming=a[2])
    for other in (b, c):
        assert torch.equal(a[0], other[0]) and torch.equal(a[1], other[1])
    # A uniform weight of 2 doubles the loss and its gradient.
    d = grad_of(binary, x, t, weight=torch.full((1, 1), 2.0), reduction="sum", incoming=a[2])
    e = grad_of(binary, x, t, reduction="sum", incoming=a[2])
    torch.testing.assert_close(d[0], 2 * e[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(d[1], 2 * e[1], rtol=1e-6, atol=1e-12)


def test_binary_gradcheck():
    x, t = random_inputs((2, 9, 9), dtype=torch.float64, target="soft")
    t = _unknown(t, 0.2)
    w = torch.rand(9, 9, dtype=torch.float64)
    for mode in ("average", "pair"):
        fn = lambda x: symfocal.sym_focal_loss(x, t, mode=mode, weight=w, ignore_index=-1,  # noqa: E731
                                               symmetry_weight=0.1, symmetry_penalty="l2", gamma=1.5)
        assert torch.autograd.gradcheck(fn, (x.clone().requires_grad_(True),))


def test_binary_compile():
    x, t = random_inputs((2, 40, 40), target="soft")
    t = _unknown(t)
    w = torch.rand(40, 40)

    def fn(x, t, w):
        return symfocal.sym_focal_loss(x, t, weight=w, ignore_index=-1, normalize="positives")

    eager = grad_of(fn, x, t, w=w)
    compiled = grad_of(torch.compile(fn, fullgraph=True), x, t, w=w, incoming=eager[2])
    torch.testing.assert_close(compiled[0], eager[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(compiled[1], eager[1], rtol=1e-5, atol=1e-9)


def test_binary_module():
    x, t = random_inputs((2, 20, 20), target=torch.int8)
    t = _unknown(t)
    w = torch.rand(20, 20)
    criterion = symfocal.SymFocalLoss(mode="none", ignore_index=-1)
    assert torch.equal(criterion(x, t, weight=w), symfocal.sym_focal_loss(x, t, mode="none", ignore_index=-1,
                                                                         weight=w))
    assert "ignore_index=-1" in repr(criterion)
    restored = symfocal.SymFocalLoss()
    restored.load_state_dict(criterion.state_dict())
    assert restored.ignore_index == -1


def test_binary_bad_arguments_name_themselves():
    x, t = random_inputs((2, 16, 16), target="soft")
    with pytest.raises(TypeError, match="weight must be a floating tensor"):
        symfocal.sym_focal_loss(x, t, weight=torch.ones(16, 16, dtype=torch.int64))
    with pytest.raises(ValueError, match="weight of shape .* does not broadcast"):
        symfocal.sym_focal_loss(x, t, weight=torch.ones(3, 16, 16))
    with pytest.raises(ValueError, match="weight is on meta"):
        symfocal.sym_focal_loss(x, t, weight=torch.ones(16, 16, device="meta"))
    with pytest.raises(ValueError, match="weight must not require grad"):
        symfocal.sym_focal_loss(x, t, weight=torch.ones(16, 16, requires_grad=True))
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight values must be finite and >= 0"):
            symfocal.sym_focal_loss(x, t, weight=torch.full((16, 16), bad))
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        symfocal.sym_focal_loss(x, t, ignore_index=-0.5)
    with pytest.raises(ValueError, match="ignore_index must not be a label"):
        symfocal.sym_focal_loss(x, t, ignore_index=1)
    with pytest.raises(ValueError, match=r"target values must be in \[0, 1\] \(soft labels\); found"):
        symfocal.sym_focal_loss(x, _unknown(t))  # -1 without ignore_index
    with pytest.raises(ValueError, match=r"int8 must hold only 0 and 1 or ignore_index \(-1\)"):
        symfocal.sym_focal_loss(x, torch.full((2, 16, 16), 2, dtype=torch.int8), ignore_index=-1)
    # Unchecked, a negative weight is used as given: finite, never NaN.
    out = symfocal.sym_focal_loss(x, t, weight=torch.full((16, 16), -1.0), validate=False)
    assert torch.isfinite(out)


# ---- the softmax loss over bins ----

@pytest.mark.parametrize("mode", ["sum", "average", "pair", "upper", "none"])
def test_softmax_weight_and_ignore_against_the_reference(softmax, mode):
    x = random_logits((2, 19, 19, 6), torch.float32)
    t = _unknown(random_target((2, 19, 19), 6, torch.int64), 0.2, -100)
    for weight in _weights(2, 19):
        for reduction in ("mean", "sum", "none"):
            compare(x, t, fused=softmax, mode=mode, weight=weight, ignore_index=-100, reduction=reduction,
                    gamma=0.5, lengths=torch.tensor([19, 12]))
    compare(x, t, fused=softmax, mode=mode, ignore_index=-100, normalize="sample", label_smoothing=0.1)
    soft = random_target((2, 19, 19), 6, "soft", torch.float32)
    compare(x, soft, fused=softmax, mode=mode, weight=_weights(2, 19)[0], normalize="sample")
    # uint8 bins with 255 for an unknown pair, bins in [..., C, L, L].
    t8 = _unknown(random_target((2, 19, 19), 6, torch.uint8), 0.2, 255)
    compare(x.movedim(-1, -3), t8, fused=softmax, mode=mode, ignore_index=255, class_dim=-3,
            weight=_weights(2, 19)[1])


def test_softmax_is_cross_entropy_with_ignore_index_and_a_weight(softmax):
    x = random_logits((2, 24, 24, 7))
    t = _unknown(random_target((2, 24, 24), 7, torch.int64), 0.25, -100)
    ours, grad, _ = loss_and_grad(softmax, x, t, mode="none", ignore_index=-100)
    xr = x.clone().requires_grad_(True)
    theirs = F.cross_entropy(xr.reshape(-1, 7), t.reshape(-1), ignore_index=-100)
    theirs.backward(torch.tensor(1.3, dtype=torch.float64))
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, xr.grad, rtol=1e-10, atol=1e-15)
    # A per-pair weight: each cell's cross-entropy times it, over the cells that count.
    w = torch.rand(24, 24, dtype=torch.float64)
    ours = softmax(x, t, mode="none", ignore_index=-100, weight=w)
    cells = F.cross_entropy(x.reshape(-1, 7), t.reshape(-1), ignore_index=-100, reduction="none").reshape(2, 24, 24)
    torch.testing.assert_close(ours, (cells * w).sum() / (t != -100).sum(), rtol=1e-12, atol=0)


def test_softmax_bad_arguments_name_themselves():
    x = random_logits((2, 8, 8, 4), torch.float32)
    t = random_target((2, 8, 8), 4, torch.int64)
    with pytest.raises(ValueError, match="ignore_index must not be a label the target uses \\(0 to 3\\)"):
        symfocal.sym_softmax_focal_loss(x, t, ignore_index=2)
    with pytest.raises(ValueError, match="ignore_index needs a target of bin indices"):
        symfocal.sym_softmax_focal_loss(x, random_target((2, 8, 8), 4, "soft", torch.float32), ignore_index=-1)
    with pytest.raises(ValueError, match=r"must be in \[0, C\) = \[0, 4\) \(or ignore_index, -100\)"):
        symfocal.sym_softmax_focal_loss(x, _unknown(t, 0.5, -1), ignore_index=-100)
    with pytest.raises(ValueError, match="weight of shape .* does not broadcast to the cells' shape"):
        symfocal.sym_softmax_focal_loss(x, t, weight=torch.ones(8, 8, 4))
    with pytest.raises(ValueError, match="weight values must be finite and >= 0"):
        symfocal.sym_softmax_focal_loss(x, t, weight=-torch.ones(8, 8))
    # The op itself refuses ignore_index with soft targets (no Python in front).
    with pytest.raises(ValueError, match="ignore_index needs a target of bin indices"):
        torch.ops.symfocal.softmax_forward(x, torch.softmax(x, -1), None, None, None, None, None, "sum", 0.0, 0.0,
                                           0, "mean", "cells", -1)


def test_softmax_module_and_gradcheck():
    x = random_logits((2, 6, 6, 3)).requires_grad_(True)
    t = _unknown(random_target((2, 6, 6), 3, torch.int64), 0.3, -100)
    w = torch.rand(2, 1, 6, dtype=torch.float64)
    criterion = symfocal.SymSoftmaxFocalLoss(mode="sum", gamma=1.0, ignore_index=-100)
    assert torch.autograd.gradcheck(lambda x: criterion(x, t, weight=w), (x,))
    assert "ignore_index=-100" in repr(criterion)
