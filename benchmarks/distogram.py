"""Benchmark: a distogram head's loss, symfocal's fused softmax focal loss against OpenFold's.

Providers (each forward+backward of the loss of an AlphaFold/OpenFold distogram head: logits
symmetrized as x + xᵀ, softmax cross-entropy over the bins against distogram_bins of the
coordinates, each sample's mean over its residue-pair mask, then the mean over the batch)
  fused      symfocal.sym_softmax_focal_loss(mode="sum", normalize="sample", mask=pair mask)
  eager      OpenFold's distogram head + distogram_loss, as written there
  compiled   torch.compile of the eager code (compile time excluded)

Per case: medians with p20/p80 of forward+backward over rotating input sets (CUDA events on a
GPU, wall time on a CPU), the speedup of fused over each, and the bytes each keeps for
backward beyond its inputs; on a GPU also the peak memory and fused's traffic against the
bandwidth of a copy measured in the same run. Results: a table on stdout, JSON and markdown
in benchmarks/results/distogram-<device>.*.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import symfocal  # noqa: E402
from bench import (Timer, copy_bandwidth, device_name, slug, summary, threads_per_core,  # noqa: E402
                   transcendental_rate)
from symfocal import _ops  # noqa: E402

CPU_CASES = [(1, 256, 64), (1, 384, 64), (4, 256, 37)]
GPU_CASES = CPU_CASES + [(1, 768, 64), (8, 384, 64)]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def openfold_loss(logits, true_bins, residue_mask, eps=1e-6):
    """OpenFold's DistogramHead symmetrization and distogram_loss (openfold/utils/loss.py)."""
    logits = logits + logits.transpose(-2, -3)
    errors = -torch.sum(F.one_hot(true_bins.long(), logits.shape[-1]) * F.log_softmax(logits, dim=-1), dim=-1)
    square_mask = residue_mask[..., None] * residue_mask[..., None, :]
    denom = eps + torch.sum(square_mask, dim=(-1, -2))
    mean = torch.sum(errors * square_mask, dim=-1) / denom[..., None]
    return torch.mean(torch.sum(mean, dim=-1))


def fused_loss(logits, true_bins, residue_mask):
    pair_mask = (residue_mask[..., None] * residue_mask[..., None, :]).bool()
    return symfocal.sym_softmax_focal_loss(logits, true_bins, mode="sum", normalize="sample", mask=pair_mask,
                                           validate=False)


def providers(names):
    out = {}
    if "fused" in names:
        out["fused"] = fused_loss
    if "eager" in names:
        out["eager"] = openfold_loss
    if "compiled" in names:
        out["compiled"] = torch.compile(openfold_loss)
    return out


def make_inputs(B, L, C, dtype, device, sets):
    inputs = []
    for _ in range(sets):
        coords = torch.randn(B, L, 3, device=device) * 12
        residue_mask = (torch.rand(B, L, device=device) < 0.9).float()
        x = torch.randn(B, L, L, C, device=device).to(dtype).requires_grad_(True)
        inputs.append((x, symfocal.distogram_bins(coords, num_bins=C), residue_mask))
    return inputs


def saved_bytes(fn, x, bins, mask):
    """Bytes autograd keeps between forward and backward beyond the inputs themselves."""
    own = {t.untyped_storage().data_ptr() for t in (x, bins, mask)}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in own:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(x, bins, mask)
    del out
    return sum(seen.values())


def run_case(fns, B, L, C, dtype, device, timer, repeats, bandwidth, rate):
    inputs = make_inputs(B, L, C, dtype, device, 3)

    def step(fn, i):
        x, bins, mask = inputs[i % len(inputs)]
        fn(x, bins, mask).backward()
        x.grad = None

    times = {name: [] for name in fns}
    for name, fn in fns.items():
        for i in range(3):  # warm-up (and compile)
            step(fn, i)
    # Interleaved, so that a noisy neighbour slows every provider alike.
    for i in range(repeats):
        for name, fn in fns.items():
            times[name].append(timer.time(lambda: step(fn, i)))
    # The least forward+backward can take here: read the logits and the bins, write the gradient, at
    # the copy bandwidth; or the exps of one softmax a cell pair (mode sum) at torch.exp's rate.
    element = torch.tensor([], dtype=dtype).element_size()
    floor_bytes = 2 * B * L * L * C * element + B * L * L * inputs[0][1].element_size()
    floor = 1e3 * max(floor_bytes / bandwidth, B * L * (L + 1) / 2 * C / rate)
    row = {"B": B, "L": L, "C": C, "dtype": str(dtype).replace("torch.", ""), "floor_ms": floor, "providers": {}}
    for name, fn in fns.items():
        entry = summary(times[name])
        entry["floor_fraction"] = floor / entry["median_ms"]
        x, bins, mask = inputs[0]
        entry["saved_MB"] = saved_bytes(fn, x, bins, mask) / 2**20
        if device.type == "cuda":
            torch.cuda.synchronize()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            step(fn, 0)
            torch.cuda.synchronize()
            entry["peak_MB"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        row["providers"][name] = entry
    fused = row["providers"].get("fused")
    if fused:
        for name, entry in row["providers"].items():
            entry["fused_speedup"] = entry["median_ms"] / fused["median_ms"]
        # On a GPU forward reads the logits (and the bins), backward reads them again and writes the gradient.
        fused["traffic_MB"] = (3 * B * L * L * C * element + 2 * B * L * L) / 2**20
    return row


def table(rows, bandwidth):
    lines = ["| B x L x L x C | dtype | provider | fwd+bwd ms (p20-p80) | floor | fused speedup | saved for bwd MB |"
             + (" peak MB | fused GB/s (of copy) |" if any("peak_MB" in e for r in rows for e in r["providers"].values())
                else ""),
             "|---|---|---|---|---|---|---|" + ("---|---|" if any("peak_MB" in e for r in rows
                                                              for e in r["providers"].values()) else "")]
    for r in rows:
        for name, e in r["providers"].items():
            cell = (f"| {r['B']} x {r['L']} x {r['L']} x {r['C']} | {r['dtype']} | {name} | {e['median_ms']:.2f} "
                    f"({e['p20_ms']:.2f}-{e['p80_ms']:.2f}) | {e['floor_fraction']:.1%} | {e['fused_speedup']:.2f}x | "
                    f"{e['saved_MB']:.1f} |")
            if "peak_MB" in e:
                rate = ""
                if name == "fused":
                    gbps = e["traffic_MB"] * 2**20 / (e["median_ms"] / 1e3) / 1e9
                    rate = f"{gbps:.0f} ({100 * gbps * 1e9 / bandwidth:.0f} %)"
                cell += f" {e['peak_MB']:.1f} | {rate} |"
            lines.append(cell)
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--dtypes", default="float32,bfloat16")
    p.add_argument("--providers", default="fused,eager,compiled")
    p.add_argument("--repeats", type=int, default=None, help="default: 9 on cpu, 30 on cuda")
    p.add_argument("--quick", action="store_true", help="one case, float32, few repeats")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          (args.device if args.device != "auto" else "cpu"))
    if not _ops.available():
        sys.exit(f"distogram bench: the compiled extension did not load ({_ops.LOAD_ERROR}); run `make build`")
    cases = GPU_CASES if device.type == "cuda" else CPU_CASES
    dtypes = [DTYPES[d] for d in args.dtypes.split(",") if d]
    repeats = args.repeats or (9 if device.type == "cpu" else 30)
    if args.quick:
        cases, dtypes, repeats = [cases[1]], [torch.float32], min(repeats, 5)
    timer = Timer(device)
    bandwidth = copy_bandwidth(device, 512 * 2**20, timer, 10)
    rate = transcendental_rate(device, timer, 10)
    fns = providers([n for n in args.providers.split(",") if n])
    name = device_name(device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"distogram-{device.type}-{slug(name)}"
    start = time.perf_counter()
    rows = []
    for (B, L, C) in cases:
        for dtype in dtypes:
            rows.append(run_case(fns, B, L, C, dtype, device, timer, repeats, bandwidth, rate))
            e = rows[-1]["providers"]
            print(f"[{B} x {L} x {L} x {C}, {rows[-1]['dtype']}] " + ", ".join(
                f"{n} {v['median_ms']:.1f} ms" for n, v in e.items()), flush=True)
            write(stem, name, device, rows, bandwidth, rate, repeats, argv, start)  # after each case: a time limit keeps them
    print(f"\n{name} ({device.type}), torch {torch.__version__}, {torch.get_num_threads()} threads\n"
          f"{table(rows, bandwidth)}")
    print(f"results written to {os.path.relpath(stem)}.json and .md")
    return rows


def write(stem, name, device, rows, bandwidth, rate, repeats, argv, start):
    meta = {"device": device.type, "device_name": name, "torch": torch.__version__, "symfocal": symfocal.__version__,
            "cpu_isa": _ops.build_info().get("cpu_isa"), "threads": torch.get_num_threads(),
            "threads_per_core": threads_per_core(),
            "copy_GBps": bandwidth / 1e9, "exp_per_s": rate, "repeats": repeats, "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python benchmarks/distogram.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "wall_s": time.perf_counter() - start}
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "results": rows}, indent=1))
    Path(f"{stem}.md").write_text(
        f"# Distogram loss: fused vs OpenFold ({name})\n\n`{meta['command']}` on {meta['date']}: torch "
        f"{meta['torch']}, {meta['threads']} threads, {repeats} interleaved repeats, medians; mode sum, normalize "
        f"sample, integer bins, a 90 % residue mask. Copy bandwidth {meta['copy_GBps']:.1f} GB/s, torch.exp "
        f"{meta['exp_per_s'] / 1e9:.2f} G/s; floor: the least forward+backward can take here (logits and bins read, "
        f"gradient written, at the copy bandwidth, or one softmax's exps a cell pair at torch.exp's rate) over the "
        f"provider's time. CPU kernels: {meta['cpu_isa']}, {meta['threads_per_core']} threads per core.\n\n"
        f"{table(rows, bandwidth)}\n")


if __name__ == "__main__":
    main()
