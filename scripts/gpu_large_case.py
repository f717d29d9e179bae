"""One map with more than 2^31 cells (`make gpu-check`): [1, 46341, 46341] bfloat16 logits and a
bool target, mode "average", reduction "sum", forward and backward, against the float64
reference computed a band of rows at a time (a whole float64 copy would take 17 GB, its
autograd graph several times that).

The kernels index with 64-bit offsets; this is the case where 32-bit ones would wrap. Checks
the loss to 1e-5 relative and every cell's gradient to bfloat16 rounding (relative to the largest
gradient). --L and --device make a small rehearsal of the same code (`make gpu-check` on a
machine without a GPU runs it on the CPU at L = 300).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import symfocal  # noqa: E402
from symfocal import reference  # noqa: E402


def reference_band(x, t, rows, alpha, gamma):
    """Float64 loss sum and gradient of rows `rows` of the map, mode "average": the cells (i, j) of
    the band with their mirrors (j, i), which lie in the band's columns."""
    xa = x[rows].double()                    # x_ij for i in the band
    xb = x[:, rows].double().transpose(0, 1)  # x_ji
    ta = t[rows].double()
    tb = t[:, rows].double().transpose(0, 1)
    s = ((xa + xb) * 0.5).requires_grad_(True)
    # sum over the band's cells of FL(s_ij, t_ij); d/dx_ij of the whole map's sum is
    # (dFL(s_ij, t_ij) + dFL(s_ij, t_ji)) / 2, since s_ji = s_ij.
    own = reference.focal_term(s, ta, alpha, gamma, None).sum()
    (g_own,) = torch.autograd.grad(own, s)
    s2 = s.detach().requires_grad_(True)
    (g_mirror,) = torch.autograd.grad(reference.focal_term(s2, tb, alpha, gamma, None).sum(), s2)
    return own.detach().item(), (g_own + g_mirror) * 0.5


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--L", type=int, default=46341)
    p.add_argument("--device", default="cuda")
    p.add_argument("--band", type=int, default=1024, help="rows of the reference at a time")
    args = p.parse_args(argv)
    L, device = args.L, torch.device(args.device)
    print(f"[1, {L}, {L}]: {L * L:,} cells ({L * L / 2**31:.3f} x 2^31), bfloat16 + bool, on {device}", flush=True)
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.empty(1, L, L, dtype=torch.bfloat16, device=device)
    for r in range(0, L, 4096):  # in bands: a float32 temporary of the whole map would take 8.6 GB
        x[0, r:r + 4096] = (torch.randn(min(4096, L - r), L, generator=gen, device=device) * 3).to(torch.bfloat16)
    t = torch.rand(1, L, L, generator=gen, device=device) < 0.03
    alpha, gamma = 0.25, 2.0

    start = time.perf_counter()
    xg = x.requires_grad_(True)
    loss = symfocal.sym_focal_loss(xg, t, mode="average", reduction="sum", alpha=alpha, gamma=gamma, validate=False)
    loss.backward()
    grad = xg.grad[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    print(f"fused forward + backward: {time.perf_counter() - start:.2f} s (first call, with set-up)", flush=True)

    total, worst, gmax = 0.0, 0.0, 0.0
    x0, t0 = x.detach()[0], t[0]
    for r in range(0, L, args.band):
        rows = slice(r, min(r + args.band, L))
        band_sum, band_grad = reference_band(x0, t0, rows, alpha, gamma)
        total += band_sum
        worst = max(worst, (grad[rows].double() - band_grad).abs().max().item())
        gmax = max(gmax, band_grad.abs().max().item())
    rel = abs(loss.item() - total) / abs(total)
    print(f"loss {loss.item():.9e}, reference {total:.9e}: relative difference {rel:.2e}")
    print(f"gradient: largest difference {worst:.3e}, {worst / gmax:.2e} of the largest gradient")
    ok = rel < 1e-5 and worst / gmax < 1e-2
    print("large case " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
