"""What the loss costs inside a training step: the fused symfocal loss against the same loss
written in plain PyTorch (symfocal.reference), timed side by side in one process."""

from __future__ import annotations

import statistics
import time

import torch

from .losses import Recipe, training_loss
from .model import PairNet


def _interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median seconds of each function, run in turn (a, b, b, a, a, b, ...) so that a slow spell of
    a shared machine hits all of them alike and none always runs first."""
    for fn in fns.values():
        fn()  # warm-up
    times = {name: [] for name in fns}
    for k in range(repeats):
        for name, fn in list(fns.items())[:: 1 if k % 2 == 0 else -1]:
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    out = {name: statistics.median(t) for name, t in times.items()}
    out.update({name.removesuffix("_s") + "_quartiles_s": statistics.quantiles(t, n=4)[::2]
                for name, t in times.items()})
    return out


def loss_cost(batch, features: int, *, trains: str = "none_l1", recipe: Recipe = Recipe(), min_separation: int = 0,
              repeats: int = 10) -> dict:
    """Median seconds of a whole training step (forward, loss, backward, Adam) and of the loss
    alone (forward and backward from given logits), fused and reference, interleaved."""
    feats, target, lengths = batch
    model = PairNet(features)
    opt = torch.optim.Adam(model.parameters())
    logits = model(feats).detach()
    out = {"batch": list(feats.shape), "loss": trains, "repeats": repeats}
    fns = {}
    for name, fused in (("fused", True), ("reference", False)):
        loss_fn = training_loss(trains, recipe, min_separation=min_separation, fused=fused)

        def step(loss_fn=loss_fn):
            loss = loss_fn(model(feats), target, lengths)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def loss_only(loss_fn=loss_fn):
            x = logits.clone().requires_grad_(True)
            loss_fn(x, target, lengths).backward()

        fns[f"{name}_step_s"], fns[f"{name}_loss_s"] = step, loss_only
    out.update(_interleaved_medians(fns, repeats))
    for name in ("fused", "reference"):
        out[f"{name}_share"] = out[f"{name}_loss_s"] / out[f"{name}_step_s"]
    out["loss_speedup"] = out["reference_loss_s"] / out["fused_loss_s"]
    out["step_speedup"] = out["reference_step_s"] / out["fused_step_s"]
    return out
