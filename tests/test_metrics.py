"""symfocal.metrics against small cases computed by hand and against the formulas of ESM and E2Efold."""

import numpy as np
import pytest
import torch

from symfocal import metrics


def _one_map(L, contacts, scores):
    """A [1, L, L] target with the given (i, j) contacts (symmetric), and scores set per pair."""
    y = torch.zeros(1, L, L, dtype=torch.bool)
    for i, j in contacts:
        y[0, i, j] = y[0, j, i] = True
    s = torch.full((1, L, L), -10.0)
    for (i, j), v in scores.items():
        s[0, i, j] = s[0, j, i] = v
    return s, y


def test_top_precision_by_hand():
    # L = 30: long-range pairs have j - i >= 24. Top L/5 = 6 long pairs.
    L = 30
    long_pairs = [(0, 24), (0, 25), (0, 26), (1, 25), (1, 26), (2, 28), (3, 29), (4, 29)]
    contacts = [(0, 24), (1, 25), (2, 28), (5, 12)]          # 3 long-range, 1 short-range (j - i = 7)
    scores = {p: 10.0 - k for k, p in enumerate(long_pairs)}  # ranked in list order
    scores[(5, 12)] = 20.0                                     # short range: j - i = 7
    s, y = _one_map(L, contacts, scores)
    out = metrics.top_precision(s, y)
    # top 6 long: (0,24) yes, (0,25) no, (0,26) no, (1,25) yes, (1,26) no, (2,28) yes -> 3/6
    assert out["long P@L/5"] == pytest.approx(3 / 6)
    # top 15 long: all 8 scored long pairs plus 7 unscored ones; 3 contacts among them -> 3/15
    assert out["long P@L/2"] == pytest.approx(3 / 15)
    # short range: the top pair (5, 12) is a contact; L/5 = 6 picks -> 1/6
    assert out["short P@L/5"] == pytest.approx(1 / 6)
    assert out["medium P@L/5"] == 0.0
    # min_separation 8 leaves (5, 12) out of the short range: no short contact remains.
    assert metrics.top_precision(s, y, min_separation=8)["short P@L/5"] == 0.0


def test_top_precision_honours_lengths():
    s, y = _one_map(30, [(0, 24)], {(0, 24): 5.0})
    # With length 20 no pair reaches separation 24: nothing to find.
    out = metrics.top_precision(s, y, lengths=torch.tensor([20]))
    assert out["long P@L/5"] == 0.0
    out = metrics.top_precision(s, y, lengths=torch.tensor([30]))
    assert out["long P@L/5"] == pytest.approx(1 / 6)


def test_f1_mcc_by_hand():
    L = 4
    # pairs (i<j): (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    y = torch.zeros(1, L, L, dtype=torch.bool)
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        y[0, i, j] = y[0, j, i] = True
    p = torch.zeros(1, L, L)
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        p[0, i, j] = 0.9
    # TP: (0,1), (1,2) = 2; FP: (0,2) = 1; FN: (2,3) = 1; TN: (0,3), (1,3) = 2
    out = metrics.f1_mcc(p, y)
    assert (out["TP"], out["FP"], out["FN"], out["TN"]) == (2, 1, 1, 2)
    assert out["F1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert out["MCC"] == pytest.approx((2 * 2 - 1 * 1) / (3 * 3 * 3 * 3) ** 0.5)
    # min_separation 2 keeps (0,2) (0,3) (1,3): TP 0, FP 1, FN 0, TN 2
    out = metrics.f1_mcc(p, y, min_separation=2)
    assert (out["TP"], out["FP"], out["FN"], out["TN"]) == (0, 1, 0, 2)


def test_symmetry_error_by_hand():
    p = torch.zeros(2, 3, 3)
    p[0, 0, 1], p[0, 1, 0] = 0.8, 0.2   # |d| = 0.6
    p[0, 1, 2], p[0, 2, 1] = 0.5, 0.5   # 0
    p[1, 0, 2] = 0.3                    # sample 1 has length 2: (0, 2) does not exist
    err = metrics.symmetry_error(p, lengths=torch.tensor([3, 2]))
    assert err == pytest.approx(0.6 / (3 + 1))
    assert metrics.symmetry_error(p + p.transpose(-1, -2)) == 0.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_metrics_on_gpu_equal_cpu():
    s = torch.randn(2, 40, 40)
    y = torch.rand(2, 40, 40) < 0.1
    assert metrics.top_precision(s.cuda(), y.cuda()) == metrics.top_precision(s, y)
    assert metrics.f1_mcc(s.sigmoid().cuda(), y.cuda()) == metrics.f1_mcc(s.sigmoid(), y)


# Base-pair metrics (RNA secondary structure): pairs counted once, not cells.

def test_base_pair_scores_by_hand():
    # L = 10: 45 possible pairs. True {(0,9), (1,8), (2,7)}; predicted {(0,9), (1,8), (3,6)}
    # (given once as (9, 0): order within a pair must not matter).
    s = metrics.base_pair_scores([(9, 0), (1, 8), (3, 6)], [(0, 9), (1, 8), (2, 7)], 10)
    tp, fp, fn, tn = 2, 1, 1, 41
    assert s["precision"] == pytest.approx(2 / 3)
    assert s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3)
    mcc = (tp * tn - fp * fn) / ((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)) ** 0.5
    assert s["mcc"] == pytest.approx(mcc)


def test_base_pair_scores_empty_cases():
    assert metrics.base_pair_scores([], [], 12)["f1"] == 1.0
    assert metrics.base_pair_scores([(0, 5)], [], 12) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "mcc": 0.0}
    assert metrics.base_pair_scores([], [(0, 5)], 12)["f1"] == 0.0


def test_pairs_of_reads_the_upper_triangle_above_the_separation():
    p = torch.zeros(8, 8)
    p[0, 7] = 0.9      # kept
    p[7, 1] = 0.9      # lower triangle: not read
    p[2, 4] = 0.9      # separation 2 < 3: left out
    p[3, 7] = 0.5      # exactly at the threshold: kept
    p[1, 6] = 0.49     # below
    assert metrics.pairs_of(p, 0.5, min_separation=3) == {(0, 7), (3, 7)}
    assert metrics.pairs_of(p, 0.5, length=7, min_separation=3) == set()  # (0, 7), (3, 7) lie beyond 7


def test_best_threshold_finds_the_gap():
    # Two sequences; the true pairs score 0.6-0.7, the false ones at most 0.3: any threshold in
    # (0.3, 0.6] gives F1 = 1, and the lowest grid point there is chosen.
    gen = torch.Generator().manual_seed(0)
    probs, pairs = [], []
    for L, truth in ((20, [(0, 19), (1, 18), (5, 12)]), (15, [(2, 13)])):
        p = 0.3 * torch.rand(L, L, generator=gen)
        for i, j in truth:
            p[i, j] = 0.6 + 0.1 * torch.rand((), generator=gen)
        probs.append(torch.triu(p, 1) + torch.triu(p, 1).T)
        pairs.append(truth)
    t, f1 = metrics.best_threshold(probs, pairs, thresholds=[0.1, 0.2, 0.32, 0.5, 0.65, 0.9])
    assert (t, f1) == (0.32, 1.0)
    # Against the slow definition at every grid point.
    for t in (0.1, 0.5, 0.65, 0.9):
        slow = sum(metrics.base_pair_scores(metrics.pairs_of(p, t), truth, p.shape[-1])["f1"]
                   for p, truth in zip(probs, pairs)) / 2
        assert metrics.best_threshold(probs, pairs, thresholds=[t])[1] == pytest.approx(slow)
    with pytest.raises(ValueError, match="at least one"):
        metrics.best_threshold([], [])


@pytest.mark.parametrize("good", ["upper", "lower"])
def test_better_half_picks_the_half_that_holds_the_pairs(good):
    import symfocal

    gen = torch.Generator().manual_seed(1)
    logits, pairs = [], []
    for L in (16, 24, 30):
        truth = [(1, L - 2), (2, L - 3), (4, 10)]
        x = torch.randn(L, L, generator=gen) - 4
        for i, j in truth:
            if good == "upper":
                x[i, j] = 4.0
            else:
                x[j, i] = 4.0
        logits.append(x)
        pairs.append(truth)
    assert symfocal.better_half(logits, pairs) == good


def _esm_compute_precisions(predictions, targets, src_lengths, minsep, maxsep):
    """ESM's compute_precisions (its contact-prediction evaluation), transcribed: invalid pairs
    (negative targets, out of range or length) masked to -inf, the top L of the upper triangle,
    precision at floor(m L / 10) for m = 1..10."""
    batch_size, seqlen, _ = predictions.size()
    seqlen_range = torch.arange(seqlen)
    sep = (seqlen_range.unsqueeze(0) - seqlen_range.unsqueeze(1)).unsqueeze(0)
    valid_mask = (sep >= minsep) & (targets >= 0)
    if maxsep is not None:
        valid_mask &= sep < maxsep
    valid = seqlen_range.unsqueeze(0) < src_lengths.unsqueeze(1)
    valid_mask &= valid.unsqueeze(1) & valid.unsqueeze(2)
    predictions = predictions.masked_fill(~valid_mask, float("-inf"))
    x_ind, y_ind = np.triu_indices(seqlen, minsep)
    indices = predictions[:, x_ind, y_ind].argsort(dim=-1, descending=True)[:, :seqlen]
    topk_targets = targets[:, x_ind, y_ind][torch.arange(batch_size).unsqueeze(1), indices]
    cumulative = topk_targets.type_as(predictions).cumsum(-1)
    gather = (torch.arange(0.1, 1.1, 0.1).unsqueeze(0) * src_lengths.unsqueeze(1)).type(torch.long) - 1
    binned = cumulative.gather(1, gather) / (gather + 1).type_as(cumulative)
    return {"P@L/5": binned[:, 1].mean(), "P@L/2": binned[:, 4].mean(), "P@L": binned[:, 9].mean(),
            "AUC": binned.mean(-1).mean()}


def test_contact_precisions_are_esms():
    g = torch.Generator().manual_seed(11)
    L = 90
    scores = torch.randn(2, L, L, generator=g)
    target = (torch.rand(2, L, L, generator=g) < 0.08).long()
    target = target | target.transpose(-1, -2)
    target[torch.rand(2, L, L, generator=g) < 0.05] = -1  # ESM's "unknown"
    lengths = torch.tensor([90, 71])
    ours = metrics.contact_precisions(scores, target, lengths=lengths)
    for name, (low, high) in metrics.ESM_RANGES.items():
        theirs = _esm_compute_precisions(scores, target, lengths, low, None if high is None else high + 1)
        for key, value in theirs.items():
            assert ours[f"{name} {key}"] == pytest.approx(float(value), abs=1e-6), (name, key)  # ESM: float32
    # An unknown target is not a contact: as a contact the numbers move.
    as_contacts = metrics.contact_precisions(scores, target.abs(), lengths=lengths, ignore_index=None)
    assert as_contacts["local P@L"] > ours["local P@L"]


def test_top_precision_and_f1_leave_ignored_targets_out():
    scores = torch.zeros(1, 30, 30)
    scores[0, 0, 29] = 5.0  # the best-scored pair has an unknown target
    target = torch.zeros(1, 30, 30, dtype=torch.long)
    target[0, 0, 29] = -1
    target[0, 1, 28] = 1
    scores[0, 1, 28] = 4.0
    assert metrics.top_precision(scores, target, fractions=(30,))["long P@L/30"] == 1.0
    assert metrics.top_precision(scores, target.abs(), fractions=(30,), ignore_index=None)["long P@L/30"] == 1.0
    probs = torch.sigmoid(scores)
    counts = metrics.f1_mcc(probs, target, threshold=0.9)
    assert (counts["TP"], counts["FP"]) == (1, 0)
    assert metrics.f1_mcc(probs, target.abs(), threshold=0.9, ignore_index=None)["TP"] == 2


def _e2efold_shifted_f1(pred_pairs, true_pairs, L):
    """E2Efold's evaluate_shifted, transcribed: full symmetric 0/1 maps, the prediction spread by a
    cross-shaped kernel; TP the true cells it reaches, FN the true cells it does not, FP = #pred - TP."""
    def full(pairs):
        m = torch.zeros(L, L)
        for i, j in pairs:
            m[i, j] = m[j, i] = 1
        return m
    pred_a, true_a = full(pred_pairs), full(true_pairs)
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    filtered = torch.nn.functional.conv2d(pred_a[None, None], kernel[None, None], padding=1)[0, 0]
    fn = int(((true_a - filtered) == 1).sum())
    tp = float(torch.sign(filtered * true_a).sum())
    fp = float(pred_a.sum()) - tp
    return 2 * tp / (2 * tp + fp + fn)


def test_shifted_f1_is_e2efolds():
    rng = np.random.default_rng(2)
    L = 60
    for _ in range(20):
        true_pairs = {tuple(sorted(rng.choice(L, 2, replace=False).tolist())) for _ in range(12)}
        # Predictions: some exact, some one base off, some wrong.
        pred_pairs = set()
        for i, j in true_pairs:
            r = rng.random()
            if r < 0.3:
                pred_pairs.add((i, j))
            elif r < 0.6 and 0 < i and j + 1 < L and i - 1 != j + 1:
                pred_pairs.add(tuple(sorted((i - 1 if r < 0.45 else i, j if r < 0.45 else j + 1))))
        pred_pairs |= {tuple(sorted(rng.choice(L, 2, replace=False).tolist())) for _ in range(4)}
        ours = metrics.shifted_base_pair_scores(pred_pairs, true_pairs, L)["f1"]
        assert ours == pytest.approx(_e2efold_shifted_f1(pred_pairs, true_pairs, L), abs=1e-12)
        assert ours >= metrics.base_pair_scores(pred_pairs, true_pairs, L)["f1"]


def test_pooled_and_per_sequence_f1_differ_as_defined():
    # Sequence 1: 1 of 1 found; sequence 2: 1 of 9 found with 1 false positive.
    predicted = [[(0, 9)], [(0, 20), (3, 30)]]
    true = [[(0, 9)], [(0, 20)] + [(k, 40 - k) for k in range(5, 13)]]
    per_sequence = metrics.base_pair_f1(predicted, true, [10, 41])
    pooled = metrics.base_pair_f1(predicted, true, [10, 41], pooled=True)
    assert per_sequence == pytest.approx((1.0 + 2 * 1 / (2 * 1 + 1 + 8)) / 2)
    assert pooled == pytest.approx(2 * 2 / (2 * 2 + 1 + 8))
    assert metrics.base_pair_f1([[(1, 9)]], [[(0, 9)]], [10], shift=True) == 1.0
    with pytest.raises(ValueError, match="one predicted and one true pair list"):
        metrics.base_pair_f1(predicted, true[:1], [10])
