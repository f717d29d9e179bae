"""A seeded random sweep over every option of both loss families against the float64 reference, with the
process's resident memory watched: shapes (batch dims, L across tile edges, empty maps), strides
(transposed, sliced, expanded batch), dtypes, modes, reductions, normalizations, lengths, masks,
separation, weights, ignore_index, penalties, smoothing, alpha / pos_weight / gamma.

`make test` runs SOAK_CASES (300) cases; `make soak` (the `slow` mark) runs SYMFOCAL_SOAK_CASES
(20000 unless set). Each run writes its case count, time and memory figures to build/soak-<name>.json."""

import gc
import json
import os
import random
import time
from pathlib import Path

import pytest
import torch

from symfocal import _ops, reference
from helpers import compare_with_reference, grad_of
from symfocal import sym_focal_loss as symfocal_loss
from test_softmax import compare as compare_softmax

SOAK_CASES = 300
ROOT = Path(__file__).resolve().parent.parent
# Growth of resident memory allowed from the end of the warm-up to the end of the run (allocator caches
# and Python's arenas settle within it; a leak of one map per call would pass it within a few hundred calls).
RSS_GROWTH_LIMIT = 48 * 2**20


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def binary_case(rng: random.Random, gen: torch.Generator):
    batch = rng.choice([[], [1], [2], [3], [2, 2], [0]])
    L = rng.choice([rng.randint(1, 80), 31, 32, 33, 64, 65, 0 if rng.random() < 0.03 else 1])
    shape = (*batch, L, L)
    dtype = rng.choice([torch.float32, torch.float32, torch.float64, torch.float64, torch.float16, torch.bfloat16])
    kw = dict(mode=rng.choice(["average", "pair", "upper", "none"]), reduction=rng.choice(["mean", "sum", "none"]),
              gamma=rng.choice([0.0, 0.5, 1.0, 2.0, 2.7]), alpha=rng.choice([None, 0.25, 0.9]),
              pos_weight=rng.choice([None, 0.5, 4.0]), label_smoothing=rng.choice([0.0, 0.0, 0.1]),
              min_separation=rng.choice([0, 0, 1, 4]), symmetry_weight=rng.choice([0.0, 0.0, 0.3]),
              symmetry_penalty=rng.choice(["l1", "l2", "huber"]), huber_delta=rng.choice([0.5, 1.0]))
    if kw["reduction"] == "mean":
        kw["normalize"] = rng.choice(["cells", "positives", "sample"])
    x = (torch.randn(shape, generator=gen, dtype=torch.float64) * rng.choice([1.0, 3.0, 8.0])).to(dtype)
    y = torch.rand(shape, generator=gen) < rng.choice([0.01, 0.05, 0.3])
    y = y | y.transpose(-1, -2) if rng.random() < 0.8 else y
    target = rng.choice(["bool", "uint8", "soft", "int8"])
    t = {"bool": y, "uint8": y.to(torch.uint8), "int8": y.to(torch.int8),
         "soft": torch.where(y, 0.7, 0.1).to(dtype if dtype in (torch.float32, torch.float64) else torch.float32)}[target]
    if target in ("int8", "soft") and rng.random() < 0.5:
        t = torch.where(torch.rand(shape, generator=gen) < 0.1, torch.tensor(-1, dtype=t.dtype), t)
        kw["ignore_index"] = -1
    if batch and batch[0] > 0 and rng.random() < 0.4:
        kw["lengths"] = torch.randint(0, L + 1, (batch[0],), generator=gen)
    if rng.random() < 0.3:
        kw["mask"] = torch.rand((L, L) if rng.random() < 0.5 else shape, generator=gen) < 0.8
    if rng.random() < 0.3:
        kw["weight"] = torch.rand(rng.choice([(L, L), (*shape[:-1], 1), shape]), generator=gen) * 2
    if rng.random() < 0.3:
        x, t = x.transpose(-1, -2), t.transpose(-1, -2)
    elif rng.random() < 0.2 and L > 4:
        x, t = x[..., 1:, 1:], t[..., 1:, 1:]
        for key in ("mask", "weight"):
            if key in kw:
                kw[key] = kw[key][..., 1:, 1:] if kw[key].shape[-1] == L else kw[key][..., 1:, :]
        if "lengths" in kw:
            kw["lengths"] = kw["lengths"].clamp(max=L - 1)
    return x, t, kw


def softmax_case(rng: random.Random, gen: torch.Generator):
    batch = rng.choice([[], [1], [2], [2, 2], [0]])
    L = rng.choice([rng.randint(1, 40), 16, 17, 32, 33])
    C = rng.choice([2, 5, 16, 37, 64, 128])
    dtype = rng.choice([torch.float32, torch.float64, torch.float64, torch.bfloat16])
    kw = dict(mode=rng.choice(["sum", "average", "pair", "upper", "none"]), reduction=rng.choice(["mean", "sum", "none"]),
              gamma=rng.choice([0.0, 0.0, 1.0, 2.0, 0.7]), label_smoothing=rng.choice([0.0, 0.0, 0.1]),
              min_separation=rng.choice([0, 0, 2]), normalize=rng.choice(["cells", "sample"]))
    if kw["reduction"] == "none":
        kw.pop("normalize")
    if rng.random() < 0.3:
        kw["alpha"] = torch.rand(C, generator=gen, dtype=torch.float64) + 0.1
    x = (torch.randn((*batch, L, L, C), generator=gen, dtype=torch.float64) * 2).to(dtype)
    kind = rng.choice(["int64", "uint8", "int32", "soft"]) if C <= 255 else "int64"
    if kind == "soft":
        t = torch.softmax(torch.randn((*batch, L, L, C), generator=gen, dtype=torch.float64) * 2, -1)
    else:
        t = torch.randint(0, C, (*batch, L, L), generator=gen).to(getattr(torch, kind))
        if rng.random() < 0.3 and kind != "uint8":
            t = torch.where(torch.rand(t.shape, generator=gen) < 0.1, torch.tensor(-100, dtype=t.dtype), t)
            kw["ignore_index"] = -100
    if batch and batch[0] > 0 and rng.random() < 0.4:
        kw["lengths"] = torch.randint(0, L + 1, (batch[0],), generator=gen)
    if rng.random() < 0.3:
        kw["mask"] = torch.rand(L, L, generator=gen) < 0.8
    if rng.random() < 0.3:
        kw["weight"] = torch.rand(L, L, generator=gen) * 2
    if rng.random() < 0.25:  # bins first: class_dim -3, as a [B, C, L, L] head gives them
        x = x.movedim(-1, -3)
        if kind == "soft":
            t = t.movedim(-1, -3)
        kw["class_dim"] = -3
    return x, t, kw


def _compare_float16(x, t, kw):
    """compare_with_reference for float16 logits, plus the resolution of float16's subnormal range: the
    gradient kept from a training forward is float16 (SPEC.md, "Reductions"), so where every cell is easy
    (per-cell gradients below 6e-5) each carries an absolute error up to float16's subnormal spacing
    (6e-8) times the incoming gradient, on top of the output's own rounding."""
    loss, grad, g = grad_of(symfocal_loss, x, t, **kw)
    ref_x = x.detach().double().requires_grad_(True)
    ref_loss = reference.sym_focal_loss(ref_x, t.double() if t.dtype.is_floating_point else t, **kw)
    (ref_grad,) = torch.autograd.grad(ref_loss, ref_x, g.double())
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    torch.testing.assert_close(loss.double(), ref_loss.detach(), atol=2e-3, rtol=2e-3)
    if not grad.numel():
        return
    floor = 2 * 6e-8 * max(1.0, float(g.abs().max()))
    allowed = 2e-3 * float(ref_grad.abs().max()) + floor
    assert float((grad.double() - ref_grad).abs().max()) <= allowed


def soak(cases: int, seed: int, name: str):
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    warmup = min(50, cases // 5)
    start, rss = time.monotonic(), []
    counts = {"binary": 0, "softmax": 0}
    for case in range(cases):
        if case == warmup:
            gc.collect()
            rss.append(resident_bytes())
        family = "binary" if rng.random() < 0.65 else "softmax"
        counts[family] += 1
        x, t, kw = binary_case(rng, gen) if family == "binary" else softmax_case(rng, gen)
        try:
            if family == "binary":
                if x.dtype == torch.float16:
                    _compare_float16(x, t, kw)
                else:
                    compare_with_reference(x, t, **kw)
            else:
                compare_softmax(x, t, **kw)
        except Exception as exc:
            torch.save({"x": x, "t": t, "kw": kw, "family": family}, ROOT / "build" / "soak-failure.pt")
            raise AssertionError(f"soak case {case} (seed {seed}, {family}): shape {tuple(x.shape)} "
                                 f"{x.dtype}, strides {x.stride()}, target {t.dtype}, options {kw} (inputs in "
                                 "build/soak-failure.pt)") from exc
    gc.collect()
    rss.append(resident_bytes())
    growth = rss[-1] - rss[0]
    report = {"cases": cases, "seed": seed, "families": counts, "seconds": round(time.monotonic() - start, 1),
              "rss_after_warmup_mib": round(rss[0] / 2**20, 1), "rss_at_end_mib": round(rss[-1] / 2**20, 1),
              "rss_growth_mib": round(growth / 2**20, 2), "threads": torch.get_num_threads(),
              "build": _ops.build_info()}
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / f"soak-{name}.json").write_text(json.dumps(report, indent=2) + "\n")
    assert growth < RSS_GROWTH_LIMIT, f"resident memory grew {growth / 2**20:.1f} MiB over the run: {report}"


def test_soak():
    soak(SOAK_CASES, seed=int(os.environ.get("SYMFOCAL_TEST_SEED", "0")), name="test")


@pytest.mark.slow
def test_soak_long():
    soak(int(os.environ.get("SYMFOCAL_SOAK_CASES", "20000")), seed=1 + int(os.environ.get("SYMFOCAL_TEST_SEED", "0")),
         name="long")
