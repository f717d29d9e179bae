"""normalize= and normalizer= of the binary loss (SPEC.md, "Reductions"): what a mean divides by.
Each against the float64 reference and against the formula of the project it comes from
(RetinaNet's focal sum over the positives, as torchvision computes it; a per-sample mean),
on the CPU kernels (both of their forward paths) and on the CUDA kernels (emulated, or a GPU)."""

import pytest
import torch

import cuda_emulation
import symfocal
from helpers import compare_with_reference, grad_of, random_inputs
from symfocal import reference
from test_sigmoid_cuda import EMULATED, needs_gpu

MODES = ["average", "pair", "upper", "none"]


@pytest.fixture(params=["cpu", pytest.param("gpu", marks=needs_gpu), pytest.param("emulated", marks=EMULATED)])
def kernels(request):
    """(device, loss): the CPU kernels, the CUDA kernels on a GPU, or the CUDA kernels emulated."""
    if request.param == "gpu":
        return "cuda", symfocal.sym_focal_loss
    if request.param == "emulated":
        return "cpu", cuda_emulation.sym_focal_loss
    return "cpu", symfocal.sym_focal_loss


def _inputs(device, shape=(3, 45, 45), dtype=torch.float32, target="bool", density=0.03):
    x, t = random_inputs(shape, dtype=dtype, target=target, density=density, device=device)
    lengths = torch.tensor([45, 30, 12], device=device)[: shape[0]] if len(shape) == 3 else None
    return x, t, lengths


@pytest.mark.parametrize("normalize", ["cells", "positives", "sample"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("penalty", [0.0, 0.3])  # CPU: without one the training forward, with one the backward op
def test_each_normalization_against_the_reference(kernels, normalize, mode, penalty):
    device, loss = kernels
    x, t, lengths = _inputs(device, target="soft")
    for reduction in ("mean", "sum"):
        compare_with_reference(x, t, fused=loss, mode=mode, normalize=normalize, reduction=reduction,
                               lengths=lengths, mask=torch.rand(45, 45, device=device) < 0.9, min_separation=1,
                               label_smoothing=0.1, symmetry_weight=penalty)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
@pytest.mark.parametrize("normalize", ["positives", "sample"])
def test_dtypes_and_channels(kernels, dtype, normalize):
    device, loss = kernels
    x, t, _ = _inputs(device, shape=(2, 3, 40, 40), dtype=dtype)  # [B, C, L, L]: a sample is each (b, c)
    compare_with_reference(x, t, fused=loss, normalize=normalize, lengths=torch.tensor([40, 25], device=device))


def test_positives_is_retinanets_normalization(kernels):
    """mode none, normalize positives: torchvision's sigmoid_focal_loss summed, over max(1, #positives)."""
    torchvision_ops = pytest.importorskip("torchvision.ops")
    device, loss = kernels
    x, t, _ = _inputs(device, shape=(2, 50, 50), dtype=torch.float64)
    ours, grad, _ = grad_of(loss, x, t, mode="none", normalize="positives")
    xr = x.detach().clone().requires_grad_(True)
    theirs = torchvision_ops.sigmoid_focal_loss(xr, t.double(), alpha=0.25, gamma=2.0, reduction="sum")
    theirs = theirs / t.sum().clamp(min=1)
    (their_grad,) = torch.autograd.grad(theirs * 1.7, xr)
    assert t.sum() > 1
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(grad, their_grad, rtol=1e-9, atol=1e-12)


def test_positives_without_any_positive_divide_by_one(kernels):
    device, loss = kernels
    x, _, _ = _inputs(device, dtype=torch.float64)
    t = torch.zeros_like(x, dtype=torch.bool)
    torch.testing.assert_close(loss(x, t, normalize="positives"), loss(x, t, reduction="sum"), rtol=1e-12, atol=0)


def test_sample_is_the_mean_of_the_samples_means(kernels):
    device, loss = kernels
    x, t, lengths = _inputs(device, dtype=torch.float64)
    mask = torch.ones(3, 45, 45, dtype=torch.bool, device=device)
    mask[2] = False  # a sample without a valid cell adds 0 and still counts in the mean
    means = [loss(x[b:b + 1], t[b:b + 1], lengths=lengths[b:b + 1]) for b in range(2)]
    expected = (means[0] + means[1] + 0.0) / 3
    torch.testing.assert_close(loss(x, t, lengths=lengths, mask=mask, normalize="sample"), expected,
                               rtol=1e-12, atol=0)
    assert not torch.allclose(loss(x, t, lengths=lengths, mask=mask), expected)  # cells: another number


@pytest.mark.parametrize("normalize", ["cells", "positives"])
def test_normalizer_replaces_the_count(kernels, normalize):
    device, loss = kernels
    x, t, lengths = _inputs(device, dtype=torch.float64)
    count = torch.tensor(37.5, device=device)
    for penalty in (0.0, 0.2):  # the penalty keeps its own mean over pairs
        with_count, grad, _ = grad_of(loss, x, t, lengths=lengths, normalize=normalize, normalizer=count,
                                      symmetry_weight=penalty)
        if penalty == 0.0:
            summed, sum_grad, _ = grad_of(loss, x, t, lengths=lengths, reduction="sum")
            torch.testing.assert_close(with_count, summed / 37.5, rtol=1e-12, atol=0)
            torch.testing.assert_close(grad, sum_grad / 37.5, rtol=1e-10, atol=1e-15)
        compare_with_reference(x, t, fused=loss, lengths=lengths, normalize=normalize, normalizer=count,
                               symmetry_weight=penalty)
    # A number works as well as a tensor.
    torch.testing.assert_close(loss(x, t, normalizer=37.5), loss(x, t, normalizer=count), rtol=0, atol=0)


def test_a_count_that_is_not_positive_gives_zero_without_validation(kernels):
    device, loss = kernels
    x, t, _ = _inputs(device)
    for bad in (0.0, -3.0, float("nan")):
        kw = dict(normalizer=torch.tensor(bad, device=device))
        if loss is symfocal.sym_focal_loss:
            kw["validate"] = False
            with pytest.raises(ValueError, match="normalizer must be finite and > 0"):
                loss(x, t, normalizer=torch.tensor(bad, device=device))
        else:
            continue  # the emulated loss always validates
        out, grad, _ = grad_of(loss, x, t, **kw)
        assert out.item() == 0.0 and torch.count_nonzero(grad) == 0


def test_the_stats_hold_the_positive_mass_and_each_samples_scale():
    x, t, lengths = _inputs("cpu", dtype=torch.float64, target="soft")
    args = symfocal.sigmoid.op_arguments(x, t, lengths, None, None, mode="pair", alpha=0.25, gamma=2.0,
                                         pos_weight=None, label_smoothing=0.2, min_separation=2,
                                         symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0,
                                         reduction="mean", normalize="sample")
    _, stats = torch.ops.symfocal.forward(*args)
    assert stats.shape == (6 + 3,)
    valid = reference.valid_cells(x, lengths, None, 2, "pair")
    torch.testing.assert_close(stats[4], torch.where(valid, t, 0.0).sum(), rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(stats[6:], 1.0 / valid.sum((-1, -2)).double() / 3, rtol=1e-14, atol=0)


def test_compiled_matches_eager():
    x, t, lengths = _inputs("cpu")
    count = torch.tensor(12.0)

    def step(x, t, lengths, count):
        return (symfocal.sym_focal_loss(x, t, lengths=lengths, normalize="positives", normalizer=count)
                + symfocal.sym_focal_loss(x, t, lengths=lengths, normalize="sample"))

    compiled = torch.compile(step, fullgraph=True)
    eager_loss, eager_grad, _ = grad_of(lambda x, t: step(x, t, lengths, count), x, t)
    loss, grad, _ = grad_of(lambda x, t: compiled(x, t, lengths, count), x, t)
    torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(grad, eager_grad, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("normalize", ["positives", "sample"])
def test_opcheck(normalize):
    x, t, lengths = _inputs("cpu")
    x.requires_grad_(True)
    normalizer = torch.tensor(9.0) if normalize == "positives" else None
    for penalty in (0.0, 0.3):
        args = symfocal.sigmoid.op_arguments(x, t, lengths, None, normalizer, mode="average", alpha=0.25,
                                             gamma=2.0, pos_weight=None, label_smoothing=0.0, min_separation=0,
                                             symmetry_weight=penalty, symmetry_penalty="l1", huber_delta=1.0,
                                             reduction="mean", normalize=normalize)
        torch.library.opcheck(torch.ops.symfocal.forward.default, args)


def test_bad_arguments_name_themselves():
    x, t, _ = _inputs("cpu")
    loss = symfocal.sym_focal_loss
    with pytest.raises(ValueError, match="normalize must be one of 'cells', 'positives', 'sample'"):
        loss(x, t, normalize="positive")
    with pytest.raises(ValueError, match="normalizer replaces the count of reduction='mean'"):
        loss(x, t, reduction="sum", normalizer=3.0)
    with pytest.raises(ValueError, match="normalizer replaces the count"):
        loss(x, t, normalize="sample", normalizer=3.0)
    with pytest.raises(ValueError, match="one-element"):
        loss(x, t, normalizer=torch.ones(2))
    with pytest.raises(ValueError, match="must not require grad"):
        loss(x, t, normalizer=torch.tensor(2.0, requires_grad=True))
    with pytest.raises(ValueError, match="normalizer is on meta"):
        loss(x, t, normalizer=torch.tensor(2.0, device="meta"))
    with pytest.raises(TypeError, match="normalizer must be a real number"):
        loss(x, t, normalizer="3")
    with pytest.raises(ValueError, match="normalizer must be finite and > 0, got inf"):
        loss(x, t, normalizer=float("inf"))
    with pytest.raises(ValueError, match="normalize must be"):
        symfocal.SymFocalLoss(normalize="all")


def test_module_carries_normalize_and_takes_a_normalizer():
    x, t, lengths = _inputs("cpu")
    module = symfocal.SymFocalLoss(mode="none", normalize="positives")
    assert "normalize='positives'" in repr(module)
    restored = symfocal.SymFocalLoss()
    restored.load_state_dict(module.state_dict())
    assert restored.normalize == "positives"
    torch.testing.assert_close(module(x, t, lengths, normalizer=torch.tensor(4.0)),
                               symfocal.sym_focal_loss(x, t, mode="none", lengths=lengths, reduction="sum") / 4)


def test_num_positives_counts_what_positives_divides_by():
    x, t, lengths = _inputs("cpu", target="soft")
    for mode in MODES:
        n = symfocal.num_positives(t, lengths=lengths, min_separation=3, mode=mode)
        torch.testing.assert_close(symfocal.sym_focal_loss(x, t, lengths=lengths, min_separation=3, mode=mode,
                                                           normalize="positives"),
                                   symfocal.sym_focal_loss(x, t, lengths=lengths, min_separation=3, mode=mode,
                                                           normalizer=n))


# ---- the softmax loss over bins: normalizer replaces the cell count of normalize="cells" ----

@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def softmax_loss(request):
    return cuda_emulation.sym_softmax_focal_loss if request.param == "emulated" else symfocal.sym_softmax_focal_loss


def test_softmax_normalizer_replaces_the_cell_count(softmax_loss):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 20, 20, 6, dtype=torch.float64, generator=g).requires_grad_(True)
    t = torch.randint(0, 6, (2, 20, 20), generator=g)
    lengths = torch.tensor([20, 13])
    ours = softmax_loss(x, t, mode="sum", lengths=lengths, normalizer=torch.tensor(50.0))
    (grad,) = torch.autograd.grad(ours, x)
    total = softmax_loss(x, t, mode="sum", lengths=lengths, reduction="sum")
    (sum_grad,) = torch.autograd.grad(total, x)
    ref = reference.sym_softmax_focal_loss(x, t, mode="sum", lengths=lengths, normalizer=50.0)
    torch.testing.assert_close(ours, total / 50, rtol=1e-12, atol=0)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, sum_grad / 50, rtol=1e-10, atol=1e-15)
    assert not torch.allclose(ours, softmax_loss(x, t, mode="sum", lengths=lengths))


def test_softmax_normalizer_errors():
    x = torch.randn(1, 8, 8, 4)
    t = torch.randint(0, 4, (1, 8, 8))
    with pytest.raises(ValueError, match="normalizer replaces the count of reduction='mean' with normalize='cells'"):
        symfocal.sym_softmax_focal_loss(x, t, normalize="sample", normalizer=3.0)
    with pytest.raises(ValueError, match="normalizer replaces the count"):
        symfocal.sym_softmax_focal_loss(x, t, reduction="sum", normalizer=3.0)
    with pytest.raises(ValueError, match="finite and > 0"):
        symfocal.sym_softmax_focal_loss(x, t, normalizer=0.0)
    out = symfocal.sym_softmax_focal_loss(x, t, normalizer=torch.tensor(-1.0), validate=False)
    assert out.item() == 0.0


@pytest.mark.parametrize("mode", ["none", "upper", "average"])
def test_backward_op_with_normalize_sample_scales_each_sample(mode):
    """The backward op (what torch.compile traces and the GPU runs; the CPU's eager training takes
    forward_train) with normalize="sample": each sample's gradient by its own mean, against float64."""
    from symfocal.sigmoid import op_arguments

    x, t = random_inputs((3, 37, 37), target="bool")
    lengths = torch.tensor([37, 20, 5])
    kw = dict(mode=mode, alpha=0.25, gamma=2.0, pos_weight=1.0, label_smoothing=0.0, min_separation=2,
              symmetry_weight=0.0, symmetry_penalty="l1", huber_delta=1.0, reduction="mean", normalize="sample")
    args = op_arguments(x, t, lengths, None, **kw)
    loss, stats = torch.ops.symfocal.forward(*args)
    grad_in = torch.tensor(1.7)
    grad = torch.ops.symfocal.backward(grad_in, x, *args[1:5], *args[6:8], stats, *args[8:])
    xr = x.double().requires_grad_(True)
    ref = reference.sym_focal_loss(xr, t, lengths=lengths, mode=mode, min_separation=2, normalize="sample")
    (gr,) = torch.autograd.grad(ref, xr, torch.tensor(1.7, dtype=torch.float64))
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(grad.double(), gr, rtol=1e-4, atol=1e-8)
