"""The CUDA kernels' checks. The correctness tests run in two ways, each skipped
with its reason where it cannot run: on a GPU, and on the CPU through
tests/cuda_emulator (the same kernels and host code compiled for the CPU, run
by an emulator that also fails a launch on any access outside its tensors, any
misaligned wide access and any barrier that not every thread reaches). The
tests of streams, graphs, host syncs, autocast and devices need a GPU.
"""

import collections
import itertools

import pytest
import torch

import cuda_emulation
import symfocal
from helpers import assert_same_loss_and_grad, compare_with_reference, grad_of, random_inputs, strided_views
from symfocal import _ops

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available() or not _ops.has_cuda_kernels(),
                               reason="needs a CUDA GPU and a build with the CUDA kernels")
needs_cuda_headers = pytest.mark.skipif(cuda_emulation.cuda_include_dir() is None,
                                        reason="needs CUDA's headers (cuda_fp16.h) to compile the kernels as host code")
# Marked "emulated" too: make gpu-check leaves these to the CPU machines (-m "not emulated").
EMULATED = [pytest.mark.emulated, needs_cuda_headers]
MODES = ["average", "pair", "upper", "none"]
REDUCTIONS = ["mean", "sum", "none"]

Kernels = collections.namedtuple("Kernels", "device loss")


@pytest.fixture(params=[pytest.param("gpu", marks=needs_gpu), pytest.param("emulated", marks=EMULATED)])
def kernels(request):
    """Where the CUDA kernels run: the device of the inputs, and the loss that runs them there."""
    if request.param == "gpu":
        return Kernels("cuda", symfocal.sym_focal_loss)
    return Kernels("cpu", cuda_emulation.sym_focal_loss)


def check(kernels, x, t, **kw):
    return compare_with_reference(x, t, fused=kernels.loss, **kw)


@pytest.mark.parametrize("mode,reduction", list(itertools.product(MODES, REDUCTIONS)))
@pytest.mark.parametrize("L", [45, 64])  # single-cell and wide accesses
def test_every_mode_and_reduction(kernels, mode, reduction, L):
    x, t = random_inputs((3, L, L), dtype=torch.float64, device=kernels.device)
    check(kernels, x, t, mode=mode, reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("L", [70, 68])
def test_all_options_together(kernels, mode, reduction, L):
    x, t = random_inputs((2, 3, L, L), dtype=torch.float64, target="soft", device=kernels.device)
    lengths = torch.tensor([[L, 31, 7], [1, 0, 44]], device=kernels.device)
    mask = torch.rand(L, L, device=kernels.device) < 0.85
    check(kernels, x, t, mode=mode, reduction=reduction, alpha=0.4, gamma=1.5, pos_weight=3.0,
          label_smoothing=0.1, min_separation=3, lengths=lengths, mask=mask, symmetry_weight=0.7,
          symmetry_penalty="huber", huber_delta=0.8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["bool", "uint8", "soft"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 0.5])
def test_dtypes_and_gammas(kernels, dtype, target, gamma):
    # L = 68: whole tiles and a last tile one wide group across.
    x, t = random_inputs((2, 68, 68), dtype=dtype, target=target, device=kernels.device)
    for reduction in REDUCTIONS:
        check(kernels, x, t, mode="pair", reduction=reduction, gamma=gamma, symmetry_weight=0.2)


@pytest.mark.parametrize("L", [0, 1, 4, 31, 32, 33, 36, 97, 100])
def test_sizes(kernels, L):
    x, t = random_inputs((2, L, L), dtype=torch.float64, device=kernels.device)
    for reduction in REDUCTIONS:
        check(kernels, x, t, mode="average", reduction=reduction, symmetry_weight=0.3)


def test_empty_batch(kernels):
    x, t = random_inputs((0, 40, 40), device=kernels.device)
    for reduction in REDUCTIONS:
        check(kernels, x, t, mode="average", reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
def test_non_contiguous(kernels, mode):
    base, tb = random_inputs((4, 72, 72), target="soft", device=kernels.device)
    for x, t in strided_views(base, tb):
        check(kernels, x, t, mode=mode, symmetry_weight=0.4)
        check(kernels, x, t, mode=mode, reduction="none")


def test_broadcast_target_and_mask(kernels):
    x, _ = random_inputs((3, 2, 64, 64), dtype=torch.bfloat16, device=kernels.device)
    t = (torch.rand(64, 64, device=kernels.device) < 0.05).expand(3, 2, 64, 64)
    mask = (torch.rand(2, 1, 64, device=kernels.device) < 0.9).expand(2, 64, 64)
    for mode in MODES:
        check(kernels, x, t, mode=mode, mask=mask, symmetry_weight=0.1)


@pytest.mark.parametrize("L", [45, 64])  # single-cell and wide mask reads
def test_a_uint8_mask_admits_any_nonzero_value(kernels, L):
    """SPEC.md: a cell counts where the mask is nonzero; 2s and 255s count like 1s."""
    x, t = random_inputs((2, L, L), device=kernels.device)
    keep = torch.rand(2, L, L, device=kernels.device) < 0.7
    values = torch.randint(1, 256, keep.shape, dtype=torch.uint8, device=kernels.device)
    as_uint8 = torch.where(keep, values, torch.zeros_like(values))
    full = torch.full(keep.shape, 255, dtype=torch.uint8, device=kernels.device)
    for mode in MODES:
        for uint8_mask, bool_mask in ((as_uint8, keep), (full, torch.ones_like(keep))):
            assert_same_loss_and_grad(kernels.loss, x, t, dict(mode=mode, mask=bool_mask, symmetry_weight=0.3),
                                      dict(mode=mode, mask=uint8_mask, symmetry_weight=0.3))


@pytest.mark.parametrize("layout", ["expanded", "transposed"])
def test_strided_incoming_gradient(kernels, layout):
    """reduction "none": the gradient that comes in may have any strides (sum().backward() expands one)."""
    x, t = random_inputs((2, 64, 64), device=kernels.device)
    if layout == "expanded":
        g = torch.ones((), device=kernels.device).expand(2, 64, 64)
    else:
        g = torch.randn(2, 64, 64, device=kernels.device).transpose(-1, -2)
    for mode in MODES:
        check(kernels, x, t, mode=mode, reduction="none", symmetry_weight=0.3, incoming=g)


@pytest.mark.parametrize("mode", MODES)
def test_matches_cpu_kernel(kernels, mode):
    x, t = random_inputs((3, 77, 77), target="soft")
    lengths = torch.tensor([77, 40, 3])
    for reduction in REDUCTIONS:
        kw = dict(mode=mode, reduction=reduction, symmetry_weight=0.3, min_separation=2, gamma=1.5)
        g = torch.randn(x.shape) if reduction == "none" else torch.tensor(1.7)
        cpu_loss, cpu_grad, _ = grad_of(symfocal.sym_focal_loss, x, t, incoming=g, lengths=lengths, **kw)
        dev = kernels.device
        loss, grad, _ = grad_of(kernels.loss, x.to(dev), t.to(dev), incoming=g.to(dev), lengths=lengths.to(dev), **kw)
        scale = cpu_grad.abs().amax()
        torch.testing.assert_close(loss.cpu(), cpu_loss, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(grad.cpu() / scale, cpu_grad / scale, atol=1e-5, rtol=1e-4)


def test_extremes_finite(kernels):
    vals = torch.tensor([0.0, 17.0, 100.0, 1e4, 65504.0], dtype=torch.float64)
    vals = torch.cat([vals, -vals])
    x = vals[:, None].expand(10, 10).clone()
    x = torch.stack([x, x.t().contiguous()]).to(kernels.device)
    for dtype in (torch.float16, torch.float32):
        for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
            xx = x.to(dtype).requires_grad_(True)
            loss = kernels.loss(xx, torch.rand(x.shape, device=kernels.device), gamma=gamma, mode="pair")
            (g,) = torch.autograd.grad(loss, xx)
            assert torch.isfinite(loss) and torch.isfinite(g).all()


@pytest.mark.emulated
@needs_cuda_headers
def test_wide_accesses_where_rows_allow():
    """Aligned contiguous rows are read and written four cells at a time; others cell by cell."""
    emulated = cuda_emulation.sym_focal_loss
    cuda_emulation.access_counts()
    x, t = random_inputs((2, 64, 64), dtype=torch.bfloat16)
    grad_of(emulated, x, t, mode="average", reduction="none")
    wide, single = cuda_emulation.access_counts()
    cells = x.numel()
    assert wide > 0 and single < cells / 16, (wide, single)

    storage = torch.randn(2 * 64 * 64 + 1).to(torch.bfloat16)
    shifted = storage[1:].view(2, 64, 64)  # contiguous, but the base is one element off alignment
    emulated(shifted, t, mode="average")
    wide, single = cuda_emulation.access_counts()
    # The target is still read four cells at a time; the logits one cell at a time.
    assert wide > 0 and single >= cells, (wide, single)


def test_small_losses_keep_their_relative_accuracy(kernels):
    """Easy cells' losses, log1p(exp(-|z|)) ~ exp(-|z|), to 1e-5 relative: log1p(e) taken as a fast
    log of 1 + e would be off by 3.5e-7 / e (40 % at |z| = 14). The emulator carries the device
    intrinsics' documented error (tests/cuda_emulator/device_math.h)."""
    x = -4.0 - 12.0 * torch.rand(2, 70, 70)
    x = torch.where(torch.rand(x.shape) < 0.5, x, x.transpose(-1, -2)).to(kernels.device)
    t = torch.zeros(x.shape, device=kernels.device)
    for mode in ("none", "average"):
        loss = kernels.loss(x, t, mode=mode, gamma=0.0, reduction="none")
        ref = symfocal.reference.sym_focal_loss(x.double(), t.double(), mode=mode, gamma=0.0, reduction="none")
        torch.testing.assert_close(loss.double(), ref, rtol=1e-5, atol=0)


@pytest.mark.emulated
@needs_cuda_headers
def test_the_intrinsic_error_model_is_applied():
    """The emulated __expf / __logf carry an error (float32 results move), float64 none."""
    x, t = random_inputs((2, 40, 40))
    try:
        loss = {}
        for on in (True, False):
            cuda_emulation.set_intrinsic_error(on)
            loss[on] = [cuda_emulation.sym_focal_loss(x.to(dtype), t, gamma=1.5, reduction="none")
                        for dtype in (torch.float32, torch.float64)]
    finally:
        cuda_emulation.set_intrinsic_error(True)
    assert not torch.equal(loss[True][0], loss[False][0])
    assert torch.equal(loss[True][1], loss[False][1])


@pytest.mark.emulated
@needs_cuda_headers
def test_the_emulator_shows_planted_faults():
    """Shared memory starts as NaN bytes in every block; a shuffle orders one warp only; a full-mask
    shuffle that part of a warp skips is an error."""
    emulator = cuda_emulation.module()
    assert torch.isnan(torch.tensor(emulator.selftest_unwritten_shared_read()))
    assert torch.isnan(torch.tensor(emulator.selftest_read_ordered_only_by_a_shuffle()))
    with pytest.raises(RuntimeError, match="full-mask shuffle reached by 16 of the 32 lanes"):
        emulator.selftest_divergent_shuffle()


def accesses(fn):
    """(result, (wide, single-cell) global accesses) of fn() on the emulator."""
    cuda_emulation.access_counts()
    out = fn()
    return out, cuda_emulation.access_counts()


@pytest.mark.emulated
@needs_cuda_headers
def test_even_lengths_take_two_cell_accesses():
    """L = 1022 (even, not a multiple of 4): every group is read and written as two 2-cell accesses,
    with the results of the cell-by-cell path bitwise; an odd L goes cell by cell."""
    run = lambda x, t: grad_of(cuda_emulation.sym_focal_loss, x, t, mode="average", reduction="none",
                               incoming=torch.ones(x.shape, dtype=x.dtype))[:2]
    x, t = random_inputs((1, 1022, 1022), dtype=torch.bfloat16)
    (loss, grad), (wide, single) = accesses(lambda: run(x, t))
    cells = x.numel()
    # logits and target in both passes, the loss map and the gradient: 6 tensors of 2-cell accesses
    assert wide >= 6 * cells // 2 and single < cells // 100, (wide, single)
    try:
        cuda_emulation.set_variant("cell-access")
        (loss_cells, grad_cells), (wide_cells, single_cells) = accesses(lambda: run(x, t))
    finally:
        cuda_emulation.set_variant("default")
    assert wide_cells == 0 and single_cells >= 6 * cells
    assert torch.equal(loss, loss_cells) and torch.equal(grad, grad_cells)

    x, t = random_inputs((1, 131, 131), dtype=torch.bfloat16)
    _, (wide, single) = accesses(lambda: run(x, t))
    assert wide == 0 and single >= 6 * x.numel()


@pytest.mark.emulated
@needs_cuda_headers
def test_two_level_sums():
    """More tile pairs (1100) than one finalize block adds (1024): blocks of 1024 partials, then
    one block over their sums; the same value as one block's sum to float64 rounding."""
    xs, ts = random_inputs((1100, 5, 5))
    kernels = Kernels("cpu", cuda_emulation.sym_focal_loss)
    two_level = check(kernels, xs, ts, mode="average", symmetry_weight=0.2)
    try:
        cuda_emulation.set_variant("one-block-finalize")
        one_block = grad_of(kernels.loss, xs, ts, mode="average", symmetry_weight=0.2, incoming=torch.tensor(1.7))
    finally:
        cuda_emulation.set_variant("default")
    torch.testing.assert_close(two_level[0], one_block[0], rtol=1e-6, atol=0)
    assert torch.equal(two_level[1], one_block[1])


VARIANTS = ["default", "cell-access", "serial-loads", "three-blocks", "half-threads", "one-block-finalize"]


@pytest.mark.emulated
@needs_cuda_headers
def test_the_variants_are_the_ones_the_library_lists():
    assert cuda_emulation.variants() == VARIANTS


@pytest.mark.emulated
@needs_cuda_headers
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variant_matches_the_reference(variant):
    """Each design variant a first GPU run times (csrc/sigmoid/cuda/variants.h) computes the same loss: the
    reference's to float32 rounding, and per cell bitwise the default variant's."""
    kernels = Kernels("cpu", cuda_emulation.sym_focal_loss)
    x, t = random_inputs((2, 70, 70), target="soft")
    lengths = torch.tensor([70, 45])
    options = dict(alpha=0.4, gamma=1.5, label_smoothing=0.1, min_separation=2, lengths=lengths,
                   symmetry_weight=0.3, symmetry_penalty="huber")
    x16, t16 = random_inputs((2, 64, 64), dtype=torch.bfloat16)
    per_cell = lambda: grad_of(kernels.loss, x16, t16, mode="pair", reduction="none", incoming=torch.ones_like(x16))
    default_loss, default_grad, _ = per_cell()
    try:
        cuda_emulation.set_variant(variant)
        for mode in MODES:
            for reduction in ("mean", "none"):
                check(kernels, x, t, mode=mode, reduction=reduction, **options)
        check(kernels, x16, t16, mode="pair", reduction="none")
        loss, grad, _ = per_cell()
        assert torch.equal(loss, default_loss) and torch.equal(grad, default_grad)
    finally:
        cuda_emulation.set_variant("default")


# ---- a GPU only --------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@needs_gpu
def test_gradcheck(mode):
    x, t = random_inputs((2, 35, 35), dtype=torch.float64, target="soft", device="cuda", scale=1.5)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: symfocal.sym_focal_loss(z, t, mode=mode, symmetry_weight=0.5, symmetry_penalty="l2",
                                          min_separation=2), (x,), eps=1e-6, atol=1e-7)


@needs_gpu
def test_bitwise_deterministic():
    x, t = random_inputs((8, 300, 300), device="cuda")
    kw = dict(mode="pair", symmetry_weight=0.3)
    torch.manual_seed(0)
    first = grad_of(symfocal.sym_focal_loss, x, t, **kw)[:2]
    for _ in range(3):
        torch.manual_seed(0)
        again = grad_of(symfocal.sym_focal_loss, x, t, **kw)[:2]
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


@needs_gpu
def test_device_mismatch_errors():
    x, t = random_inputs((2, 8, 8))
    with pytest.raises(ValueError, match="target"):
        symfocal.sym_focal_loss(x.cuda(), t)
    with pytest.raises(ValueError, match="mask"):
        symfocal.sym_focal_loss(x.cuda(), t.cuda(), mask=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="lengths"):
        symfocal.sym_focal_loss(x.cuda(), t.cuda(), lengths=torch.tensor([8, 8]))


@needs_gpu
def test_no_host_sync():
    x, t = random_inputs((4, 100, 100), device="cuda")
    x.requires_grad_(True)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss = symfocal.sym_focal_loss(x, t, validate=False, symmetry_weight=0.1)
        loss.backward()
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()


@needs_gpu
def test_cuda_graph_capture_and_replay():
    x, t = random_inputs((4, 96, 96), device="cuda")
    static_x = x.clone().requires_grad_(True)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            symfocal.sym_focal_loss(static_x, t).backward()
    torch.cuda.current_stream().wait_stream(s)
    static_x.grad = None
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_loss = symfocal.sym_focal_loss(static_x, t)  # validate is skipped during capture
        static_loss.backward()
    for _ in range(3):
        new = torch.randn_like(x)
        with torch.no_grad():
            static_x.copy_(new)
        static_x.grad.zero_()
        graph.replay()
        ref_x = new.clone().requires_grad_(True)
        ref = symfocal.sym_focal_loss(ref_x, t)
        ref.backward()
        torch.testing.assert_close(static_loss, ref)
        torch.testing.assert_close(static_x.grad, ref_x.grad)


@needs_gpu
def test_non_default_stream():
    x, t = random_inputs((4, 64, 64), device="cuda")
    expect = symfocal.sym_focal_loss(x, t)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        got = symfocal.sym_focal_loss(x, t)
    s.synchronize()
    assert torch.equal(got, expect)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
@needs_gpu
def test_second_device():
    x, t = random_inputs((2, 40, 40), dtype=torch.float64, device="cuda:1")
    compare_with_reference(x, t, mode="pair", symmetry_weight=0.2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@needs_gpu
def test_autocast_and_grad_scaler(dtype):
    model = torch.nn.Conv2d(2, 1, 3, padding=1).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    feats = torch.randn(2, 2, 40, 40, device="cuda")
    _, y = random_inputs((2, 40, 40), device="cuda")
    with torch.autocast("cuda", dtype=dtype):
        logits = model(feats).squeeze(1)
        loss = symfocal.sym_focal_loss(logits, y)
    assert logits.dtype == dtype and loss.dtype == torch.float32
    torch.testing.assert_close(loss, symfocal.sym_focal_loss(logits.detach(), y))
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    assert torch.isfinite(model.weight).all()


@needs_gpu
def test_deterministic_algorithms_accepted():
    x, t = random_inputs((2, 50, 50), device="cuda")
    x.requires_grad_(True)
    torch.use_deterministic_algorithms(True)
    try:
        symfocal.sym_focal_loss(x, t, mode="pair").backward()
    finally:
        torch.use_deterministic_algorithms(False)


@needs_gpu
def test_no_device_memory_growth():
    x, t = random_inputs((4, 64, 64), device="cuda")
    x.requires_grad_(True)

    def step():
        symfocal.sym_focal_loss(x, t, validate=False, symmetry_weight=0.1).backward()
        x.grad = None

    for _ in range(10):
        step()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    for _ in range(1000):
        step()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == before
