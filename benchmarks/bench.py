"""Benchmark: symfocal's fused kernels against the same loss in plain PyTorch.

Providers
  fused        symfocal.sym_focal_loss (the compiled CPU / CUDA kernels)
  eager        symfocal.reference.sym_focal_loss: what people write by hand
  compiled     torch.compile of the reference (compile time reported separately)
  torchvision  torchvision.ops.sigmoid_focal_loss, mode "none" only, when installed

For every case it measures forward, backward and forward+backward: medians
with p20/p80 over repeated runs (CUDA events on a GPU, synchronized wall time
on a CPU), warm-up excluded, inputs rotated among several sets so that caches
do not flatter. It reports the speedup of fused over each provider, the bytes
per second against the memory bandwidth of a copy measured in the same run,
and the memory each provider keeps for backward (plus peak memory on a GPU).

Results: a table on stdout, JSON and markdown in benchmarks/results/ named
after the device, and PNG plots (time vs L, speedup vs L).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import symfocal  # noqa: E402
from symfocal import _ops, reference  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
          "float64": torch.float64, "bool": torch.bool, "uint8": torch.uint8}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="auto: cuda when available, else cpu")
    p.add_argument("--batch", type=int, default=None, help="B (default: 8 on cpu, 32 on cuda)")
    p.add_argument("--lengths", default=None,
                   help="comma-separated L values of the sweep (default: 128,256,512 on cpu; 256,512,1024,2048 on cuda)")
    p.add_argument("--at-L", type=int, default=None,
                   help="L at which every mode and dtype is measured (default: the largest of --lengths)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"],
                   help="logits dtype of the sweep")
    p.add_argument("--extra-dtypes", default="bfloat16",
                   help="comma-separated logits dtypes also measured at --at-L ('' for none)")
    p.add_argument("--target-dtype", default="bool", choices=["bool", "uint8", "float32", "bfloat16"])
    p.add_argument("--modes", default="average,pair,upper,none",
                   help="modes measured at --at-L (the L sweep uses the first)")
    p.add_argument("--reduction", default="mean", choices=["mean", "sum", "none"])
    p.add_argument("--providers", default="fused,eager,compiled,torchvision")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per measure (default: 15 cpu, 50 cuda)")
    p.add_argument("--quick", action="store_true", help="one small size, mode average, few repeats")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"), help="results folder")
    p.add_argument("--no-plot", action="store_true")
    return p.parse_args(argv)


# ---------------------------------------------------------------- timing

class Timer:
    """Synchronized wall time on a CPU, CUDA events on a GPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def time(self, fn):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0


def summary(samples):
    s = sorted(samples)

    def pct(q):
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]

    return {"median_ms": statistics.median(s) * 1e3, "p20_ms": pct(0.2) * 1e3, "p80_ms": pct(0.8) * 1e3}


def copy_bandwidth(device, nbytes, timer, repeats):
    """Bytes read + written per second by a large device-to-device copy: the memory roofline."""
    n = max(nbytes // 4, 1 << 20)
    src = torch.randn(n, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    times = [timer.time(lambda: dst.copy_(src)) for _ in range(repeats)]
    return 2 * n * 4 / statistics.median(times)


def transcendental_rate(device, timer, repeats):
    """exp evaluations per second of torch.exp on a cache-resident buffer (SIMD, all threads): what the
    floor below charges for each exp or log a case must evaluate."""
    n, inner = 1 << 16, 32
    src = -10 * torch.rand(n, device=device)
    dst = torch.empty_like(src)

    def many():
        for _ in range(inner):
            torch.exp(src, out=dst)

    many()
    return n * inner / statistics.median([timer.time(many) for _ in range(repeats)])


# The exps and logs a cell of each mode needs (gamma 2: none beyond the softplus's exp and log1p):
# average one pair of them for the two cells of s = (x_ij + x_ji) / 2, pair and none one pair a cell,
# upper one pair a counted cell (half the map). Computed once for forward and backward (the CPU's
# training forward shares them).
EVALUATIONS_PER_CELL = {"average": 1.0, "pair": 2.0, "none": 2.0, "upper": 1.0}


def floor_ms(mode, cells, logit_bytes, target_bytes, bandwidth, rate):
    """The least a case can take on this machine, per phase: its unavoidable bytes (read logits and
    targets, write the gradient) at the copy bandwidth, or its transcendentals at torch.exp's rate."""
    evaluations = EVALUATIONS_PER_CELL.get(mode, 2.0) * cells
    needed = {"forward": logit_bytes + target_bytes, "backward": logit_bytes,
              "forward+backward": 2 * logit_bytes + target_bytes}
    return {phase: 1e3 * max(b / bandwidth, evaluations / rate) for phase, b in needed.items()}


# ---------------------------------------------------------------- providers

def make_providers(names, mode, reduction, target_dtype):
    kw = dict(mode=mode, reduction=reduction)
    providers = {}
    if "fused" in names:
        providers["fused"] = lambda x, y: symfocal.sym_focal_loss(x, y, validate=False, **kw)
    if "eager" in names:
        providers["eager"] = lambda x, y: reference.sym_focal_loss(x, y, validate=False, **kw)
    if "compiled" in names:
        # Each case compiles afresh: the cases share one function, and dynamo stops compiling it after
        # its recompile limit (8 guards' worth of shapes, dtypes and modes), running it eagerly.
        torch._dynamo.reset()
        compiled = torch.compile(functools.partial(reference.sym_focal_loss, validate=False, **kw))
        providers["compiled"] = compiled
    if "torchvision" in names and mode == "none":
        try:
            from torchvision.ops import sigmoid_focal_loss
        except Exception:  # noqa: BLE001 - torchvision is optional
            pass
        else:
            providers["torchvision"] = lambda x, y: sigmoid_focal_loss(x, y.to(x.dtype), reduction=reduction)
    return providers


def saved_for_backward_bytes(fn, x, y):
    """Bytes autograd keeps between forward and backward beyond the inputs themselves."""
    inputs = {x.untyped_storage().data_ptr(), y.untyped_storage().data_ptr()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in inputs:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(x, y)
    del out
    return sum(seen.values())


def measure(fn, inputs, timer, repeats, device):
    """Forward, backward and forward+backward times of fn over rotating input sets."""
    grads = {}

    def fwd(i):
        x, y = inputs[i % len(inputs)]
        return fn(x, y)

    def backward_of(out):
        g = grads.setdefault(out.shape, torch.ones_like(out) if out.dim() else torch.ones((), device=device,
                                                                                        dtype=out.dtype))
        out.backward(g)

    def clear_grads():
        # Outside the timer: a training step starts from x.grad = None (zero_grad(set_to_none=True)),
        # so no provider should pay for accumulating into the previous step's gradient.
        for x, _ in inputs:
            x.grad = None

    for i in range(3):  # warm-up
        backward_of(fwd(i))
        clear_grads()
    f, b, fb = [], [], []
    for i in range(repeats):
        holder = {}
        f.append(timer.time(lambda: holder.setdefault("out", fwd(i))))
        b.append(timer.time(lambda: backward_of(holder["out"])))
        clear_grads()
        fb.append(timer.time(lambda: backward_of(fwd(i + 1))))
        clear_grads()
    return {"forward": summary(f), "backward": summary(b), "forward+backward": summary(fb)}


def peak_cuda_bytes(fn, x, y):
    """Peak memory of one forward+backward above what was allocated before (grad_logits included)."""
    x.grad = None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    _fwd_bwd(fn, x, y)
    torch.cuda.synchronize()
    x.grad = None
    return torch.cuda.max_memory_allocated() - base


def _fwd_bwd(fn, x, y):
    out = fn(x, y)
    out.backward(torch.ones_like(out))


# ---------------------------------------------------------------- one case

def run_case(args, device, timer, B, L, mode, dtype, target_dtype, bandwidth, rate, provider_names):
    sets = 2 if device.type == "cpu" else 3
    inputs = []
    for _ in range(sets):
        x = torch.randn(B, L, L, device=device, dtype=torch.float32).mul_(2).to(dtype).requires_grad_(True)
        y = torch.rand(B, L, L, device=device) < 0.03
        y = (y | y.transpose(-1, -2)).to(target_dtype)
        inputs.append((x, y))
    providers = make_providers(provider_names, mode, args.reduction, target_dtype)
    logit_bytes = B * L * L * inputs[0][0].element_size()
    target_bytes = B * L * L * inputs[0][1].element_size()
    nbytes = {"forward": logit_bytes + target_bytes, "backward": 2 * logit_bytes + target_bytes,
              "forward+backward": 3 * logit_bytes + 2 * target_bytes}
    floor = floor_ms(mode, B * L * L, logit_bytes, target_bytes, bandwidth, rate)
    result = {"B": B, "L": L, "mode": mode, "logits_dtype": str(dtype).replace("torch.", ""),
              "target_dtype": str(target_dtype).replace("torch.", ""), "reduction": args.reduction,
              "bytes": nbytes, "floor_ms": floor, "providers": {}}
    for name, fn in providers.items():
        entry = {}
        if name == "compiled":
            t0 = time.perf_counter()
            _fwd_bwd(fn, *inputs[0])
            if device.type == "cuda":
                torch.cuda.synchronize()
            entry["compile_s"] = time.perf_counter() - t0
        entry.update(measure(fn, inputs, timer, args.repeats, device))
        for phase, stats in list(entry.items()):
            if isinstance(stats, dict):
                bps = nbytes[phase] / (stats["median_ms"] / 1e3)
                stats["GBps"] = bps / 1e9
                stats["roofline_fraction"] = bps / bandwidth
                stats["floor_fraction"] = floor[phase] / stats["median_ms"]
        # (torch.compile keeps its saved tensors out of reach of the hooks: not reported.)
        entry["saved_for_backward_MB"] = (None if name == "compiled"
                                          else saved_for_backward_bytes(fn, *inputs[0]) / 2**20)
        if device.type == "cuda":
            entry["peak_extra_MB"] = peak_cuda_bytes(fn, *inputs[0]) / 2**20
        inputs[0][0].grad = None
        result["providers"][name] = entry
    fused = result["providers"].get("fused")
    if fused:
        result["speedup"] = {
            other: {phase: result["providers"][other][phase]["median_ms"] / fused[phase]["median_ms"]
                    for phase in ("forward", "backward", "forward+backward")}
            for other in result["providers"] if other != "fused"}
    return result


# ---------------------------------------------------------------- output

def threads_per_core() -> int | None:
    """Hardware threads a core (2 with SMT): two torch threads on one core share its vector units."""
    try:
        info = dict(line.split(":", 1) for line in Path("/proc/cpuinfo").read_text().splitlines() if ":" in line)
        return int(info["siblings\t"].strip()) // int(info["cpu cores\t"].strip())
    except (OSError, KeyError, ValueError, ZeroDivisionError):
        return None


def device_name(device):
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def slug(text):
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


def _mb(value):
    return "-" if value is None else f"{value:.1f}"


def table(results, *, header=True):
    head = (f"{'mode':8} {'logits':9} {'B':>3} {'L':>5} {'provider':12} {'fwd ms':>9} {'bwd ms':>9} "
            f"{'fwd+bwd ms':>11} {'p20-p80':>15} {'roofline':>8} {'floor':>6} {'saved MB':>9} {'fused is':>10}")
    lines = [head, "-" * len(head)] if header else []
    for r in results:
        for name, e in r["providers"].items():
            fb = e["forward+backward"]
            speed = r.get("speedup", {}).get(name, {}).get("forward+backward")
            lines.append(
                f"{r['mode']:8} {r['logits_dtype']:9} {r['B']:>3} {r['L']:>5} {name:12} "
                f"{e['forward']['median_ms']:9.2f} {e['backward']['median_ms']:9.2f} {fb['median_ms']:11.2f} "
                f"{fb['p20_ms']:7.2f}-{fb['p80_ms']:<7.2f} {fb['roofline_fraction']:8.1%} {fb['floor_fraction']:6.1%} "
                f"{_mb(e['saved_for_backward_MB']):>9} {('%.2fx' % speed) if speed else '':>10}")
    return "\n".join(lines)


def markdown(meta, results):
    out = [f"# symfocal benchmark: {meta['device_name']}", "",
           f"- date: {meta['date']}; torch {meta['torch']}; symfocal {meta['symfocal']} "
           f"(CPU kernels: {meta['cpu_isa']}); threads: {meta['threads']}",
           f"- command: `{meta['command']}`",
           f"- memory bandwidth (copy, read+write): {meta['copy_GBps']:.1f} GB/s; torch.exp "
           f"{meta['exp_per_s'] / 1e9:.2f} G/s; threads per core: {meta['threads_per_core']}",
           "- floor: the fraction of this machine's floor a provider reaches in forward+backward: the larger of "
           "its unavoidable bytes (logits and targets read, gradient written) at the copy bandwidth and its "
           "exps and logs at torch.exp's rate",
           f"- times: medians of {meta['repeats']} runs, milliseconds; speedup = provider time / fused time", "",
           "| mode | logits | target | B | L | provider | fwd | bwd | fwd+bwd (p20-p80) | roofline | floor "
           "| saved for bwd MB | fused speedup fwd / fwd+bwd |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        for name, e in r["providers"].items():
            fb = e["forward+backward"]
            sp = r.get("speedup", {}).get(name)
            sp_txt = f"{sp['forward']:.2f}x / {sp['forward+backward']:.2f}x" if sp else ""
            out.append(f"| {r['mode']} | {r['logits_dtype']} | {r['target_dtype']} | {r['B']} | {r['L']} | {name} | "
                       f"{e['forward']['median_ms']:.2f} | {e['backward']['median_ms']:.2f} | "
                       f"{fb['median_ms']:.2f} ({fb['p20_ms']:.2f}-{fb['p80_ms']:.2f}) | "
                       f"{fb['roofline_fraction']:.1%} | {fb['floor_fraction']:.1%} | "
                       f"{_mb(e['saved_for_backward_MB'])} | {sp_txt} |")
    compile_times = [(r["mode"], r["logits_dtype"], r["L"], r["providers"]["compiled"]["compile_s"])
                     for r in results if "compiled" in r["providers"]]
    if compile_times:
        out += ["", "torch.compile time (first forward+backward, excluded above): " +
                ", ".join(f"{m}/{d}/L={L}: {s:.1f} s" for m, d, L, s in compile_times)]
    return "\n".join(out) + "\n"


def plot(results, path_stem, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = [r for r in results if r.get("sweep")]
    if len(sweep) < 2:
        return []
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    Ls = [r["L"] for r in sweep]
    for name in sweep[0]["providers"]:
        ax1.plot(Ls, [r["providers"][name]["forward+backward"]["median_ms"] for r in sweep], "o-", label=name)
        if name != "fused":
            ax2.plot(Ls, [r["speedup"][name]["forward+backward"] for r in sweep], "o-", label=f"vs {name}")
    ax1.set(xscale="log", yscale="log", xlabel="L", ylabel="forward+backward, ms (median)", title=title)
    ax2.set(xscale="log", xlabel="L", ylabel="speedup of fused (x)", title="fused speedup, forward+backward")
    ax2.axhline(1.0, color="gray", lw=0.8)
    for ax in (ax1, ax2):
        ax.minorticks_off()
        ax.set_xticks(Ls)
        ax.set_xticklabels([str(L) for L in Ls])
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png = f"{path_stem}.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return [png]


# ---------------------------------------------------------------- main

def main(argv=None):
    args = parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("bench: --device cuda but no GPU is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = device.type == "cpu"
    B = args.batch or (8 if cpu else 32)
    Ls = [int(v) for v in (args.lengths or ("128,256,512" if cpu else "256,512,1024,2048")).split(",")]
    modes = [m for m in args.modes.split(",") if m]
    extra_dtypes = [d for d in args.extra_dtypes.split(",") if d]
    args.repeats = args.repeats or (15 if cpu else 50)
    if args.quick:
        Ls, modes, extra_dtypes, args.repeats = [Ls[0]], modes[:1], [], min(args.repeats, 7)
    at_L = args.at_L or max(Ls)
    dtype, target_dtype = DTYPES[args.dtype], DTYPES[args.target_dtype]
    providers = [p for p in args.providers.split(",") if p]
    if not _ops.available():
        sys.exit(f"bench: the compiled extension did not load ({_ops.LOAD_ERROR}); run `make build`")

    cases = [(L, modes[0], dtype, True) for L in Ls]
    cases += [(at_L, m, dtype, False) for m in modes[1:]]
    cases += [(at_L, m, DTYPES[d], False) for d in extra_dtypes if DTYPES[d] != dtype for m in modes]

    timer = Timer(device)
    # A copy well beyond the caches (a CPU's last-level cache holds tens of MB).
    bandwidth = copy_bandwidth(device, max(B * at_L * at_L * 4 * 4, 512 * 2**20), timer, 10)
    rate = transcendental_rate(device, timer, 10)
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(it, **_):
            return it
    results = []
    t_start = time.perf_counter()
    progress = tqdm(cases, desc="benchmark", unit="case")
    write = getattr(progress, "write", print)
    for L, mode, dt, sweep in progress:
        r = run_case(args, device, timer, B, L, mode, dt, target_dtype, bandwidth, rate, providers)
        r["sweep"] = sweep
        results.append(r)
        # Each case's rows as soon as they are measured; the whole table again at the end.
        write(table([r], header=len(results) == 1))

    name = device_name(device)
    meta = {
        "device": device.type, "device_name": name, "torch": torch.__version__, "symfocal": symfocal.__version__,
        "cpu_isa": _ops.build_info().get("cpu_isa"), "threads": torch.get_num_threads(),
        "threads_per_core": threads_per_core(),
        "copy_GBps": bandwidth / 1e9, "exp_per_s": rate, "repeats": args.repeats, "python": platform.python_version(),
        "machine": platform.platform(), "cpu_count": os.cpu_count(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/bench.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "wall_s": time.perf_counter() - t_start,
    }
    print()
    print(f"{name} ({device.type}), torch {torch.__version__}, {meta['threads']} threads "
          f"({meta['threads_per_core']} a core), kernels {meta['cpu_isa']}, copy bandwidth {bandwidth / 1e9:.1f} GB/s, "
          f"torch.exp {rate / 1e9:.2f} G/s")
    print(table(results))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # A CPU's results depend on the instruction set its kernels use (AVX2 or AVX-512).
    isa = f"-{meta['cpu_isa']}" if device.type == "cpu" and meta["cpu_isa"] else ""
    stem = out / f"{device.type}-{slug(name)}{isa}"
    Path(f"{stem}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    Path(f"{stem}.md").write_text(markdown(meta, results))
    written = [f"{stem}.json", f"{stem}.md"]
    if not args.no_plot:
        written += plot(results, str(stem), f"{name}, {args.dtype} logits, B={B}, mode {modes[0]}")
    print(f"\nresults written to: {', '.join(os.path.relpath(p) for p in written)} "
          f"(sweep took {meta['wall_s']:.0f} s)")
    return results


if __name__ == "__main__":
    main()
