"""The CPU suite's checks on CUDA tensors. Skipped, with the reason, where no GPU is present."""

import itertools

import pytest
import torch

import symfocal
from helpers import compare_with_reference, grad_of, random_inputs, strided_views
from symfocal import _ops

pytestmark = pytest.mark.skipif(not torch.cuda.is_available() or not _ops.has_cuda_kernels(),
                                reason="needs a CUDA GPU and a build with the CUDA kernels")
MODES = ["average", "pair", "upper", "none"]
REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("mode,reduction", list(itertools.product(MODES, REDUCTIONS)))
def test_every_mode_and_reduction(mode, reduction):
    x, t = random_inputs((3, 45, 45), dtype=torch.float64, device="cuda")
    compare_with_reference(x, t, mode=mode, reduction=reduction)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_all_options_together(mode, reduction):
    x, t = random_inputs((2, 3, 70, 70), dtype=torch.float64, target="soft", device="cuda")
    lengths = torch.tensor([[70, 31, 7], [1, 0, 44]], device="cuda")
    mask = torch.rand(70, 70, device="cuda") < 0.85
    compare_with_reference(x, t, mode=mode, reduction=reduction, alpha=0.4, gamma=1.5, pos_weight=3.0,
                           label_smoothing=0.1, min_separation=3, lengths=lengths, mask=mask,
                           symmetry_weight=0.7, symmetry_penalty="huber", huber_delta=0.8)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("target", ["bool", "uint8", "soft"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 0.5])
@pytest.mark.parametrize("L", [65, 68])  # single-cell and wide accesses
def test_dtypes_and_gammas(dtype, target, gamma, L):
    x, t = random_inputs((2, L, L), dtype=dtype, target=target, device="cuda")
    for reduction in REDUCTIONS:
        compare_with_reference(x, t, mode="pair", reduction=reduction, gamma=gamma, symmetry_weight=0.2)


@pytest.mark.parametrize("L", [0, 1, 4, 31, 32, 33, 36, 68, 97, 100])
def test_sizes(L):
    x, t = random_inputs((2, L, L), dtype=torch.float64, device="cuda")
    for reduction in REDUCTIONS:
        compare_with_reference(x, t, mode="average", reduction=reduction, symmetry_weight=0.3)


def test_non_contiguous():
    base, tb = random_inputs((4, 72, 72), dtype=torch.float32, target="soft", device="cuda")
    for x, t in strided_views(base, tb):
        for mode in MODES:
            compare_with_reference(x, t, mode=mode, symmetry_weight=0.4)
            compare_with_reference(x, t, mode=mode, reduction="none")


@pytest.mark.parametrize("mode", MODES)
def test_matches_cpu_kernel(mode):
    x, t = random_inputs((3, 77, 77), dtype=torch.float32, target="soft")
    kw = dict(mode=mode, symmetry_weight=0.3, min_separation=2, lengths=torch.tensor([77, 40, 3]))
    cpu = grad_of(symfocal.sym_focal_loss, x, t, **kw)
    kwc = dict(kw, lengths=kw["lengths"].cuda())
    torch.manual_seed(0)
    gpu = grad_of(symfocal.sym_focal_loss, x.cuda(), t.cuda(), **kwc)
    torch.testing.assert_close(gpu[0].cpu(), cpu[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gpu[1].cpu() * 1e4, cpu[1] * 1e4, atol=1e-3, rtol=1e-3)


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
def test_gradcheck(mode):
    x, t = random_inputs((2, 35, 35), dtype=torch.float64, target="soft", device="cuda", scale=1.5)
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: symfocal.sym_focal_loss(z, t, mode=mode, symmetry_weight=0.5, symmetry_penalty="l2",
                                          min_separation=2), (x,), eps=1e-6, atol=1e-7)


def test_bitwise_deterministic():
    x, t = random_inputs((8, 300, 300), device="cuda")
    kw = dict(mode="pair", symmetry_weight=0.3)
    torch.manual_seed(0)
    first = grad_of(symfocal.sym_focal_loss, x, t, **kw)[:2]
    for _ in range(3):
        torch.manual_seed(0)
        again = grad_of(symfocal.sym_focal_loss, x, t, **kw)[:2]
        assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


def test_extremes_finite():
    vals = torch.tensor([0.0, 17.0, 100.0, 1e4, 65504.0], dtype=torch.float64)
    vals = torch.cat([vals, -vals])
    x = vals[:, None].expand(10, 10).clone()
    x = torch.stack([x, x.t().contiguous()]).cuda()
    for dtype in (torch.float16, torch.float32):
        for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
            xx = x.to(dtype).requires_grad_(True)
            loss = symfocal.sym_focal_loss(xx, torch.rand(x.shape, device="cuda"), gamma=gamma, mode="pair")
            (g,) = torch.autograd.grad(loss, xx)
            assert torch.isfinite(loss) and torch.isfinite(g).all()


def test_device_mismatch_errors():
    x, t = random_inputs((2, 8, 8))
    with pytest.raises(ValueError, match="target"):
        symfocal.sym_focal_loss(x.cuda(), t)
    with pytest.raises(ValueError, match="mask"):
        symfocal.sym_focal_loss(x.cuda(), t.cuda(), mask=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="lengths"):
        symfocal.sym_focal_loss(x.cuda(), t.cuda(), lengths=torch.tensor([8, 8]))


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


def test_non_default_stream():
    x, t = random_inputs((4, 64, 64), device="cuda")
    expect = symfocal.sym_focal_loss(x, t)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        got = symfocal.sym_focal_loss(x, t)
    s.synchronize()
    assert torch.equal(got, expect)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs a second GPU")
def test_second_device():
    x, t = random_inputs((2, 40, 40), dtype=torch.float64, device="cuda:1")
    compare_with_reference(x, t, mode="pair", symmetry_weight=0.2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
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


def test_deterministic_algorithms_accepted():
    x, t = random_inputs((2, 50, 50), device="cuda")
    x.requires_grad_(True)
    torch.use_deterministic_algorithms(True)
    try:
        symfocal.sym_focal_loss(x, t, mode="pair").backward()
    finally:
        torch.use_deterministic_algorithms(False)


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
