"""Train a small 2-D CNN to predict contact maps of random 3-D chains, with
several losses on the same data and seeds, and compare them with the metrics
contact prediction reports.

Data: for each sample a chain of n beads (n varies; batches are padded) is
grown as a persistent random walk in 3-D, folded back into a sphere; cells
(i, j) with |x_i - x_j| < 8 are contacts (a few % of the map). The network
sees a noisy, asymmetric view of the distances (independent noise on (i, j)
and (j, i), and dropped entries), so the map is learnable but not trivially.

    python examples/train_contact_map.py               # CPU, about 1-3 minutes
    python examples/train_contact_map.py --device cuda --steps 600

Writes a markdown table and PNG plots to examples/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import symfocal  # noqa: E402
from symfocal import metrics  # noqa: E402

# name -> options of sym_focal_loss (BCE is focal loss with gamma 0 and no alpha)
METHODS = {
    "BCE": dict(mode="none", gamma=0.0, alpha=None),
    "focal": dict(mode="none"),
    "symfocal average": dict(mode="average"),
    "symfocal pair": dict(mode="pair"),
    "symfocal upper": dict(mode="upper"),
    "symfocal average + l1 penalty": dict(mode="average", symmetry_weight=0.05),
}


def random_chain(n: int, gen: torch.Generator) -> torch.Tensor:
    """A 3-D chain: a persistent random walk with 3.8-unit steps, kept inside a sphere whose
    radius (3 n^0.6) gives about 5 % contacts at separations >= 3, as in protein contact maps."""
    pos = torch.zeros(n, 3)
    direction = torch.nn.functional.normalize(torch.randn(3, generator=gen), dim=0)
    radius = 3.0 * n ** 0.6
    for k in range(1, n):
        direction = torch.nn.functional.normalize(direction + 0.9 * torch.randn(3, generator=gen), dim=0)
        step = pos[k - 1] + 3.8 * direction
        if step.norm() > radius:  # turn back towards the centre
            direction = torch.nn.functional.normalize(-pos[k - 1] + 2 * torch.randn(3, generator=gen), dim=0)
            step = pos[k - 1] + 3.8 * direction
        pos[k] = step
    return pos


def make_batch(B: int, L: int, gen: torch.Generator, min_len: int):
    feats = torch.zeros(B, 3, L, L)
    target = torch.zeros(B, L, L, dtype=torch.bool)
    lengths = torch.randint(min_len, L + 1, (B,), generator=gen)
    for b, n in enumerate(lengths.tolist()):
        pos = random_chain(n, gen)
        d = torch.cdist(pos, pos)
        target[b, :n, :n] = d < 8.0
        noisy = d + 3.0 * torch.randn(n, n, generator=gen)          # asymmetric noise
        keep = torch.rand(n, n, generator=gen) > 0.3                 # 30 % of entries missing
        feats[b, 0, :n, :n] = torch.where(keep, noisy / 10, torch.zeros_like(noisy))
        feats[b, 1, :n, :n] = keep.float()
        idx = torch.arange(n)
        feats[b, 2, :n, :n] = ((idx[:, None] - idx[None, :]).abs().float() + 1).log() / 5
    return feats, target, lengths


class ContactNet(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        layers, c = [], 3
        for dilation in (1, 2, 4, 1):
            layers += [nn.Conv2d(c, width, 3, padding=dilation, dilation=dilation), nn.GELU()]
            c = width
        layers.append(nn.Conv2d(width, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x).squeeze(1)


def evaluate(model, data, device, min_sep, how):
    model.eval()
    raws, targets, lens = [], [], []
    with torch.no_grad():
        for feats, target, lengths in data:
            raws.append(model(feats.to(device)).cpu())
            targets.append(target)
            lens.append(lengths)
    raw, y, n = torch.cat(raws), torch.cat(targets), torch.cat(lens)
    # A symmetric prediction: the average of both halves, or the upper triangle
    # mirrored for mode "upper" (which trains nothing below the diagonal).
    s = symfocal.symmetrize(raw, how)
    probs = torch.sigmoid(s)
    out = metrics.top_precision(s, y, lengths=n, min_separation=min_sep, fractions=(1, 5))
    out.update({k: v for k, v in metrics.f1_mcc(probs, y, lengths=n, min_separation=min_sep).items()
                if k in ("F1", "MCC")})
    # Symmetry of the raw output, before symmetrize: what the loss taught the network.
    out["symmetry error (raw)"] = metrics.symmetry_error(torch.sigmoid(raw), lengths=n)
    model.train()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--L", type=int, default=96)
    p.add_argument("--min-separation", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--out", default=str(ROOT / "examples" / "results"))
    args = p.parse_args(argv)
    from tqdm import tqdm

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(args.seed)
    train = [make_batch(args.batch, args.L, gen, args.L // 2) for _ in range(24)]
    test = [make_batch(args.batch, args.L, gen, args.L // 2) for _ in range(6)]
    counts = [metrics.f1_mcc(t.float(), t, lengths=n, min_separation=args.min_separation) for _, t, n in train]
    positives = sum(c["TP"] for c in counts) / sum(c["TP"] + c["TN"] for c in counts)
    print(f"{len(train) * args.batch} training maps, L <= {args.L}, "
          f"{positives:.1%} contacts at separation >= {args.min_separation}")

    rows, curves, models = {}, {}, {}
    for name in args.methods.split(","):
        torch.manual_seed(args.seed)
        model = ContactNet().to(device)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        crit = symfocal.SymFocalLoss(min_separation=args.min_separation, validate=False, **METHODS[name])
        losses, t0 = [], time.perf_counter()
        for step in tqdm(range(args.steps), desc=f"{name:30}", leave=False, mininterval=2):
            feats, target, lengths = train[step % len(train)]
            loss = crit(model(feats.to(device)), target.to(device), lengths=lengths.to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        per_step = (time.perf_counter() - t0) / args.steps
        how = "upper" if METHODS[name]["mode"] == "upper" else "average"
        rows[name] = dict(evaluate(model, test, device, args.min_separation, how), **{"ms / step": per_step * 1e3})
        curves[name] = losses
        models[name] = model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cols = list(next(iter(rows.values())))
    table = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, r in rows.items():
        table.append(f"| {name} | " + " | ".join(f"{r[c]:.3f}" if c != "ms / step" else f"{r[c]:.1f}"
                                               for c in cols) + " |")
    text = "\n".join(table)
    (out / "contact_map_results.md").write_text(
        f"Synthetic 3-D chain contact maps, {args.steps} steps of batch {args.batch}, L <= {args.L}, "
        f"device {device}, seed {args.seed}, min_separation {args.min_separation}.\n\n{text}\n")
    print(text)
    plot(curves, models, test, device, out)
    print(f"results written to {out}")


def plot(curves, models, test, device, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, losses in curves.items():
        smooth = torch.tensor(losses).unfold(0, 10, 1).mean(1) if len(losses) >= 10 else torch.tensor(losses)
        ax.plot(smooth / smooth[0], label=name)
    ax.set(xlabel="step", ylabel="training loss / initial (10-step mean)", yscale="log", title="training curves")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "contact_map_curves.png", dpi=110)
    plt.close(fig)

    feats, target, lengths = test[0]
    n = int(lengths[0])
    names = [k for k in ("focal", "symfocal average") if k in models] or list(models)[:2]
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(4 * (1 + len(names)), 4))
    axes[0].imshow(target[0, :n, :n], cmap="Greys")
    axes[0].set_title("target")
    for ax, name in zip(axes[1:], names):
        with torch.no_grad():
            prob = torch.sigmoid(models[name](feats.to(device))[0, :n, :n]).cpu()
        ax.imshow(prob, cmap="Greys", vmin=0, vmax=1)
        ax.set_title(f"{name} (raw output)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(out / "contact_map_prediction.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
