"""Training and prediction, the same for every loss: one network, one data order per seed, one
step budget."""

from __future__ import annotations

import random
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


def train(samples: list[Sample], loss_fn, *, features: int, steps: int, batch_size: int, seed: int, lr: float = 5e-3,
          make_batch=None, progress=None) -> tuple[PairNet, dict]:
    """A fresh PairNet (initialized by `seed`) trained for `steps` Adam steps on batches of
    `samples` in the order `seed` fixes. `make_batch(samples, step)` may replace `collate` (the
    protein study draws new noise each step). Returns the model and timings."""
    torch.manual_seed(seed)
    model = PairNet(features)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    make_batch = make_batch or (lambda batch, step: collate(batch))
    start = time.perf_counter()
    for step, idx in enumerate(batch_order([s.length for s in samples], batch_size, steps, seed)):
        feats, target, lengths = make_batch([samples[k] for k in idx], step)
        loss = loss_fn(model(feats), target, lengths)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress is not None:
            progress.update(1)
    return model, {"train_s": time.perf_counter() - start}


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
