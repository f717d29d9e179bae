"""The fused CPU op against the float64 reference, on fresh random inputs."""

import itertools

import pytest
import torch

import symfocal
from helpers import compare_with_reference, random_inputs, strided_views

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
    import subprocess
    import sys
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
