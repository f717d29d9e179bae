"""The CUDA kernels' design variants (csrc/sigmoid/cuda/variants.h), timed side by side.

Each variant is the default kernel with one design choice changed: 2- and
4-cell accesses or cell by cell, both tiles' loads in flight in backward or
one after the other, 2 or 3 blocks an SM, 256 or 128 threads a tile pair, and
the forward's sums added in two levels or by one block. All of them compute
the same results (tests/test_sigmoid_cuda.py runs each through the emulator); this
says which is fastest on the GPU at hand.

For each case and pass (forward, backward, forward+backward) the variants run
interleaved, one repetition of each in turn (rotated), so that they share the
machine's state; medians over the repetitions, CUDA events. The fraction of
the memory roofline is the bytes a pass must move (inputs read once, the
gradient written once) over its time, against a device-to-device copy
measured in the same run. Needs a build with SYMFOCAL_CUDA_VARIANTS=1
(`make gpu-check` makes one). --dry-run lists what would be timed, on any
machine.

Writes variants-<device>.json and variants-<device>.md under --out.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import symfocal  # noqa: E402
from bench import DTYPES, Timer, copy_bandwidth, device_name, slug  # noqa: E402
from symfocal import _ops  # noqa: E402

# (logits dtype, target dtype, B, L): L = 1022 is even but not a multiple of 4.
CASES = [("bfloat16", "bool", 32, 1024), ("bfloat16", "bool", 32, 1022),
         ("float32", "bool", 8, 512), ("float32", "bool", 8, 1024), ("float32", "bool", 8, 1022)]
PASSES = ("forward", "backward", "forward+backward")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20, help="timed repetitions of each variant and pass")
    p.add_argument("--mode", default="average")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    p.add_argument("--ptxas-log", default=None, help="the build log with nvcc's resource report (registers)")
    p.add_argument("--dry-run", action="store_true", help="list the variants and cases, time nothing")
    return p.parse_args(argv)


def pass_bytes(pass_name, B, L, x_dtype, t_dtype):
    """Bytes a pass must move at the least: forward reads x and the target, backward reads them
    and writes the gradient (the incoming gradient of a mean is a scalar)."""
    cells = B * L * L
    x_size = torch.empty((), dtype=DTYPES[x_dtype]).element_size()
    t_size = torch.empty((), dtype=DTYPES[t_dtype]).element_size()
    forward = cells * (x_size + t_size)
    backward = cells * (2 * x_size + t_size)
    return {"forward": forward, "backward": backward, "forward+backward": forward + backward}[pass_name]


def registers_by_shape(log_text):
    """{shape: {pass: registers}} for sm_90 from nvcc's -Xptxas=-v report (the most of any mode)."""
    found = {}
    pattern = re.compile(r"Compiling entry function '(\S+)' for 'sm_90'(?:(?!Compiling entry).)*?Used (\d+) registers",
                         re.S)
    for m in pattern.finditer(log_text):
        name, regs = m[1], int(m[2])
        if "tile_pair_kernel" not in name:
            continue
        shape = next((s for s in ("DefaultShape", "SerialLoadsShape", "ThreeBlocksShape", "HalfThreadsShape")
                      if s in name), None)
        # Mangled: tile_pair_kernel<Pass P, Mode M, Shape, acc_t>: ...PassE0E... (forward) or
        # ...PassE1E... (backward), then ...ShapeEfE (float) or ...ShapeEdE (double).
        pass_name = "forward" if "PassE0E" in name else "backward"
        key = f"{shape}/{'fp64' if 'ShapeEdE' in name else 'fp32'}"
        found.setdefault(key, {}).setdefault(pass_name, 0)
        found[key][pass_name] = max(found[key][pass_name], regs)
    return found


def make_inputs(device, B, L, x_dtype, t_dtype, sets=2):
    inputs = []
    for _ in range(sets):
        x = (torch.randn(B, L, L, device=device) * 2).to(DTYPES[x_dtype]).requires_grad_(True)
        t = torch.rand(B, L, L, device=device) < 0.03
        inputs.append((x, t.to(DTYPES[t_dtype])))
    return inputs


def time_case(variants, inputs, mode, repeats, timer):
    """{variant: {pass: [seconds]}}, the variants interleaved within each repetition."""
    times = {v: {p: [] for p in PASSES} for v in variants}

    def loss_of(x, t):
        return symfocal.sym_focal_loss(x, t, mode=mode, validate=False)

    for r in range(repeats + 2):  # the first two are warm-up
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            _ops.set_cuda_variant(v)
            x, t = inputs[r % len(inputs)]
            held = {}
            f = timer.time(lambda: held.setdefault("loss", loss_of(x, t)))
            b = timer.time(lambda: held["loss"].backward())
            fb = timer.time(lambda: loss_of(x, t).backward())
            x.grad = None
            if r >= 2:
                times[v]["forward"].append(f)
                times[v]["backward"].append(b)
                times[v]["forward+backward"].append(fb)
    _ops.set_cuda_variant("default")
    return times


def markdown(meta, rows, registers):
    lines = [f"# CUDA kernel variants on {meta['device']}", "",
             f"torch {meta['torch']}, mode {meta['mode']}, reduction mean, {meta['repeats']} repetitions "
             f"interleaved, medians; copy bandwidth {meta['copy_bandwidth_GBps']:.0f} GB/s (read + write) "
             "measured in the same run. `x default`: the variant's time over the default's (below 1: faster). "
             "`roofline`: the pass's minimum bytes over its time, against that copy.", ""]
    variants = meta["variants"]
    lines.append("| case | pass | " + " | ".join(variants) + " |")
    lines.append("|---|---|" + "---|" * len(variants))
    for row in rows:
        cells = []
        for v in variants:
            r = row["variants"][v]
            ratio = "" if v == "default" else f", x{r['ratio_to_default']:.3f}"
            cells.append(f"{r['median_ms']:.3f} ms{ratio}, {100 * r['roofline']:.0f} %")
        lines.append(f"| {row['case']} | {row['pass']} | " + " | ".join(cells) + " |")
    if registers:
        lines += ["", "Registers a thread (sm_90, the most of any mode):", "", "| shape | forward | backward |",
                  "|---|---|---|"]
        for shape, regs in sorted(registers.items()):
            lines.append(f"| {shape} | {regs.get('forward', '-')} | {regs.get('backward', '-')} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    listed = _ops.cuda_variants()
    names = [name for name, _, compiled in listed if compiled]
    print("variants (csrc/sigmoid/cuda/variants.h):")
    for name, what, compiled in listed:
        print(f"  {name:20s} {'in this build' if compiled else 'NOT in this build'}: {what}")
    print("cases: " + ", ".join(f"[{B}, {L}, {L}] {x} + {t}" for x, t, B, L in CASES) + "; passes: " + ", ".join(PASSES))
    if not listed:
        sys.exit("this build has no CUDA kernels: build with FORCE_CUDA=1 SYMFOCAL_CUDA_VARIANTS=1")
    missing = [name for name, _, compiled in listed if not compiled]
    if missing:
        sys.exit(f"this build lacks the variants {missing}: build with SYMFOCAL_CUDA_VARIANTS=1")
    registers = registers_by_shape(Path(args.ptxas_log).read_text(errors="replace")) if args.ptxas_log else {}
    if args.dry_run:
        print(f"dry run: would time {len(names)} variants x {len(CASES)} cases x {len(PASSES)} passes, "
              f"{args.repeats} repetitions each")
        return
    if not torch.cuda.is_available():
        sys.exit("no GPU: use --dry-run to list what would be timed")
    device = torch.device("cuda")
    timer = Timer(device)
    bandwidth = copy_bandwidth(device, 1 << 31, timer, 20)
    rows = []
    for x_dtype, t_dtype, B, L in CASES:
        inputs = make_inputs(device, B, L, x_dtype, t_dtype)
        times = time_case(names, inputs, args.mode, args.repeats, timer)
        case = f"[{B}, {L}, {L}] {x_dtype} + {t_dtype}"
        for p in PASSES:
            med = {v: statistics.median(times[v][p]) for v in names}
            row = {"case": case, "pass": p, "variants": {}}
            for v in names:
                row["variants"][v] = {"median_ms": med[v] * 1e3, "ratio_to_default": med[v] / med["default"],
                                      "roofline": pass_bytes(p, B, L, x_dtype, t_dtype) / med[v] / bandwidth,
                                      "samples_ms": [s * 1e3 for s in times[v][p]]}
            rows.append(row)
            print(f"{case:34s} {p:17s} " + "  ".join(f"{v} {med[v] * 1e3:.3f}" for v in names), flush=True)
        del inputs
        torch.cuda.empty_cache()
    meta = {"device": device_name(device), "torch": torch.__version__, "mode": args.mode, "repeats": args.repeats,
            "copy_bandwidth_GBps": bandwidth / 1e9, "variants": names,
            "what": {name: what for name, what, _ in listed}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"variants-{slug(meta['device'])}"
    stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows, "registers": registers}, indent=1))
    stem.with_suffix(".md").write_text(markdown(meta, rows, registers))
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
