"""Several Python threads calling both losses at once (a data loader's workers, a serving process): every
result bitwise equal to the same call made alone. Different shapes, options and dtypes, forward only and
forward + backward, each thread in its own order."""

import random
import threading

import torch

import symfocal


def _calls():
    """(name, function) pairs; each returns the loss and, where it runs backward, the gradient."""
    g = torch.Generator().manual_seed(5)

    def binary(shape, dtype, grad, **kw):
        x = (torch.randn(shape, generator=g) * 3).to(dtype)
        t = torch.rand(shape, generator=g) < 0.1

        def call():
            xx = x.detach().requires_grad_(grad)
            loss = symfocal.sym_focal_loss(xx, t, **kw)
            if not grad:
                return (loss,)
            (gx,) = torch.autograd.grad(loss.sum(), xx)
            return loss.detach(), gx
        return call

    def softmax(shape, C, dtype, grad, **kw):
        x = torch.randn(*shape, C, generator=g).to(dtype)
        t = torch.randint(0, C, shape, generator=g)

        def call():
            xx = x.detach().requires_grad_(grad)
            loss = symfocal.sym_softmax_focal_loss(xx, t, **kw)
            if not grad:
                return (loss,)
            (gx,) = torch.autograd.grad(loss.sum(), xx)
            return loss.detach(), gx
        return call

    return [
        ("binary average fp32", binary((4, 150, 150), torch.float32, True, mode="average", symmetry_weight=0.1)),
        ("binary pair bf16", binary((2, 97, 97), torch.bfloat16, True, mode="pair", gamma=1.5)),
        ("binary upper fp64 no grad", binary((3, 64, 64), torch.float64, False, mode="upper", reduction="none")),
        ("binary none fp16", binary((2, 2, 81, 81), torch.float16, True, mode="none", normalize="positives",
                                    lengths=torch.tensor([81, 40]))),
        ("binary average sample", binary((5, 70, 70), torch.float32, True, normalize="sample", label_smoothing=0.1)),
        ("softmax sum fp32", softmax((2, 48, 48), 37, torch.float32, True, mode="sum")),
        ("softmax average bf16", softmax((1, 64, 64), 64, torch.bfloat16, True, mode="average", gamma=2.0)),
        ("softmax none fp64 no grad", softmax((2, 33, 33), 10, torch.float64, False, mode="none", reduction="none")),
        ("softmax pair fp32 sample", softmax((3, 29, 29), 16, torch.float32, True, mode="pair", normalize="sample")),
    ]


def test_concurrent_calls_equal_serial_calls():
    calls = _calls()
    serial = {name: call() for name, call in calls}
    errors, mismatches = [], []

    def worker(seed):
        order = calls * 3
        random.Random(seed).shuffle(order)
        try:
            for name, call in order:
                got = call()
                if not all(torch.equal(a, b) for a, b in zip(got, serial[name])):
                    mismatches.append(name)
        except Exception as exc:  # noqa: BLE001 - reported below, with the thread's seed
            errors.append(f"thread {seed}: {exc!r}")

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=600)
    assert not any(th.is_alive() for th in threads), "a thread hung"
    assert not errors, errors
    assert not mismatches, f"results differ from the serial call's: {sorted(set(mismatches))}"
