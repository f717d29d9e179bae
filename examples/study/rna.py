"""The RNA study: a sequence's base-pair map from the sequence alone (the task of UFold, E2Efold
and SPOT-RNA), on Rfam seed families, split by family; ViennaRNA's minimum-free-energy
structure as the field's baseline."""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch

from examples.realdata.fetch import DATA
from examples.realdata.stockholm import RnaMap, read_stockholm, rna_maps
from symfocal.metrics import base_pair_scores

from .train import Sample

NUCLEOTIDES = "ACGU"
CANONICAL = {("A", "U"), ("U", "A"), ("G", "C"), ("C", "G"), ("G", "U"), ("U", "G")}
# No hairpin loop is shorter than three nucleotides: a pair needs j - i >= 4.
MIN_SEPARATION = 4
FEATURES = 2 * len(NUCLEOTIDES) + 2


@dataclass
class Split:
    seed: int
    train: list[RnaMap]
    validation: list[RnaMap]
    test: list[RnaMap]
    ood: list[RnaMap]     # rfam_seed_selected: longer RNAs of families not in the split
    tuning: list[RnaMap]  # families set aside once, for the recipe's choices: in no seed's other parts

    def families(self, part: str) -> list[str]:
        return sorted({m.family for m in getattr(self, part)})


# The families the recipe is chosen on are dealt once, by this seed, so that no choice of a
# hyperparameter sees a family that any seed tests on.
TUNING_SEED = 1000
TUNING_FRACTION = 0.1


def read_maps(path: Path) -> list[RnaMap]:
    # Rfam's free-text lines (authors, references) are Latin-1, the alignments ASCII.
    return rna_maps(read_stockholm(path.read_text(encoding="latin-1")))


def _by_family(maps: list[RnaMap]) -> dict[str, list[RnaMap]]:
    by_family: dict[str, list[RnaMap]] = {}
    for m in maps:
        by_family.setdefault(m.family, []).append(m)
    return by_family


def _take(by_family: dict, families, per_family: int, rng: random.Random) -> list[RnaMap]:
    out = []
    for f in sorted(families):
        members = list(by_family[f])
        rng.shuffle(members)
        out += members[:per_family]
    return out


def split_by_family(maps: list[RnaMap], seed: int, per_family: int, fractions=(0.8, 0.1)) -> tuple[list, list, list]:
    """Families shuffled by `seed` and dealt into train / validation / test (80 / 10 / 10 % of
    the families: none in two parts), at most `per_family` sequences of each (drawn by the same
    seed), so that no large family (tRNA has 953) outweighs the others."""
    rng = random.Random(seed)
    by_family = _by_family(maps)
    families = sorted(by_family)
    rng.shuffle(families)
    n_train = round(fractions[0] * len(families))
    n_val = round(fractions[1] * len(families))
    parts = families[:n_train], families[n_train:n_train + n_val], families[n_train + n_val:]
    return tuple(_take(by_family, p, per_family, rng) for p in parts)


def set_aside_tuning(maps: list[RnaMap], per_family: int) -> tuple[list[RnaMap], list[RnaMap]]:
    """(the tuning families' sequences, the other families' maps): the same for every seed."""
    rng = random.Random(TUNING_SEED)
    by_family = _by_family(maps)
    families = sorted(by_family)
    rng.shuffle(families)
    tuning = set(families[:round(TUNING_FRACTION * len(families))])
    return _take(by_family, tuning, per_family, rng), [m for m in maps if m.family not in tuning]


def load(seed: int = 0, per_family: int = 20, ood_per_family: int = 50, limit: dict | None = None,
         train_per_family: int | None = None) -> Split:
    """The split of one seed: the tuning families set aside (the same for every seed), the rest
    dealt by `seed`; `train_per_family` caps the training families further (the study's budget);
    the out-of-distribution set is the same for every seed. `limit` (quick runs) keeps the first
    n families of each part."""
    maps = read_maps(DATA / "rna" / "rfam_seed_many_short.stk")
    tuning, rest = set_aside_tuning(maps, per_family)
    train, val, test = split_by_family(rest, seed, per_family)
    if train_per_family is not None:
        rng = random.Random(seed)
        train = _take(_by_family(train), {m.family for m in train}, train_per_family, rng)
    ood_all = read_maps(DATA / "rna" / "rfam_seed_selected.stk")
    ood = split_by_family(ood_all, 0, ood_per_family, fractions=(0.0, 0.0))[2]
    split = Split(seed, train, val, test, ood, tuning)
    for part, n in (limit or {}).items():
        keep = set(split.families(part)[:n])
        setattr(split, part, [m for m in getattr(split, part) if m.family in keep])
    return split


def features(sequence: str) -> torch.Tensor:
    """[10, L, L] pair features from the sequence alone, as UFold builds them: the one-hot
    nucleotides of i and of j (outer concatenation, 8 channels), whether (i, j) could pair
    (Watson-Crick or wobble), and the separation |i - j| (log-scaled), which a convolution
    cannot see on its own."""
    L = len(sequence)
    onehot = torch.zeros(len(NUCLEOTIDES), L)
    for k, ch in enumerate(sequence):
        if ch in NUCLEOTIDES:
            onehot[NUCLEOTIDES.index(ch), k] = 1
    rows = onehot[:, :, None].expand(-1, L, L)
    cols = onehot[:, None, :].expand(-1, L, L)
    canonical = torch.zeros(L, L)
    for a, b in CANONICAL:
        ia, ib = onehot[NUCLEOTIDES.index(a)], onehot[NUCLEOTIDES.index(b)]
        canonical += ia[:, None] * ib[None, :]
    k = torch.arange(L)
    separation = torch.log1p((k[:, None] - k[None, :]).abs().float()) / 5
    return torch.cat([rows, cols, canonical[None], separation[None]])


def sample(m: RnaMap) -> Sample:
    L = len(m.sequence)
    target = torch.zeros(L, L, dtype=torch.bool)
    for i, j in m.pairs:
        target[i, j] = target[j, i] = True
    return Sample(features(m.sequence), target, [list(p) for p in m.pairs])


def dot_bracket_pairs(structure: str) -> list[tuple[int, int]]:
    stack, pairs = [], []
    for k, ch in enumerate(structure):
        if ch == "(":
            stack.append(k)
        elif ch == ")":
            pairs.append((stack.pop(), k))
    return sorted(pairs)


def rnafold(maps: list[RnaMap]) -> dict:
    """ViennaRNA's minimum-free-energy structures (RNA.fold, default parameters) of the
    sequences, scored as the learned models are; also each sequence's predicted pairs."""
    import RNA  # the viennarna wheel (requirements-study.txt)

    per_seq, predicted = [], []
    for m in maps:
        structure, _ = RNA.fold(m.sequence)
        pairs = dot_bracket_pairs(structure)
        predicted.append(pairs)
        per_seq.append(base_pair_scores(pairs, m.pairs, len(m.sequence)))
    out = {k: statistics.fmean(s[k] for s in per_seq) for k in ("f1", "mcc", "precision", "recall")}
    out["per_sequence_f1"] = [s["f1"] for s in per_seq]
    out["pairs"] = predicted
    return out


def describe(m: RnaMap) -> dict:
    return {"family": m.family, "name": m.name, "sequence": m.sequence, "pairs": [list(p) for p in m.pairs]}
