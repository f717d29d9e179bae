"""The protein study: refine a degraded view of a chain's own geometry into its contact map.

The target is real (Cβ-Cβ < 8 Å, a virtual Cβ for glycine); the input is the chain's Cα
distance map computed from coordinates with Gaussian noise (σ = 3 Å, drawn anew at every
training step, fixed per chain at test) with 30 % of the entries hidden, independently in the
two halves: a degraded, asymmetric view of a symmetric truth. Scored as CASP scores contact
prediction: precision of the top L, L/2 and L/5 pairs by separation range.
"""

from __future__ import annotations

import random
import zlib

import torch

from examples.realdata.fetch import DATA
from examples.realdata.pdb import contact_map, read_pdb_file
from symfocal.metrics import top_precision

from .losses import test_map
from .train import Sample

NOISE_ANGSTROM = 3.0
HIDDEN = 0.3
# CASP's contacts start at a separation of 6; closer pairs are not scored (nor trained on).
MIN_SEPARATION = 6
FEATURES = 4


def load(limit: int | None = None) -> list[Sample]:
    """One sample per chain (sorted by file name), `extra` its Cα coordinates."""
    samples = []
    for path in sorted((DATA / "protein").glob("*.pdb.gz"))[:limit]:
        _, ca, cb = read_pdb_file(path)
        target = torch.from_numpy(contact_map(cb))
        samples.append(Sample(None, target, _pairs(target), extra={"ca": torch.from_numpy(ca).float(),
                                                                   "name": path.name.split(".")[0]}))
    return samples


def _pairs(target: torch.Tensor) -> list:
    i, j = torch.triu_indices(*target.shape, offset=MIN_SEPARATION)
    keep = target[i, j]
    return [[a, b] for a, b in zip(i[keep].tolist(), j[keep].tolist())]


def degraded_view(ca: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """[4, L, L]: the noisy distance (0 where hidden) / 10 Å, whether it is shown, a soft contact
    exp(-d² / 2·8²) where shown, and the log separation."""
    L = ca.shape[0]
    noisy = ca + NOISE_ANGSTROM * torch.randn(ca.shape, generator=gen)
    d = torch.cdist(noisy, noisy)
    shown = torch.triu((torch.rand(L, L, generator=gen) >= HIDDEN).float())
    shown = shown + torch.triu(shown, 1).T  # a pair is shown or hidden in both halves
    k = torch.arange(L)
    separation = torch.log1p((k[:, None] - k[None, :]).abs().float()) / 5
    return torch.stack([d / 10 * shown, shown, torch.exp(-d ** 2 / 128) * shown, separation])


def make_batch(samples: list[Sample], step: int):
    """New noise for each chain at each training step (step >= 0); at test (step < 0) one fixed
    view per chain, the same for every model."""
    L = max(s.length for s in samples)
    feats = torch.zeros(len(samples), FEATURES, L, L)
    target = torch.zeros(len(samples), L, L, dtype=torch.bool)
    for b, s in enumerate(samples):
        key = f"{s.extra['name']}:{step if step >= 0 else 'test'}"
        gen = torch.Generator().manual_seed(zlib.crc32(key.encode()))
        feats[b, :, : s.length, : s.length] = degraded_view(s.extra["ca"], gen)
        target[b, : s.length, : s.length] = s.target
    return feats, target, torch.tensor([s.length for s in samples])


def folds(samples: list[Sample], k: int = 5, validation: int = 6, tuning: int = 8, seed: int = 0):
    """(the tuning chains, [(train, validation, test) of each of the k folds]): the tuning chains
    (for the recipe's choices) are set aside first and are in no fold; each fold tests on its
    own chains, holds `validation` of the rest out (thresholds, the better half, early
    stopping) and trains on the others."""
    order = list(range(len(samples)))
    random.Random(seed).shuffle(order)
    tuning_set, order = [samples[i] for i in order[:tuning]], order[tuning:]
    out = []
    for f in range(k):
        test = order[f::k]
        rest = [i for i in order if i not in test]
        out.append(([samples[i] for i in rest[validation:]], [samples[i] for i in rest[:validation]],
                    [samples[i] for i in test]))
    return tuning_set, out


def contact_scores(logits: list[torch.Tensor], samples: list[Sample], how: str) -> dict:
    """Mean over chains of CASP's top-L/f precision per separation range."""
    total: dict[str, float] = {}
    for x, s in zip(logits, samples):
        p = top_precision(test_map(x, how)[None], s.target[None], min_separation=MIN_SEPARATION)
        for key, value in p.items():
            total[key] = total.get(key, 0.0) + value / len(samples)
    return total
