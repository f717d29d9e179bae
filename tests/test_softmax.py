"""The softmax focal loss over bins (distogram heads) against the float64 reference, OpenFold's
distogram loss, gradcheck, opcheck, torch.compile, extremes, determinism and every bad input."""

import itertools

import pytest
import torch
import torch.nn.functional as F

import symfocal
from symfocal import reference

MODES = ("sum", "average", "pair", "upper", "none")
REDUCTIONS = ("mean", "sum", "none")
NORMALIZE = ("cells", "sample")


def random_logits(shape, dtype=torch.float64, scale=2.0):
    return (torch.randn(shape, dtype=torch.float64) * scale).to(dtype)


def random_target(shape, C, kind, dtype=torch.float64):
    """Bin indices [..., L, L] (kind: a torch integer dtype) or soft distributions [..., L, L, C]."""
    if kind == "soft":
        return torch.softmax(torch.randn(*shape, C, dtype=torch.float64) * 2, -1).to(dtype)
    # Most cells in the last bin, as in a distogram (beyond the last boundary).
    bins = torch.randint(0, C, shape)
    far = torch.rand(shape) < 0.6
    return torch.where(far, torch.full_like(bins, C - 1), bins).to(kind)


def loss_and_grad(fn, x, t, incoming=None, **kw):
    x = x.detach().requires_grad_(True)
    out = fn(x, t, **kw)
    g = incoming if incoming is not None else (torch.randn_like(out) if out.dim() else torch.ones_like(out) * 1.3)
    (gx,) = torch.autograd.grad(out, x, g)
    return out.detach(), gx, g


def compare(x, t, *, atol=None, rtol=None, fused=symfocal.sym_softmax_focal_loss, **kw):
    """fused (the library's loss unless told) in x's dtype against the reference on float64
    copies (on the CPU), the same incoming gradient."""
    loss, grad, g = loss_and_grad(fused, x, t, **kw)
    cpu = {k: (v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}
    t64 = t.cpu().double() if t.dtype.is_floating_point else t.cpu()
    ref_loss, ref_grad, _ = loss_and_grad(reference.sym_softmax_focal_loss, x.detach().cpu().double(), t64,
                                          incoming=g.cpu().double(), **cpu)
    loss, grad = loss.cpu(), grad.cpu()
    if atol is None:
        atol = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 3e-3, torch.bfloat16: 2e-2}[x.dtype]
    if rtol is None:
        rtol = {torch.float64: 1e-9, torch.float32: 2e-4, torch.float16: 3e-3, torch.bfloat16: 2e-2}[x.dtype]
    assert grad.shape == x.shape and grad.dtype == x.dtype
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    torch.testing.assert_close(loss.double(), ref_loss, atol=atol, rtol=rtol)
    scale = ref_grad.abs().amax().clamp(min=1e-30) if ref_grad.numel() else torch.tensor(1.0)
    torch.testing.assert_close(grad.double() / scale, ref_grad / scale, atol=atol, rtol=rtol)
    return loss, grad


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("normalize", NORMALIZE)
@pytest.mark.parametrize("target", ["int64", "soft"])
def test_every_mode_reduction_normalize(mode, reduction, normalize, target):
    # L = 37: a diagonal tile, an off-diagonal one and a partial one; C = 7: not a vector width.
    shape, C = (2, 37, 37), 7
    x = random_logits(shape + (C,))
    t = random_target(shape, C, torch.int64 if target == "int64" else "soft")
    compare(x, t, mode=mode, reduction=reduction, normalize=normalize, gamma=2.0)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("target", ["uint8", "int32", "soft"])
def test_gamma_alpha_smoothing(gamma, target):
    shape, C = (2, 33, 33), 12
    x = random_logits(shape + (C,))
    kind = {"uint8": torch.uint8, "int32": torch.int32, "soft": "soft"}[target]
    t = random_target(shape, C, kind)
    alpha = torch.rand(C, dtype=torch.float64) + 0.2
    for smoothing in (0.0, 0.1):
        compare(x, t, mode="sum", gamma=gamma, alpha=alpha, label_smoothing=smoothing)
        compare(x, t, mode="pair", gamma=gamma, alpha=alpha.tolist(), label_smoothing=smoothing, reduction="none")


@pytest.mark.parametrize("mode", MODES)
def test_lengths_mask_separation(mode):
    shape, C = (3, 40, 40), 5
    x = random_logits(shape + (C,))
    t = random_target(shape, C, torch.int64)
    lengths = torch.tensor([40, 17, 0])
    mask = torch.rand(40, 40) < 0.8
    for normalize in NORMALIZE:
        compare(x, t, mode=mode, lengths=lengths, mask=mask, min_separation=3, normalize=normalize, gamma=1.0)
    # An asymmetric per-sample mask: the two cells of a pair differ.
    compare(x, t, mode=mode, mask=torch.rand(shape) < 0.5, reduction="sum")


@pytest.mark.parametrize("C", [2, 37, 64, 128])
def test_bin_counts(C):
    shape = (1, 35, 35)
    x = random_logits(shape + (C,))
    compare(x, random_target(shape, C, torch.int64), mode="sum", normalize="sample")
    compare(x, random_target(shape, C, "soft"), mode="average", gamma=2.0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("mode", ["sum", "pair", "none"])
def test_low_precision_logits(dtype, mode):
    shape, C = (2, 36, 36), 37
    x = random_logits(shape + (C,), dtype)
    compare(x, random_target(shape, C, torch.int64), mode=mode, normalize="sample")
    compare(x, random_target(shape, C, "soft", dtype), mode=mode, gamma=2.0, reduction="none")
    # every other bin: the strided load, where the contiguous one widens a row at a time
    x_strided = random_logits(shape + (2 * C,), dtype)[..., ::2]
    compare(x_strided, random_target(shape, C, torch.int64), mode=mode, gamma=0.5)


def test_class_dim_and_strided_views():
    shape, C = (2, 40, 40), 9
    base = random_logits((2, C + 3, 44, 44))
    t = random_target(shape, C, torch.int64)
    soft = random_target(shape, C, "soft")
    # [..., C, L, L], a sliced view of a bigger tensor (no unit stride anywhere useful)
    x_first = base[:, 1:C + 1, 2:42, 3:43]
    compare(x_first, t, class_dim=-3, mode="sum", gamma=2.0)
    compare(x_first, soft.movedim(-1, -3), class_dim=-3, mode="pair", reduction="none")
    # channel-last views: transposed maps, every other bin, a stride-0 batch
    x_last = random_logits((2, 40, 40, 2 * C))
    compare(x_last[..., ::2], t, mode="average")
    compare(x_last[..., :C].transpose(-2, -3), t, mode="upper", normalize="sample")
    compare(x_last[:1, ..., :C].expand(3, 40, 40, C), random_target((3, 40, 40), C, torch.int64), mode="sum")
    # the class_dim=-3 loss is the channel-last loss of the moved view
    a = symfocal.sym_softmax_focal_loss(x_first, t, class_dim=-3, mode="sum")
    b = symfocal.sym_softmax_focal_loss(x_first.movedim(-3, -1).contiguous(), t, mode="sum")
    torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_batch_dims():
    x = random_logits((2, 3, 20, 20, 6))
    t = random_target((2, 3, 20, 20), 6, torch.int64)
    compare(x, t, mode="sum", normalize="sample", lengths=torch.tensor([20, 9]))
    compare(x, t, mode="average", lengths=torch.randint(0, 21, (2, 3)))
    compare(random_logits((20, 20, 6)), random_target((20, 20), 6, torch.int64), mode="sum", normalize="sample")


def openfold_distogram_loss(logits, pseudo_beta, pseudo_beta_mask, min_bin=2.3125, max_bin=21.6875, no_bins=64,
                            eps=1e-6):
    """OpenFold's distogram_loss (openfold/utils/loss.py), on the head's symmetrized logits."""
    boundaries = torch.linspace(min_bin, max_bin, no_bins - 1, device=logits.device) ** 2
    dists = torch.sum((pseudo_beta[..., None, :] - pseudo_beta[..., None, :, :]) ** 2, dim=-1, keepdims=True)
    true_bins = torch.sum(dists > boundaries, dim=-1)
    errors = -torch.sum(F.one_hot(true_bins, no_bins) * F.log_softmax(logits, dim=-1), dim=-1)
    square_mask = pseudo_beta_mask[..., None] * pseudo_beta_mask[..., None, :]
    denom = eps + torch.sum(square_mask, dim=(-1, -2))
    mean = errors * square_mask
    mean = torch.sum(mean, dim=-1)
    mean = mean / denom[..., None]
    mean = torch.sum(mean, dim=-1)
    return torch.mean(mean)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_equals_openfold_distogram_loss(dtype):
    B, L, C = 3, 45, 64
    coords = torch.randn(B, L, 3, dtype=dtype) * 9
    residue_mask = (torch.rand(B, L) < 0.85).to(dtype)
    head = random_logits((B, L, L, C), dtype).requires_grad_(True)
    symmetrized = head + head.transpose(-2, -3)  # the OpenFold/AlphaFold head
    theirs = openfold_distogram_loss(symmetrized, coords, residue_mask)
    (their_grad,) = torch.autograd.grad(theirs, head)
    pair_mask = (residue_mask[..., None] * residue_mask[..., None, :]).bool()
    ours = symfocal.sym_softmax_focal_loss(head, symfocal.distogram_bins(coords), mode="sum", normalize="sample",
                                           mask=pair_mask)
    (our_grad,) = torch.autograd.grad(ours, head)
    # OpenFold divides by (1e-6 + cells): 1e-6 / cells relative, below either dtype's rounding here.
    rtol = 2e-6 if dtype == torch.float32 else 1e-8
    torch.testing.assert_close(ours.to(dtype), theirs.detach(), rtol=rtol, atol=0)
    torch.testing.assert_close(our_grad, their_grad, rtol=rtol * 10, atol=rtol * float(their_grad.abs().max()))


def test_distogram_bins_match_openfold_binning():
    coords = torch.randn(2, 50, 3) * 10
    coords[0, 1] = coords[0, 0] + torch.tensor([2.3125, 0, 0])  # on a boundary: not above it
    boundaries = torch.linspace(2.3125, 21.6875, 63) ** 2
    dists = torch.sum((coords[..., None, :] - coords[..., None, :, :]) ** 2, dim=-1, keepdims=True)
    expected = torch.sum(dists > boundaries, dim=-1)
    bins = symfocal.distogram_bins(coords)
    assert bins.dtype == torch.uint8 and bins.shape == (2, 50, 50)
    assert torch.equal(bins.long(), expected)
    assert bins.min() == 0 and bins.max() == 63
    assert torch.equal(symfocal.distogram_bins(coords, 3.0, 20.0, 37).long(),
                       torch.sum(dists > torch.linspace(3.0, 20.0, 36) ** 2, dim=-1))


@pytest.mark.parametrize("mode,gamma,reduction,normalize", [
    ("sum", 0.0, "mean", "sample"), ("average", 2.0, "sum", "cells"), ("pair", 0.5, "mean", "cells"),
    ("upper", 1.0, "none", "cells"), ("none", 3.0, "mean", "sample")])
def test_gradcheck(mode, gamma, reduction, normalize):
    x = random_logits((2, 5, 5, 4)).requires_grad_(True)
    t = random_target((2, 5, 5), 4, torch.int64)
    soft = random_target((2, 5, 5), 4, "soft")
    for target in (t, soft):
        fn = lambda x: symfocal.sym_softmax_focal_loss(  # noqa: E731
            x, target, mode=mode, gamma=gamma, reduction=reduction, normalize=normalize, alpha=[1.0, 0.5, 2.0, 1.0],
            label_smoothing=0.05, lengths=torch.tensor([5, 3]))
        assert torch.autograd.gradcheck(fn, (x,))
    def no_train(x):  # the forward op with its backward op (the CPU's training path is the default)
        loss, _ = torch.ops.symfocal.softmax_forward(x, t, None, None, None, None, None, mode, gamma, 0.0, 0,
                                                     reduction, normalize, None)
        return loss
    assert torch.autograd.gradcheck(no_train, (x,))


def _op_args(reduction, with_extras):
    x = random_logits((2, 12, 12, 5), torch.float32).requires_grad_(True)
    t = random_target((2, 12, 12), 5, torch.int64)
    alpha = torch.rand(5, dtype=torch.float64) if with_extras else None
    lengths = torch.tensor([12, 7]) if with_extras else None
    mask = (torch.rand(12, 12) < 0.9) if with_extras else None
    weight = torch.rand(2, 1, 12) if with_extras else None
    if with_extras:
        t = torch.where(torch.rand(t.shape) < 0.1, -100, t)
    return (x, t, alpha, lengths, mask, weight, None, "sum", 2.0, 0.1 if with_extras else 0.0,
            1 if with_extras else 0, reduction, "sample", -100 if with_extras else None)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("with_extras", [False, True])
def test_opcheck_forward(reduction, with_extras):
    torch.library.opcheck(torch.ops.symfocal.softmax_forward.default, _op_args(reduction, with_extras))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_opcheck_backward(reduction):
    args = _op_args(reduction, True)
    x = args[0].detach()
    loss, stats = torch.ops.symfocal.softmax_forward(x, *args[1:])
    grad = torch.randn_like(loss)
    torch.library.opcheck(torch.ops.symfocal.softmax_backward.default, (grad, x, *args[1:6], stats, *args[7:]),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


def test_opcheck_forward_train():
    torch.library.opcheck(torch.ops.symfocal.softmax_forward_train.default, _op_args("mean", True),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


@pytest.mark.parametrize("normalize", NORMALIZE)
def test_compile_fullgraph_dynamic(normalize):
    def step(x, t, mask):
        return symfocal.sym_softmax_focal_loss(x, t, mode="sum", normalize=normalize, mask=mask, gamma=2.0,
                                               alpha=[1.0] * 5 + [0.5])
    compiled = torch.compile(step, fullgraph=True, dynamic=True)
    for L in (14, 23):
        x = random_logits((2, L, L, 6), torch.float32)
        t = random_target((2, L, L), 6, torch.int64)
        mask = torch.rand(L, L) < 0.9
        eager_loss, eager_grad, g = loss_and_grad(step, x, t, mask=mask)
        loss, grad, _ = loss_and_grad(compiled, x, t, incoming=g, mask=mask)
        torch.testing.assert_close(loss, eager_loss, rtol=1e-6, atol=0)
        torch.testing.assert_close(grad, eager_grad, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0, 2.0])
@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_extremes_stay_finite(gamma, dtype):
    C = 8
    big = 6e4 if dtype == torch.float16 else 1e4
    x = torch.zeros(1, 6, 6, C, dtype=dtype)
    x[..., 0] = big                 # p = 1 exactly in bin 0: 1 - p == 0 with gamma < 1
    x[0, 1, :, 3] = -big
    x[0, 2] = torch.linspace(-big, big, C).to(dtype)  # (a float16 linspace overflows to NaN)
    t = torch.zeros(1, 6, 6, dtype=torch.int64)
    t[0, 3] = 5                     # a target bin with p = 0: the loss is large but finite
    for mode in ("sum", "average", "pair", "none"):
        for target in (t, F.one_hot(t, C).to(dtype) * 0.9 + 0.1 / C):
            loss, grad, _ = loss_and_grad(symfocal.sym_softmax_focal_loss, x, target, mode=mode, gamma=gamma,
                                          label_smoothing=0.01)
            assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (mode, target.dtype)
    # where the target is the certain bin, the loss is 0 and so is its gradient
    loss, grad, _ = loss_and_grad(symfocal.sym_softmax_focal_loss, x[:, :1, :1], t[:, :1, :1], mode="none",
                                  gamma=gamma)
    assert float(loss) == 0.0 and float(grad.abs().max()) == 0.0


def test_small_probabilities_keep_their_accuracy():
    # p_c near 1 in a bin with a soft target: (1 - p)^gamma from expm1, not 1 - p.
    x = torch.zeros(1, 4, 4, 3, dtype=torch.float32)
    x[..., 0] = 12.0
    t = torch.tensor([0.5, 0.25, 0.25]).expand(1, 4, 4, 3).contiguous()
    compare(x, t, mode="none", gamma=2.0, reduction="none", rtol=1e-5, atol=0)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_bitwise_deterministic_across_runs_and_threads(reduction):
    x = random_logits((2, 70, 70, 37), torch.float32)
    t = random_target((2, 70, 70), 37, torch.int64)
    g = torch.randn(2, 70, 70) if reduction == "none" else None
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 1, 2):
            torch.set_num_threads(n)
            results.append(loss_and_grad(symfocal.sym_softmax_focal_loss, x, t, incoming=g, mode="sum",
                                         normalize="sample", reduction=reduction))
    finally:
        torch.set_num_threads(threads)
    for loss, grad, _ in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1])


def test_empty_inputs():
    for shape in ((0, 5, 5, 4), (2, 0, 0, 4)):
        x = torch.randn(shape, requires_grad=True)
        t = torch.zeros(shape[:-1], dtype=torch.int64)
        for normalize in NORMALIZE:
            loss = symfocal.sym_softmax_focal_loss(x, t, normalize=normalize)
            assert float(loss.detach()) == 0.0
            (g,) = torch.autograd.grad(loss, x)
            assert g.shape == x.shape
    # every cell masked out: 0, not NaN
    x = torch.randn(2, 6, 6, 4, requires_grad=True)
    loss = symfocal.sym_softmax_focal_loss(x, torch.zeros(2, 6, 6, dtype=torch.int64),
                                           lengths=torch.tensor([0, 0]), normalize="sample")
    assert float(loss.detach()) == 0.0


def test_module_matches_functional_and_keeps_its_options():
    alpha = torch.rand(6, dtype=torch.float64)
    module = symfocal.SymSoftmaxFocalLoss(mode="sum", gamma=2.0, alpha=alpha, normalize="sample")
    x = random_logits((2, 10, 10, 6), torch.float32)
    t = random_target((2, 10, 10), 6, torch.int64)
    expected = symfocal.sym_softmax_focal_loss(x, t, mode="sum", gamma=2.0, alpha=alpha, normalize="sample")
    torch.testing.assert_close(module(x, t), expected, rtol=0, atol=0)
    restored = symfocal.SymSoftmaxFocalLoss()
    restored.load_state_dict(module.state_dict())
    assert restored.mode == "sum" and restored.normalize == "sample" and restored.gamma == 2.0
    torch.testing.assert_close(restored(x, t), expected, rtol=0, atol=0)
    assert "mode='sum'" in repr(module) and "normalize='sample'" in repr(module)
    with pytest.raises(ValueError, match="normalize"):
        symfocal.SymSoftmaxFocalLoss(normalize="batch")


def _bad(**changes):
    x = torch.randn(2, 8, 8, 5)
    t = torch.randint(0, 5, (2, 8, 8))
    kw = dict(logits=x, target=t)
    kw.update(changes)
    return kw


@pytest.mark.parametrize("kw,exc,match", [
    (_bad(target=torch.full((2, 8, 8), 5)), ValueError, r"target bin indices must be in \[0, C\)"),
    (_bad(target=torch.full((2, 8, 8), -1)), ValueError, "target bin indices"),
    (_bad(logits=torch.randn(2, 8, 8, 1), target=torch.zeros(2, 8, 8, dtype=torch.int64)), ValueError, "bins C"),
    (_bad(logits=torch.randn(2, 8, 8, 129), target=torch.zeros(2, 8, 8, dtype=torch.int64)), ValueError, "bins C"),
    (_bad(target=torch.rand(2, 8, 8, 4)), ValueError, "soft target"),
    (_bad(target=torch.rand(2, 8, 8, 5)), ValueError, "sum to 1"),
    (_bad(target=-torch.softmax(torch.randn(2, 8, 8, 5), -1)), ValueError, ">= 0"),
    (_bad(target=torch.zeros(2, 8, 7, dtype=torch.int64)), ValueError, "target of bin indices"),
    (_bad(target=torch.zeros(2, 8, 8, dtype=torch.int16)), TypeError, "target"),
    (_bad(logits=torch.randn(2, 8, 7, 5)), ValueError, "square"),
    (_bad(logits=torch.randn(8, 5)), ValueError, "at least 3 dims"),
    (_bad(logits=torch.randn(2, 8, 8, 5).long()), TypeError, "logits"),
    (_bad(mode="both"), ValueError, "mode"),
    (_bad(normalize="batch"), ValueError, "normalize"),
    (_bad(reduction="avg"), ValueError, "reduction"),
    (_bad(class_dim=1), ValueError, "class_dim"),
    (_bad(gamma=-1.0), ValueError, "gamma"),
    (_bad(gamma=float("nan")), ValueError, "gamma"),
    (_bad(label_smoothing=1.0), ValueError, "label_smoothing"),
    (_bad(min_separation=-2), ValueError, "min_separation"),
    (_bad(alpha=[1.0, 2.0]), ValueError, "alpha"),
    (_bad(alpha=torch.ones(4)), ValueError, "alpha"),
    (_bad(alpha=[1.0, -1.0, 1.0, 1.0, 1.0]), ValueError, "alpha"),
    (_bad(alpha=0.5), TypeError, "alpha"),
    (_bad(lengths=torch.tensor([8, 9])), ValueError, "lengths"),
    (_bad(lengths=torch.tensor([8])), ValueError, "lengths"),
    (_bad(mask=torch.ones(7, 7, dtype=torch.bool)), ValueError, "mask"),
    (_bad(target=torch.randint(0, 5, (2, 8, 8)).float().requires_grad_()), ValueError, "soft target|grad"),
])
def test_bad_input_names_the_argument(kw, exc, match):
    logits, target = kw.pop("logits"), kw.pop("target")
    with pytest.raises(exc, match=match):
        symfocal.sym_softmax_focal_loss(logits, target, **kw)
    with pytest.raises(exc, match=match):
        reference.sym_softmax_focal_loss(logits, target, **kw)


def test_unvalidated_bad_bins_never_read_out_of_bounds():
    x = torch.randn(1, 6, 6, 4)
    t = torch.full((1, 6, 6), 1000)
    loss = symfocal.sym_softmax_focal_loss(x, t, validate=False)
    assert torch.isfinite(loss)


def test_the_symmetric_modes_share_one_softmax():
    # sum and average see only x + xᵀ: a change that keeps it keeps the loss and the gradient.
    x = random_logits((1, 12, 12, 5))
    shift = torch.randn(1, 12, 12, 5, dtype=torch.float64)
    y = x + shift - shift.transpose(-2, -3)
    t = random_target((1, 12, 12), 5, torch.int64)
    for mode, (a, b) in itertools.product(("sum", "average"), [(x, y)]):
        la, ga, g = loss_and_grad(symfocal.sym_softmax_focal_loss, a, t, mode=mode)
        lb, gb, _ = loss_and_grad(symfocal.sym_softmax_focal_loss, b, t, mode=mode, incoming=g)
        torch.testing.assert_close(la, lb, rtol=1e-12, atol=0)
        torch.testing.assert_close(ga, gb, rtol=1e-9, atol=1e-15)
        torch.testing.assert_close(ga, ga.transpose(-2, -3), rtol=0, atol=0)


def test_confident_bins_keep_the_relative_accuracy_of_their_small_loss():
    # p of the target bin within 1e-5 of 1: loss = -log p ~ 1e-5, formed as log1p of the other
    # bins' mass, not as log(1 + rest) (which rounds rest to float32's 6e-8 and loses 0.5 %).
    x = torch.zeros(2, 9, 9, 6, dtype=torch.float32)
    x[..., 2] = torch.linspace(11.0, 14.0, 81).reshape(9, 9)
    t = torch.full((2, 9, 9), 2, dtype=torch.int64)
    for gamma in (0.0, 0.5):
        compare(x, t, mode="none", gamma=gamma, reduction="none", rtol=1e-5, atol=0)
        compare(x / 2, t, mode="sum", gamma=gamma, reduction="none", rtol=1e-5, atol=0)


def test_log_of_the_sum_of_exps_is_accurate_over_its_whole_range():
    # log(sum of exps) = log1p(rest), rest in [0, C - 1]: the CPU forms it inline in two ranges
    # (rest <= 1, and 2^k m above). Logit spreads from 0.001 (rest ~ C - 1) to 16 (rest ~ 1e-7) put
    # every cell's rest somewhere else in that range; each cell's loss against float64.
    C = 64
    spread = torch.logspace(-3, 1.2, 24 * 24, dtype=torch.float64).reshape(1, 24, 24, 1)
    x = (torch.randn(1, 24, 24, C, dtype=torch.float64) * spread).to(torch.float32)
    t = x.argmax(-1)  # the likeliest bin: a loss as small as the rest, where its relative accuracy is hardest
    t[0, ::2] = torch.randint(0, C, (12, 24))
    loss = symfocal.sym_softmax_focal_loss(x, t, mode="none", reduction="none")
    ref = reference.sym_softmax_focal_loss(x.double(), t, mode="none", reduction="none")
    torch.testing.assert_close(loss.double(), ref, rtol=2e-6, atol=0)
