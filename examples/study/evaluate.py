"""From a trained model's raw logits to the field's metrics: the test rule makes one symmetric
map per sequence, the threshold (and for "better", the half) is chosen on the validation
sequences, and each test sequence is scored on its own."""

from __future__ import annotations

import statistics

import torch

import symfocal
from symfocal.metrics import base_pair_scores, best_threshold, pairs_of, symmetry_error

from .losses import test_map

METRICS = ("f1", "mcc", "precision", "recall")


def choose(val_logits: list[torch.Tensor], val_pairs: list, test: str, min_separation: int) -> tuple[str, float]:
    """(the rule that makes the map, the threshold) chosen on the validation sequences."""
    how = symfocal.better_half(val_logits, val_pairs, min_separation=min_separation) if test == "better" else test
    probs = [test_map(x, how) for x in val_logits]
    threshold, _ = best_threshold(probs, val_pairs, min_separation=min_separation)
    return how, threshold


def score(logits: list[torch.Tensor], pairs: list, how: str, threshold: float, min_separation: int) -> dict:
    """Per-sequence metrics averaged over the sequences, the raw output's asymmetry (mean
    |p_ij - p_ji|), and for the figures each sequence's F1 and predicted pairs."""
    per_seq, predicted = [], []
    for x, truth in zip(logits, pairs):
        predicted.append(sorted(pairs_of(test_map(x, how), threshold, min_separation=min_separation)))
        per_seq.append(base_pair_scores(predicted[-1], truth, x.shape[-1]))
    out = {m: statistics.fmean(s[m] for s in per_seq) for m in METRICS}
    out["asymmetry"] = statistics.fmean(symmetry_error(torch.sigmoid(x)[None]) for x in logits)
    out["per_sequence_f1"] = [s["f1"] for s in per_seq]
    out["predicted"] = predicted
    return out


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
