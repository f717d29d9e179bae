"""The losses the study compares, and what each does with the prediction at test time.

A trained model's raw logits become one symmetric map by its `test` rule: "average" (the
halves averaged, (x + xᵀ) / 2), "upper" / "lower" (that triangle mirrored), "raw" (the logits
as they are, read from the upper triangle), or "better" (the half that scores better on the
validation data, mirrored). Several entries share one trained model and differ only in that
rule (`trains` names the model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

import symfocal

# The focal loss's own defaults (RetinaNet's), the same for every symfocal strategy, so that
# those differ only in how they use the symmetry.
FOCAL = dict(alpha=0.25, gamma=2.0)
# A penalty weight of the focal loss's own scale on these maps (its mean is about 1e-3).
SYMMETRY_WEIGHT = 0.01
POS_WEIGHT_GRID = (10.0, 30.0, 100.0, 300.0)


@dataclass(frozen=True)
class Loss:
    name: str       # how tables name it
    trains: str     # the trained model it evaluates (entries with one `trains` share a model)
    test: str       # "average", "upper", "raw" or "better"
    what: str       # one line for the tables

    def uses_validation_half(self) -> bool:
        return self.test == "better"


LOSSES = [
    Loss("BCE", "bce", "average", "binary_cross_entropy_with_logits, halves averaged at test"),
    Loss("BCE pos_weight=300", "bce_pw300", "average", "BCE with pos_weight 300 (UFold, E2Efold), averaged at test"),
    Loss("BCE pos_weight=val", "bce_pwval", "average", "BCE with the pos_weight chosen on validation, averaged"),
    Loss("focal none", "none", "raw", "symfocal mode none: no symmetry at all"),
    Loss("focal none, averaged at test", "none", "average", "mode none, halves averaged at test"),
    Loss("focal average", "average", "average", "mode average: focal loss of (x + xᵀ) / 2"),
    Loss("focal pair", "pair", "average", "mode pair: focal(x) + focal(xᵀ), averaged at test"),
    Loss("focal pair, better half", "pair", "better", "mode pair, the half better on validation, mirrored"),
    Loss("focal upper", "upper", "upper", "mode upper: one triangle learned, mirrored at test"),
    Loss("focal average + l1", "average_l1", "average", f"mode average + {SYMMETRY_WEIGHT} x l1 symmetry penalty"),
    Loss("focal average + huber", "average_huber", "average",
         f"mode average + {SYMMETRY_WEIGHT} x huber symmetry penalty"),
]


def masked_bce(logits, target, lengths, pos_weight, min_separation):
    """BCE over the cells a sample has (i, j < length, |i - j| >= min_separation), as the field
    writes it: torch's BCE with a 0/1 weight."""
    cells = symfocal.reference.valid_cells(logits, lengths=lengths, min_separation=min_separation,
                                           mode="none").to(logits.dtype)
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    total = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=cells, pos_weight=pw,
                                               reduction="sum")
    return total / cells.sum().clamp(min=1)


def training_loss(trains: str, *, pos_weight: float | None = None, min_separation: int = 0,
                  fused: bool = True):
    """loss(logits, target, lengths) for a trained model's name; ``fused=False`` gives the same
    symfocal loss written in plain PyTorch (symfocal.reference), for timing."""
    if trains.startswith("bce"):
        weight = {"bce": None, "bce_pw300": 300.0}.get(trains, pos_weight)
        return lambda x, t, n: masked_bce(x, t, n, weight, min_separation)
    mode, _, penalty = trains.partition("_")
    options = dict(FOCAL, mode=mode, min_separation=min_separation)
    if penalty:
        options.update(symmetry_weight=SYMMETRY_WEIGHT, symmetry_penalty=penalty)
    loss = symfocal.sym_focal_loss if fused else symfocal.reference.sym_focal_loss
    return lambda x, t, n: loss(x, t, lengths=n, **options)


def trained_models(losses=LOSSES) -> list[str]:
    return list(dict.fromkeys(loss.trains for loss in losses))


def test_map(logits: torch.Tensor, how: str) -> torch.Tensor:
    """One sequence's [L, L] logits -> the symmetric probability map its loss is scored on."""
    if how == "raw":
        return torch.sigmoid(logits)
    # Mirrored once more after the sigmoid: ATen takes the last cells of a map through its scalar
    # sigmoid and the rest through the vectorized one, whose roundings may differ by an ulp.
    return symfocal.symmetrize(torch.sigmoid(symfocal.symmetrize(logits, how)), "upper")
