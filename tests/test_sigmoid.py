"""The fused CPU op against the float64 reference, on fresh random inputs."""

import itertools
import math

import pytest
import torch

import symfocal
from symfocal import _build
from helpers import assert_same_loss_and_grad, compare_with_reference, random_inputs, strided_views

MODES = ["average", "pair", "upper", "none"]
REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("mode,reduction", list(itertools.product(MODES, REDUCTIONS)))
def test_every_mode_and_reduction(mode, reduction):
    x, t = random_inputs((3, 45, 45), dtype=torch.float64)
    compare_with_reference(x, t, mode=mode, reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_options_together(mode, reduction):
    x, t = random_inputs((2, 3, 50, 50), dtype=torch.float64, target="soft")
    lengths = torch.tensor([[50, 31, 7], [1, 0, 44]])
    mask = torch.rand(50, 50) < 0.85
    compare_with_reference(x, t, mode=mode, reduction=reduction, alpha=0.4, gamma=1.5, pos_weight=3.0,
                           label_smoothing=0.1, min_separation=3, lengths=lengths, mask=mask,
                           symmetry_weight=0.7, symmetry_penalty="huber", huber_delta=0.8)


@pytest.mark.parametrize("option", [
    dict(alpha=None), dict(alpha=0.0), dict(alpha=1.0), dict(gamma=0.0), dict(gamma=1.0), dict(gamma=0.5),
    dict(gamma=5.0), dict(pos_weight=10.0), dict(label_smoothing=0.2), dict(min_separation=1),
    dict(min_separation=6), dict(min_separation=100), dict(symmetry_weight=0.5, symmetry_penalty="l1"),
    dict(symmetry_weight=2.0, symmetry_penalty="l2"), dict(symmetry_weight=1.0, symmetry_penalty="huber"),
])
@pytest.mark.parametrize("mode", MODES)
def test_each_option(option, mode):
    x, t = random_inputs((2, 40, 40), dtype=torch.float64)
    compare_with_reference(x, t, mode=mode, reduction="mean", **option)


@pytest.mark.parametrize("L", [1, 2, 31, 32, 33, 64, 97])
@pytest.mark.parametrize("mode", ["average", "pair"])
def test_sizes_around_the_tile(L, mode):
    x, t = random_inputs((2, L, L), dtype=torch.float64)
    for reduction in REDUCTIONS:
        compare_with_reference(x, t, mode=mode, reduction=reduction, symmetry_weight=0.3)


@pytest.mark.parametrize("shape", [(0, 8, 8), (3, 0, 0), (0, 0), (2, 0, 4, 4)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_empty_inputs(shape, reduction):
    x = torch.randn(shape, requires_grad=True)
    t = torch.zeros(shape, dtype=torch.bool)
    loss = symfocal.sym_focal_loss(x, t, reduction=reduction, symmetry_weight=0.5)
    if reduction == "none":
        assert loss.shape == x.shape
    else:
        assert loss.shape == () and loss.item() == 0.0
    (g,) = torch.autograd.grad(loss.sum(), x)
    assert g.shape == x.shape


def test_everything_masked_gives_zero_not_nan():
    x, t = random_inputs((2, 20, 20))
    x.requires_grad_(True)
    loss = symfocal.sym_focal_loss(x, t, mask=torch.zeros(20, 20, dtype=torch.bool), symmetry_weight=1.0)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["bool", "uint8", "soft"])
def test_dtypes(dtype, target):
    x, t = random_inputs((2, 40, 40), dtype=dtype, target=target)
    for reduction in REDUCTIONS:
        compare_with_reference(x, t, mode="average", reduction=reduction, symmetry_weight=0.2)


def test_float_target_of_another_dtype():
    x, _ = random_inputs((2, 33, 33), dtype=torch.bfloat16)
    t = torch.rand(2, 33, 33, dtype=torch.float64)
    compare_with_reference(x, t, mode="pair")


def test_non_contiguous_inputs():
    base, tb = random_inputs((4, 70, 70), dtype=torch.float64, target="soft")
    # A transposed view, a strided slice and a channel dim moved last-but-two.
    views = [
        (base.transpose(-1, -2), tb.transpose(-1, -2)),
        (base[::2, 3:60:1, 3:60:1], tb[::2, 3:60, 3:60]),
        (base[:, ::2, ::2], tb[:, ::2, ::2]),
    ]
    chan = torch.randn(2, 40, 40, 3, dtype=torch.float64).permute(0, 3, 1, 2)
    views.append((chan, (torch.rand(2, 3, 40, 40) < 0.1)))
    views += strided_views(*random_inputs((4, 72, 72), dtype=torch.float64, target="soft"))
    for x, t in views:
        assert not x.is_contiguous()
        for mode in MODES:
            compare_with_reference(x, t, mode=mode, reduction="mean", symmetry_weight=0.4, min_separation=2)
            compare_with_reference(x, t, mode=mode, reduction="none")


@pytest.mark.parametrize("mode", ["none", "upper"])
def test_bool_target_views_in_the_streamed_modes(mode):
    """float32 logits with bool targets take the hard-target stream, which reads a unit-stride bool
    row as bytes where it lies: every layout of the target (rows another stride apart, unaligned, a
    stride-0 batch, strided columns) against the reference."""
    x, _ = random_inputs((4, 72, 72), dtype=torch.float32)
    t = torch.rand(4, 72, 72, generator=torch.Generator().manual_seed(5)) < 0.2
    for xv, tv in strided_views(x, t):
        assert tv.dtype == torch.bool
        compare_with_reference(xv, tv, mode=mode, reduction="mean")
        compare_with_reference(xv, tv, mode=mode, reduction="none", min_separation=3)
    # The logits contiguous and the target a view: the target's own strides, not the logits'.
    wide = torch.rand(4, 72, 80, generator=torch.Generator().manual_seed(6)) < 0.2
    compare_with_reference(x.contiguous(), wide[:, :, 4:76], mode=mode, reduction="mean")


def test_lengths_shapes():
    x, t = random_inputs((2, 3, 30, 30), dtype=torch.float64)
    per_sample = torch.tensor([30, 12])
    per_map = torch.tensor([[30, 12, 5], [0, 29, 30]], dtype=torch.int32)
    a = compare_with_reference(x, t, lengths=per_sample)[0]
    compare_with_reference(x, t, lengths=per_map)
    # [B] lengths mean the same as that length repeated for every channel.
    b = compare_with_reference(x, t, lengths=per_sample[:, None].expand(2, 3).contiguous())[0]
    assert torch.equal(a, b)


def test_shared_mask_is_broadcast_not_copied():
    x, t = random_inputs((3, 2, 40, 40), dtype=torch.float64)
    shared = torch.rand(40, 40) < 0.7
    per_channel = torch.rand(1, 2, 40, 40) < 0.7
    compare_with_reference(x, t, mask=shared)
    compare_with_reference(x, t, mask=per_channel.to(torch.uint8), mode="pair")
    # Mask cells really drop out: a masked loss equals the loss over the kept cells.
    a = symfocal.sym_focal_loss(x, t, mask=shared, reduction="none", mode="none")
    b = symfocal.sym_focal_loss(x, t, reduction="none", mode="none")
    assert torch.equal(a, torch.where(shared, b, torch.zeros_like(b)))


@pytest.mark.parametrize("mode", MODES)
def test_a_uint8_mask_admits_any_nonzero_value(mode):
    """SPEC.md: a cell counts where the mask is nonzero; a mask of 2s or 255s is not a weight."""
    x, t = random_inputs((2, 40, 40), dtype=torch.float64)
    keep = torch.rand(2, 40, 40) < 0.7
    values = torch.where(keep, torch.randint(1, 256, keep.shape, dtype=torch.uint8), 0).to(torch.uint8)
    full = torch.full((2, 40, 40), 255, dtype=torch.uint8)
    for uint8_mask, bool_mask in ((values, keep), (full, torch.ones_like(keep))):
        assert_same_loss_and_grad(symfocal.sym_focal_loss, x, t, dict(mode=mode, mask=bool_mask),
                                  dict(mode=mode, mask=uint8_mask))
        assert_same_loss_and_grad(symfocal.sym_focal_loss, x, t,
                                  dict(mode=mode, mask=bool_mask, symmetry_weight=0.4),
                                  dict(mode=mode, mask=uint8_mask, symmetry_weight=0.4))


def _aten_copies(fn, min_numel):
    """The ATen copies of tensors with at least `min_numel` elements that `fn` makes."""
    copying = {"aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy", "aten::expand_copy",
               "aten::repeat", "aten::index", "aten::masked_select"}
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
        fn()
    big = []
    for e in prof.events():
        sizes = [math.prod(s) for s in e.input_shapes if isinstance(s, (list, tuple)) and s]
        if e.name in copying and sizes and max(sizes) >= min_numel:
            big.append((e.name, e.input_shapes))
    return big


def test_a_shared_mask_and_transposed_logits_are_read_in_place():
    """No copy of any input, forward or backward: a shared [L, L] mask goes through stride 0,
    transposed or sliced logits and targets through their strides."""
    base, tb = random_inputs((3, 70, 70), target="uint8")
    x = base.transpose(-1, -2)[:, 2:66, 2:66].requires_grad_(True)
    t = tb.transpose(-1, -2)[:, 2:66, 2:66]
    shared = torch.rand(64, 64) < 0.8
    lengths = torch.tensor([64, 50, 7])
    assert not x.is_contiguous() and not t.is_contiguous()
    for kw in (dict(), dict(symmetry_weight=0.3), dict(reduction="sum", mode="pair")):
        def step():
            loss = symfocal.sym_focal_loss(x, t, mask=shared, lengths=lengths, validate=False, **kw)
            (g,) = torch.autograd.grad(loss, x)
            return g
        assert _aten_copies(step, 64 * 64) == [], kw
    # The check can fail: the same loss on a copied mask is seen.
    copied = _aten_copies(lambda: symfocal.sym_focal_loss(x.detach(), t, mask=shared.expand(3, 64, 64)
                                                          .contiguous(), validate=False), 64 * 64)
    assert copied != []


def test_batch_of_several_dims():
    x, t = random_inputs((2, 2, 2, 2, 2, 2, 2, 12, 12), dtype=torch.float64)
    compare_with_reference(x, t, mode="pair", reduction="sum")
    compare_with_reference(x.permute(6, 5, 4, 3, 2, 1, 0, 7, 8), t.permute(6, 5, 4, 3, 2, 1, 0, 7, 8))


def test_mode_none_equals_torchvision_formula():
    tv = pytest.importorskip("torchvision.ops")
    x, t = random_inputs((3, 37, 37), dtype=torch.float64)
    for alpha in (0.25, -1):
        for reduction in ("mean", "sum", "none"):
            ours = symfocal.sym_focal_loss(x, t, mode="none", alpha=None if alpha < 0 else alpha,
                                           reduction=reduction)
            theirs = tv.sigmoid_focal_loss(x, t.double(), alpha=alpha, gamma=2.0, reduction=reduction)
            torch.testing.assert_close(ours, theirs, atol=1e-12, rtol=1e-10)


def test_average_mode_trains_the_symmetrized_logits():
    # l_ij in mode average is FL((x_ij + x_ji)/2, y_ij): the same as mode none on symmetrize(x).
    x, t = random_inputs((2, 30, 30), dtype=torch.float64)
    a = symfocal.sym_focal_loss(x, t, mode="average", reduction="none")
    b = symfocal.sym_focal_loss(symfocal.symmetrize(x), t, mode="none", reduction="none")
    torch.testing.assert_close(a, b, atol=1e-14, rtol=1e-12)


def test_none_map_sums_to_sum():
    x, t = random_inputs((2, 50, 50), dtype=torch.float64)
    kw = dict(mode="pair", symmetry_weight=0.9, symmetry_penalty="l2", min_separation=2)
    total = symfocal.sym_focal_loss(x, t, reduction="sum", **kw)
    cells = symfocal.sym_focal_loss(x, t, reduction="none", **kw)
    torch.testing.assert_close(cells.sum(), total, atol=1e-10, rtol=1e-12)


@pytest.mark.parametrize("isa", ["default", "avx2"])
def test_narrower_instruction_sets(isa, tmp_path):
    """The AVX2 and portable builds of the CPU kernels give the same results (run in a subprocess,
    since ATen reads ATEN_CPU_CAPABILITY once)."""
    import os
    import platform
    import subprocess
    import sys
    if isa != "default" and platform.machine() != "x86_64":
        pytest.skip(f"{isa} kernels are x86's; this build for {platform.machine()} has the portable ones only")
    built = (_build.read_info() or {}).get("cpu_isas", ["portable", "avx2", "avx512"])
    if isa != "default" and isa not in built:
        pytest.skip(f"this build has the {', '.join(built)} CPU kernels (SYMFOCAL_CPU_ISAS=all builds the {isa} ones)")
    code = (
        "import torch, symfocal, sys; sys.path.insert(0, 'tests'); from symfocal import _ops;"
        f"assert _ops.build_info()['cpu_isa'] == '{isa}', _ops.build_info();"
        "from helpers import compare_with_reference, random_inputs;"
        "torch.manual_seed(1);"
        "x, t = random_inputs((2, 45, 45), dtype=torch.float32, target='soft');"
        "[compare_with_reference(x, t, mode=m, reduction=r, symmetry_weight=0.3, min_separation=1) "
        " for m in ['average', 'pair', 'upper', 'none'] for r in ['mean', 'none']];"
        "x, t = random_inputs((2, 40, 40), dtype=torch.float64);"
        "compare_with_reference(x, t, mode='pair', gamma=0.5); print('ok')"
    )
    env = dict(os.environ, ATEN_CPU_CAPABILITY=isa)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-3000:]
