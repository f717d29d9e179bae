"""The options against formulas written independently of symfocal: torch's own
binary cross-entropy for pos_weight, and label smoothing applied by hand."""

import pytest
import torch
import torch.nn.functional as F

import symfocal
from helpers import grad_of, random_inputs

REDUCTIONS = ["mean", "sum", "none"]


def _bce(mode, w):
    """The loss of each mode written with F.binary_cross_entropy_with_logits(pos_weight=w)."""
    def loss(x, t, reduction):
        t = t.to(x.dtype)
        pw = torch.tensor(w, dtype=x.dtype)
        xt = x.transpose(-1, -2)
        if mode == "average":
            return F.binary_cross_entropy_with_logits((x + xt) / 2, t, pos_weight=pw, reduction=reduction)
        if mode == "pair":
            cells = 0.5 * (F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction="none")
                           + F.binary_cross_entropy_with_logits(xt, t, pos_weight=pw, reduction="none"))
            return {"mean": cells.mean(), "sum": cells.sum(), "none": cells}[reduction]
        return F.binary_cross_entropy_with_logits(x, t, pos_weight=pw, reduction=reduction)
    return loss


@pytest.mark.parametrize("mode", ["none", "average", "pair"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("target", ["bool", "soft"])
def test_pos_weight_is_bce_with_logits_pos_weight(mode, reduction, target):
    """gamma = 0 and alpha = None leave the weighted cross-entropy of BCEWithLogitsLoss."""
    x, t = random_inputs((2, 37, 37), dtype=torch.float64, target=target)
    for w in (0.3, 7.5, 300.0):
        ours = grad_of(symfocal.sym_focal_loss, x, t, mode=mode, gamma=0.0, alpha=None, pos_weight=w,
                       reduction=reduction)
        bce = _bce(mode, w)
        theirs = grad_of(lambda z, y: bce(z, y, reduction), x, t, incoming=ours[2])
        torch.testing.assert_close(ours[0], theirs[0], atol=1e-12, rtol=1e-10)
        torch.testing.assert_close(ours[1], theirs[1], atol=1e-14, rtol=1e-10)


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("target", ["bool", "soft"])
def test_label_smoothing_is_the_loss_of_the_smoothed_target(mode, target):
    """label_smoothing=eps equals the loss on the float target t (1 - eps) + eps / 2 made by hand."""
    x, t = random_inputs((2, 45, 45), dtype=torch.float64, target=target)
    kw = dict(mode=mode, alpha=0.3, gamma=1.5, pos_weight=2.0, min_separation=1, symmetry_weight=0.2)
    for eps in (0.05, 0.4):
        smoothed = t.double() * (1 - eps) + eps / 2
        for reduction in REDUCTIONS:
            ours = grad_of(symfocal.sym_focal_loss, x, t, label_smoothing=eps, reduction=reduction, **kw)
            by_hand = grad_of(symfocal.sym_focal_loss, x, smoothed, reduction=reduction, incoming=ours[2], **kw)
            torch.testing.assert_close(ours[0], by_hand[0], atol=1e-12, rtol=1e-10)
            torch.testing.assert_close(ours[1], by_hand[1], atol=1e-14, rtol=1e-10)
        unsmoothed = symfocal.sym_focal_loss(x, t, **kw)
        assert not torch.allclose(unsmoothed, symfocal.sym_focal_loss(x, t, label_smoothing=eps, **kw))
