"""From a trained model's raw logits to the field's metrics: the test rule makes one symmetric
map per sequence, optionally kept to one partner per base, the threshold (and for "better",
the half) is chosen on the validation sequences, and each test sequence is scored on its own."""

from __future__ import annotations

import statistics

import torch

import symfocal
from symfocal.metrics import base_pair_scores, best_threshold, pairs_of, symmetry_error

from .losses import test_map

METRICS = ("f1", "mcc", "precision", "recall")


def one_partner(probs: torch.Tensor, min_separation: int = 1) -> torch.Tensor:
    """The map with every pair a base cannot keep set to 0: pairs taken greedily from the most
    probable down, each base in at most one (the constraint UFold and E2Efold impose). Greedy
    from the top keeps, at any threshold, exactly the kept pairs above it, so one filtered map
    serves every threshold."""
    n = probs.shape[-1]
    i, j = torch.triu_indices(n, n, offset=max(min_separation, 1))
    p = probs.detach()[i, j]
    order = torch.argsort(p, descending=True, stable=True)
    used = [False] * n
    keep = torch.zeros(len(p), dtype=torch.bool)
    for k, a, b in zip(order.tolist(), i[order].tolist(), j[order].tolist()):
        if p[k] <= 0:
            break
        if not used[a] and not used[b]:
            used[a] = used[b] = True
            keep[k] = True
    out = torch.zeros_like(probs)
    out[i[keep], j[keep]] = probs[i[keep], j[keep]]
    return out + out.T


def maps(logits: list[torch.Tensor], how: str, partner: bool, min_separation: int) -> list[torch.Tensor]:
    probs = [test_map(x, how) for x in logits]
    return [one_partner(p, min_separation) for p in probs] if partner else probs


def validation_f1(val_logits: list[torch.Tensor], val_pairs: list, how: str, min_separation: int) -> float:
    """The mean per-sequence F1 at the best threshold: early stopping's and the recipe's measure."""
    return best_threshold(maps(val_logits, how, False, min_separation), val_pairs, min_separation=min_separation)[1]


def choose(val_logits: list[torch.Tensor], val_pairs: list, test: str, min_separation: int,
           partner: bool = False) -> tuple[str, float]:
    """(the rule that makes the map, the threshold) chosen on the validation sequences."""
    how = symfocal.better_half(val_logits, val_pairs, min_separation=min_separation) if test == "better" else test
    threshold, _ = best_threshold(maps(val_logits, how, partner, min_separation), val_pairs,
                                  min_separation=min_separation)
    return how, threshold


def score(logits: list[torch.Tensor], pairs: list, how: str, threshold: float, min_separation: int,
          partner: bool = False) -> dict:
    """Per-sequence metrics averaged over the sequences, the raw output's asymmetry (mean
    |p_ij - p_ji|), and each sequence's F1 (the paired differences) and predicted pairs."""
    per_seq, predicted = [], []
    for p, truth in zip(maps(logits, how, partner, min_separation), pairs):
        predicted.append(sorted(pairs_of(p, threshold, min_separation=min_separation)))
        per_seq.append(base_pair_scores(predicted[-1], truth, p.shape[-1]))
    out = {m: statistics.fmean(s[m] for s in per_seq) for m in METRICS}
    out["asymmetry"] = statistics.fmean(symmetry_error(torch.sigmoid(x)[None]) for x in logits)
    out["per_sequence_f1"] = [round(s["f1"], 4) for s in per_seq]
    out["predicted"] = predicted
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
