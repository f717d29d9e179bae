"""Training and prediction, the same for every loss: one network, one data order per seed, one
budget rule (epochs, with early stopping on the validation F1)."""

from __future__ import annotations

import copy
import math
import random
import statistics
import time
from dataclasses import dataclass

import torch

from .model import PairNet


@dataclass
class Sample:
    features: torch.Tensor | None   # [F, L, L], or None where the study makes its own batches
    target: torch.Tensor     # [L, L] bool
    pairs: list              # the true pairs (i, j), i < j
    extra: object = None     # what a study's own batches are made from (protein coordinates)

    @property
    def length(self) -> int:
        return self.target.shape[-1]


@dataclass(frozen=True)
class Budget:
    """The budget rule every loss trains under: at most `epochs` passes over the training
    samples in batches of `batch_size`, the validation F1 measured `evals_per_epoch` times an
    epoch, stopped after `patience` measurements without a better one, but never before
    `min_epochs` (a run on the base-rate plateau gets that long to leave it, whatever its loss);
    the best step's weights are kept."""
    epochs: float
    batch_size: int
    evals_per_epoch: int = 2
    patience: int = 3
    min_epochs: float = 0

    def min_steps(self, samples: int) -> int:
        return math.ceil(self.min_epochs * samples / self.batch_size)

    def steps(self, samples: int) -> int:
        return max(1, math.ceil(self.epochs * samples / self.batch_size))

    def eval_every(self, samples: int) -> int:
        return max(1, math.ceil(samples / self.batch_size / self.evals_per_epoch))


def collate(samples: list[Sample]):
    """Zero-padded [B, F, L, L] features, [B, L, L] targets and [B] lengths."""
    L = max(s.length for s in samples)
    feats = torch.zeros(len(samples), samples[0].features.shape[0], L, L)
    target = torch.zeros(len(samples), L, L, dtype=torch.bool)
    for b, s in enumerate(samples):
        feats[b, :, : s.length, : s.length] = s.features
        target[b, : s.length, : s.length] = s.target
    return feats, target, torch.tensor([s.length for s in samples])


def batch_order(lengths: list[int], batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """`steps` batches of indices: shuffled by `seed`, and within chunks of 16 batches sorted by
    length so that a batch holds sequences of similar length (little padding). The order depends
    only on the seed, so every loss sees the same batches."""
    rng = random.Random(seed)
    batches: list[list[int]] = []
    while len(batches) < steps:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        chunk = 16 * batch_size
        epoch = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=lambda k: lengths[k])
            epoch += [part[k:k + batch_size] for k in range(0, len(part), batch_size)]
        rng.shuffle(epoch)
        batches += epoch
    return batches[:steps]


def train(samples: list[Sample], loss_fn, *, features: int, budget: Budget, seed: int, lr: float, prior: float,
          validate, make_batch=None, progress=None) -> tuple[PairNet, dict]:
    """A fresh PairNet (initialized by `seed`, output bias at `prior`) trained with Adam on batches
    of `samples` in the order `seed` fixes, under `budget`; `validate(model)` gives the validation
    F1 and the spread of the validation logits. `make_batch(samples, step)` may replace
    `collate` (the protein study draws new noise each step). Returns the weights of the best
    validation step and the run's record: its curves (training loss averaged between
    measurements, validation F1 and logit spread), the step chosen, the steps run and the time."""
    torch.manual_seed(seed)
    model = PairNet(features, prior=prior)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    make_batch = make_batch or (lambda batch, step: collate(batch))
    every = budget.eval_every(len(samples))
    curve = {"step": [], "train_loss": [], "val_f1": [], "val_logit_sd": []}
    best = (-1.0, 0, copy.deepcopy(model.state_dict()))
    window: list[float] = []
    since_best = 0
    start = time.perf_counter()
    step = 0
    for step, idx in enumerate(batch_order([s.length for s in samples], budget.batch_size,
                                           budget.steps(len(samples)), seed), start=1):
        feats, target, lengths = make_batch([samples[k] for k in idx], step)
        loss = loss_fn(model(feats), target, lengths)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        window.append(loss.item())
        if progress is not None:
            progress.update(1)
        if step % every == 0:
            f1, spread = validate(model)
            curve["step"].append(step)
            curve["train_loss"].append(statistics.fmean(window))
            curve["val_f1"].append(f1)
            curve["val_logit_sd"].append(spread)
            window = []
            if f1 > best[0]:
                best, since_best = (f1, step, copy.deepcopy(model.state_dict())), 0
            else:
                since_best += 1
                if since_best >= budget.patience and step >= budget.min_steps(len(samples)):
                    break
    if not curve["step"] or curve["step"][-1] != step:  # the last steps are measured too
        f1, spread = validate(model)
        curve["step"].append(step)
        curve["train_loss"].append(statistics.fmean(window) if window else float("nan"))
        curve["val_f1"].append(f1)
        curve["val_logit_sd"].append(spread)
        if f1 > best[0]:
            best = (f1, step, copy.deepcopy(model.state_dict()))
    if progress is not None:  # the steps early stopping saved
        progress.update(budget.steps(len(samples)) - step)
    model.load_state_dict(best[2])
    return model, {"train_s": time.perf_counter() - start, "best_step": best[1], "best_val_f1": best[0],
                   "steps_run": step, "steps_per_epoch": math.ceil(len(samples) / budget.batch_size),
                   "curve": curve}


@torch.no_grad()
def predict(model: PairNet, samples: list[Sample], batch_size: int = 16, make_batch=None) -> list[torch.Tensor]:
    """Each sample's raw [L, L] logits, in the order given."""
    model.eval()
    make_batch = make_batch or (lambda batch, step: collate(batch))
    out: list[torch.Tensor | None] = [None] * len(samples)
    order = sorted(range(len(samples)), key=lambda k: samples[k].length)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        feats, _, lengths = make_batch([samples[k] for k in idx], -1)
        logits = model(feats)
        for b, k in enumerate(idx):
            n = int(lengths[b])
            out[k] = logits[b, :n, :n].clone()
    model.train()
    return out
