"""Metrics that contact-map prediction reports, on CPU or GPU tensors.

All work on batches of square maps ``[B, L, L]`` of scores (logits or
probabilities: only their order matters for precision, and thresholds apply
to probabilities), count each unordered pair i < j once, and honour
``lengths`` (cells beyond a sample's length do not exist),
``min_separation`` (pairs with j - i below it are ignored) and
``ignore_index`` (pairs whose target is that value, -1 by default as in
ESM's contact targets, are neither contacts nor predictions).
"""

from __future__ import annotations

import math

import torch

__all__ = ["SEPARATION_RANGES", "ESM_RANGES", "top_precision", "contact_precisions", "f1_mcc", "symmetry_error",
           "pairs_of", "base_pair_scores", "shifted_base_pair_scores", "base_pair_f1", "best_threshold"]

# Sequence-separation ranges of contact prediction: j - i in [low, high].
SEPARATION_RANGES = {"short": (6, 11), "medium": (12, 23), "long": (24, None)}
# ESM's ranges (esm's contact evaluation: local 3-5, short 6-11, medium 12-23, long 24 and beyond).
ESM_RANGES = {"local": (3, 5), "short": (6, 11), "medium": (12, 23), "long": (24, None)}


def _pairs(L: int, device, low: int = 1, high: int | None = None):
    """Indices (i, j) of the pairs i < j with low <= j - i <= high."""
    i, j = torch.triu_indices(L, L, offset=max(low, 1), device=device)
    if high is not None:
        keep = (j - i) <= high
        i, j = i[keep], j[keep]
    return i, j


def _lengths_of(scores, lengths):
    B, L = scores.shape[0], scores.shape[-1]
    if lengths is None:
        return [L] * B
    return [int(v) for v in lengths.reshape(-1).tolist()]


def _scored_pairs(scores, target, b, n, low, high, ignore_index):
    """Scores and targets (as contacts) of sample b's pairs in a range, ignored targets left out."""
    i, j = _pairs(n, scores.device, low, high)
    t = target[b, i, j]
    keep = t != ignore_index if ignore_index is not None else torch.ones_like(t, dtype=torch.bool)
    return scores[b, i, j][keep], (t[keep] > 0)


def top_precision(scores: torch.Tensor, target: torch.Tensor, *, lengths: torch.Tensor | None = None,
                  min_separation: int = 0, ranges: dict | None = None, fractions=(1, 2, 5),
                  ignore_index: int | None = -1) -> dict:
    """Precision of the top L/f predicted pairs in each separation range (f in ``fractions``).

    Returns ``{"long P@L/5": value, ...}``, each the mean over samples of
    (true contacts among the ceil(len / f) highest-scored pairs) / ceil(len / f).
    Pairs closer than ``min_separation`` are left out of every range.
    """
    ranges = SEPARATION_RANGES if ranges is None else ranges
    scores, target = scores.detach(), target.detach()
    out = {}
    for name, (low, high) in ranges.items():
        for f in fractions:
            values = []
            for b, n in enumerate(_lengths_of(scores, lengths)):
                k = math.ceil(n / f)
                score, contact = _scored_pairs(scores, target, b, n, max(low, min_separation), high, ignore_index)
                if k == 0 or score.numel() == 0:
                    values.append(0.0)
                    continue
                top = torch.topk(score.float(), min(k, score.numel())).indices
                values.append(float(contact[top].sum()) / k)
            out[f"{name} P@L/{f}" if f != 1 else f"{name} P@L"] = sum(values) / max(len(values), 1)
    return out


def contact_precisions(scores: torch.Tensor, target: torch.Tensor, *, lengths: torch.Tensor | None = None,
                       ranges: dict | None = None, ignore_index: int | None = -1) -> dict:
    """ESM's contact metrics in each separation range (default ``ESM_RANGES``): the precision of the
    top floor(m L / 10) pairs for m = 1..10 (L a sample's length, the counts rounded as ESM's float32
    arange rounds them), reported as P@L/5 (m = 2), P@L/2 (m = 5), P@L (m = 10) and AUC (their mean
    over m), each the mean over samples. Ignored targets are never among the ranked pairs."""
    ranges = ESM_RANGES if ranges is None else ranges
    scores, target = scores.detach(), target.detach()
    tenths = torch.arange(0.1, 1.1, 0.1)  # float32, as ESM's gather indices
    out = {}
    for name, (low, high) in ranges.items():
        rows = []
        for b, n in enumerate(_lengths_of(scores, lengths)):
            counts = (tenths * n).long()
            score, contact = _scored_pairs(scores, target, b, n, low, high, ignore_index)
            top = torch.topk(score.float(), min(n, score.numel())).indices if n else score.new_zeros(0, dtype=torch.long)
            hits = torch.zeros(max(n, 1), dtype=torch.float64)
            hits[:top.numel()] = contact[top].double().cpu()
            cumulative = hits.cumsum(0)
            rows.append(torch.where(counts > 0, cumulative[(counts - 1).clamp(min=0)] / counts.clamp(min=1), 0.0))
        precisions = torch.stack(rows).mean(0) if rows else torch.zeros(10, dtype=torch.float64)
        out.update({f"{name} P@L/5": float(precisions[1]), f"{name} P@L/2": float(precisions[4]),
                    f"{name} P@L": float(precisions[9]), f"{name} AUC": float(precisions.mean())})
    return out


def f1_mcc(probs: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5,
           lengths: torch.Tensor | None = None, min_separation: int = 0, ignore_index: int | None = -1) -> dict:
    """F1 and Matthews correlation of ``probs >= threshold`` over the valid pairs i < j."""
    tp = fp = fn = tn = 0
    probs, target = probs.detach(), target.detach()
    for b, n in enumerate(_lengths_of(probs, lengths)):
        score, true = _scored_pairs(probs, target, b, n, max(min_separation, 1), None, ignore_index)
        pred = score >= threshold
        tp += int((pred & true).sum())
        fp += int((pred & ~true).sum())
        fn += int((~pred & true).sum())
        tn += int((~pred & ~true).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / denom if denom else 0.0
    return {"F1": f1, "MCC": mcc, "TP": tp, "FP": fp, "FN": fn, "TN": tn}


def symmetry_error(probs: torch.Tensor, *, lengths: torch.Tensor | None = None,
                   min_separation: int = 0) -> float:
    """Mean |p_ij - p_ji| over the valid pairs i < j (0 for a symmetric map)."""
    total, count = 0.0, 0
    probs = probs.detach()
    for b, n in enumerate(_lengths_of(probs, lengths)):
        i, j = _pairs(n, probs.device, max(min_separation, 1))
        total += float((probs[b, i, j].double() - probs[b, j, i].double()).abs().sum())
        count += i.numel()
    return total / count if count else 0.0


def pairs_of(probs: torch.Tensor, threshold: float, *, length: int | None = None,
             min_separation: int = 1) -> set[tuple[int, int]]:
    """The predicted base pairs of one ``[L, L]`` map: the cells i < j (j - i >= min_separation,
    both below ``length``) whose probability is at least ``threshold``, read from the upper
    triangle (symmetrize the map first if it is not symmetric)."""
    n = probs.shape[-1] if length is None else int(length)
    i, j = _pairs(n, probs.device, max(min_separation, 1))
    keep = probs.detach()[i, j] >= threshold
    return set(zip(i[keep].tolist(), j[keep].tolist()))


def base_pair_scores(predicted, true, length: int) -> dict:
    """Precision, recall, F1 and MCC of one sequence's predicted pairs against its true pairs,
    as RNA secondary-structure prediction counts them: each unordered pair (i, j) once, i < j,
    of the length * (length - 1) / 2 possible. ``predicted`` and ``true`` are iterables of
    (i, j); a sequence with no true and no predicted pair scores 1 (nothing to find, nothing
    claimed), one with pairs on one side only scores 0."""
    pred = {tuple(sorted(p)) for p in predicted}
    truth = {tuple(sorted(p)) for p in true}
    tp = len(pred & truth)
    fp, fn = len(pred) - tp, len(truth) - tp
    tn = length * (length - 1) // 2 - tp - fp - fn
    if not pred and not truth:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0, "mcc": 1.0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn)
    denom = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = (tp * tn - fp * fn) / denom if denom else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "mcc": mcc}


def _pair_counts(predicted, true, *, shift: bool) -> tuple[int, int, int, int, int]:
    """(TP, FP, FN, predicted, true) of two pair lists. With ``shift``, E2Efold's counting: a true
    pair (i, j) is found when a predicted pair lies at (i, j), (i ± 1, j) or (i, j ± 1); TP the true
    pairs found and FP the predicted pairs less TP."""
    pred = {tuple(sorted(p)) for p in predicted}
    truth = {tuple(sorted(p)) for p in true}
    if shift:
        def found(i, j):
            return any(tuple(sorted(q)) in pred for q in ((i, j), (i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)))
        tp = sum(found(i, j) for i, j in truth)
    else:
        tp = len(pred & truth)
    return tp, len(pred) - tp, len(truth) - tp, len(pred), len(truth)


def shifted_base_pair_scores(predicted, true, length: int) -> dict:
    """Precision, recall and F1 as E2Efold's shifted scores count them (one base of shift allowed:
    see ``_pair_counts``); 1 for a sequence with no true and no predicted pair."""
    tp, fp, fn, n_pred, n_true = _pair_counts(predicted, true, shift=True)
    if not n_pred and not n_true:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    return {"precision": tp / (tp + fp) if tp + fp > 0 else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "f1": 2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn > 0 else 0.0}


def base_pair_f1(predicted: list, true: list, lengths: list[int], *, pooled: bool = False,
                 shift: bool = False) -> float:
    """F1 over sequences: the mean of each sequence's F1 (``pooled=False``, what most RNA papers
    report) or the F1 of the true and false positives and negatives summed over all sequences
    (``pooled=True``): two numbers that differ, and a frequent cause of results that do not
    reproduce. ``shift=True`` counts as E2Efold's shifted scores do."""
    if not predicted or len(predicted) != len(true) or len(true) != len(lengths):
        raise ValueError("base_pair_f1 needs one predicted and one true pair list a sequence, and its length")
    if not pooled:
        score = shifted_base_pair_scores if shift else base_pair_scores
        return sum(score(p, t, n)["f1"] for p, t, n in zip(predicted, true, lengths)) / len(true)
    tp = fp = fn = 0
    for p, t in zip(predicted, true):
        counts = _pair_counts(p, t, shift=shift)
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0


def best_threshold(probs: list[torch.Tensor], pairs: list, *, thresholds=None,
                   min_separation: int = 1) -> tuple[float, float]:
    """The threshold (of ``thresholds``, default 0.02, 0.04, ..., 0.98) at which the mean
    per-sequence base-pair F1 (as :func:`base_pair_scores` counts it) is highest, and that F1:
    how a threshold is chosen on validation data. ``probs`` holds one ``[L, L]`` symmetric map
    per sequence (read from its upper triangle), ``pairs`` its true pairs."""
    thresholds = torch.tensor([k / 50 for k in range(1, 50)] if thresholds is None else list(thresholds),
                              dtype=torch.float64)
    if not probs:
        raise ValueError("best_threshold needs at least one sequence")
    total = torch.zeros_like(thresholds)
    for p, truth in zip(probs, pairs):
        n = p.shape[-1]
        i, j = _pairs(n, "cpu", max(min_separation, 1))
        score = p.detach().double().cpu()[i, j]
        true = torch.zeros(n, n, dtype=torch.bool)
        for a, b in truth:
            true[min(a, b), max(a, b)] = True
        true = true[i, j]
        predicted = score[None, :] >= thresholds[:, None]          # [thresholds, pairs]
        tp = (predicted & true).sum(1).double()
        fp = predicted.sum(1) - tp
        fn = true.sum() - tp
        f1 = torch.where(tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), torch.ones_like(tp))
        total += f1
    best = int(torch.argmax(total))  # the first of equal ones: the lowest threshold
    return float(thresholds[best]), float(total[best]) / len(probs)
