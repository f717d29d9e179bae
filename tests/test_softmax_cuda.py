"""The softmax focal loss's CUDA kernels (csrc/softmax/cuda/kernel.cuh) against the float64
reference: on a GPU, and on the CPU through tests/cuda_emulator (which also fails a launch on
any access outside its tensors, any shuffle not every lane reaches and any barrier in
divergent code)."""

import collections
import itertools

import pytest
import torch

import cuda_emulation
import symfocal
from symfocal import _ops
from test_softmax import compare, loss_and_grad, random_logits, random_target

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available() or not _ops.has_cuda_kernels(),
                               reason="needs a CUDA GPU and a build with the CUDA kernels")
needs_cuda_headers = pytest.mark.skipif(cuda_emulation.cuda_include_dir() is None,
                                        reason="needs CUDA's headers (cuda_fp16.h) to compile the kernels as host code")
EMULATED = [pytest.mark.emulated, needs_cuda_headers]

Kernels = collections.namedtuple("Kernels", "device loss")


@pytest.fixture(params=[pytest.param("gpu", marks=needs_gpu), pytest.param("emulated", marks=EMULATED)])
def kernels(request):
    if request.param == "gpu":
        return Kernels("cuda", symfocal.sym_softmax_focal_loss)
    return Kernels("cpu", cuda_emulation.sym_softmax_focal_loss)


def on(kernels, *tensors):
    return [t.to(kernels.device) if isinstance(t, torch.Tensor) else t for t in tensors]


@pytest.mark.parametrize("mode,reduction", list(itertools.product(("sum", "average", "pair", "upper", "none"),
                                                                   ("mean", "sum", "none"))))
def test_every_mode_and_reduction(kernels, mode, reduction):
    # L = 35: a diagonal tile, an off-diagonal one and the edge; C = 7, lanes past C idle.
    x, t = on(kernels, random_logits((1, 35, 35, 7)), random_target((1, 35, 35), 7, torch.int64))
    for normalize in ("cells", "sample"):
        compare(x, t, fused=kernels.loss, mode=mode, reduction=reduction, normalize=normalize, gamma=2.0)


@pytest.mark.parametrize("C", [2, 37, 64, 70, 128])  # 2 and 4 bins a lane, C not a multiple of 32
@pytest.mark.parametrize("target", ["int32", "soft"])
def test_bin_counts_targets_weights_smoothing(kernels, C, target):
    kind = torch.int32 if target == "int32" else "soft"
    x, t = on(kernels, random_logits((1, 33, 33, C)), random_target((1, 33, 33), C, kind))
    alpha = on(kernels, torch.rand(C, dtype=torch.float64) + 0.3)[0]
    compare(x, t, fused=kernels.loss, mode="sum", gamma=0.5, alpha=alpha, normalize="sample")
    compare(x, t, fused=kernels.loss, mode="pair", gamma=2.0, label_smoothing=0.1, reduction="none")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_low_precision(kernels, dtype):
    x, t = on(kernels, random_logits((2, 34, 34, 37), dtype), random_target((2, 34, 34), 37, torch.uint8))
    compare(x, t, fused=kernels.loss, mode="sum", normalize="sample")
    soft = on(kernels, random_target((2, 34, 34), 37, "soft", dtype))[0]
    compare(x, soft, fused=kernels.loss, mode="average", gamma=2.0, reduction="none")


def test_lengths_mask_separation_and_strides(kernels):
    base = random_logits((2, 12, 40, 40))
    x = base[:, 1:10, 2:38, 3:39]  # [..., C, L, L] view: bins L*L apart, rows strided
    t = random_target((2, 36, 36), 9, torch.int64)
    lengths, mask = torch.tensor([36, 13]), torch.rand(2, 36, 36) < 0.7
    x, t, lengths, mask = on(kernels, x, t, lengths, mask)
    for mode in ("sum", "pair", "upper"):
        compare(x, t, fused=kernels.loss, class_dim=-3, mode=mode, lengths=lengths, mask=mask, min_separation=4,
                normalize="sample", gamma=1.0)


def test_extremes_stay_finite(kernels):
    x = torch.zeros(1, 5, 5, 8)
    x[..., 0] = 1e4
    x[0, 1, :, 3] = -1e4
    t = torch.zeros(1, 5, 5, dtype=torch.int64)
    t[0, 2] = 5
    x, t = on(kernels, x, t)
    for gamma, mode in itertools.product((0.0, 0.3, 2.0), ("sum", "pair", "none")):
        loss, grad, _ = loss_and_grad(kernels.loss, x, t, mode=mode, gamma=gamma, label_smoothing=0.01)
        assert torch.isfinite(loss).all() and torch.isfinite(grad).all(), (gamma, mode)


def test_confident_bins_keep_their_small_losses(kernels):
    x = torch.zeros(1, 6, 6, 5)
    x[..., 1] = torch.linspace(11.0, 14.0, 36).reshape(6, 6)
    t = torch.ones(1, 6, 6, dtype=torch.int64)
    x, t = on(kernels, x, t)
    compare(x, t, fused=kernels.loss, mode="none", reduction="none", rtol=2e-5, atol=0)


def test_bitwise_deterministic(kernels):
    x, t = on(kernels, random_logits((2, 33, 33, 20), torch.float32), random_target((2, 33, 33), 20, torch.int64))
    a = loss_and_grad(kernels.loss, x, t, mode="sum", normalize="sample")
    b = loss_and_grad(kernels.loss, x, t, mode="sum", normalize="sample", incoming=a[2])
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.emulated
@needs_cuda_headers
def test_emulated_kernels_agree_with_the_cpu_kernels():
    x, t = random_logits((2, 40, 40, 64), torch.float32), random_target((2, 40, 40), 64, torch.int64)
    cpu = loss_and_grad(symfocal.sym_softmax_focal_loss, x, t, mode="sum", normalize="sample")
    emulated = loss_and_grad(cuda_emulation.sym_softmax_focal_loss, x, t, mode="sum", normalize="sample",
                             incoming=cpu[2])
    torch.testing.assert_close(emulated[0], cpu[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(emulated[1], cpu[1], rtol=1e-5, atol=1e-9)
