"""The losses the study compares, the recipe they train with, and what each does with the
prediction at test time.

A trained model's raw logits become one symmetric map by its `test` rule: "average" (the
halves averaged, (x + xᵀ) / 2), "upper" / "lower" (that triangle mirrored), "raw" (the logits
as they are, read from the upper triangle), or "better" (the half that scores better on the
validation data, mirrored). Several entries share one trained model and differ only in that
rule (`trains` names the model).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F

import symfocal

# The grids the recipe is chosen from on the tuning families (experiment.choose_recipe).
NORMALIZE_GRID = ("cells", "positives")
ALPHA_GRID = (0.25, 0.5, 0.75, 0.9)
GAMMA_GRID = (0.5, 1.0, 2.0)
LR_GRID = (2e-3, 5e-3, 1e-2)
SYMMETRY_WEIGHT_GRID = (0.01, 0.1, 1.0)
# 1 is plain BCE, 300 the weight of UFold and E2Efold.
POS_WEIGHT_GRID = (1.0, 3.0, 10.0, 30.0, 300.0)


@dataclass(frozen=True)
class Recipe:
    """What every loss of a family trains with; the focal settings are the same for every
    symmetry strategy, so that those differ only in how they use the symmetry."""
    alpha: float = 0.25
    gamma: float = 2.0
    normalize: str = "positives"
    focal_lr: float = 5e-3
    bce_lr: float = 5e-3
    # Each pos_weight's own learning rate (trained model name -> lr; `bce_lr` where absent): the
    # weight scales the positives' gradient, so one rate does not suit them all.
    bce_lrs: dict = field(default_factory=dict)
    symmetry_weight: dict = field(default_factory=lambda: {"l1": 0.1, "huber": 0.1})

    def lr(self, trains: str) -> float:
        return self.bce_lrs.get(trains, self.bce_lr) if trains.startswith("bce") else self.focal_lr

    def but(self, **changes) -> "Recipe":
        return replace(self, **changes)

    def key(self, trains: str) -> dict:
        """The settings a trained model depends on (its cache key)."""
        if trains.startswith("bce"):
            return {"lr": self.lr(trains)}
        out = {"alpha": self.alpha, "gamma": self.gamma, "normalize": self.normalize, "lr": self.focal_lr}
        penalty = trains.partition("_")[2]
        if penalty:
            out["symmetry_weight"] = self.symmetry_weight[penalty]
        return out


@dataclass(frozen=True)
class Loss:
    name: str       # how tables name it
    trains: str     # the trained model it evaluates (entries with one `trains` share a model)
    test: str       # "average", "upper", "raw" or "better"
    what: str       # one line for the tables

    def uses_validation_half(self) -> bool:
        return self.test == "better"


# The question's five options: (1) focal of the symmetrized logits (`average`), (2) focal(x) +
# focal(xᵀ) (`pair`), (3) focal(x) + a penalty on x - xᵀ (`none` + penalty), (4) one triangle
# learned and mirrored (`upper`), (5) the pair loss with the better half kept or the halves
# averaged at test; beside them the plain focal loss and the field's BCE baselines.
LOSSES = [
    Loss("BCE", "bce_pw1", "average", "binary_cross_entropy_with_logits, halves averaged at test"),
    Loss("BCE pos_weight=300", "bce_pw300", "average", "BCE with pos_weight 300 (UFold, E2Efold), averaged at test"),
    Loss("BCE pos_weight=val", "bce_pwval", "average", "BCE with the pos_weight chosen on the tuning data, averaged"),
    Loss("focal none", "none", "raw", "symfocal mode none: no symmetry at all"),
    Loss("focal none, averaged at test", "none", "average", "mode none, halves averaged at test"),
    Loss("focal average", "average", "average", "mode average: focal loss of (x + xᵀ) / 2"),
    Loss("focal pair", "pair", "average", "mode pair: focal(x) + focal(xᵀ), averaged at test"),
    Loss("focal pair, better half", "pair", "better", "mode pair, the half better on validation, mirrored"),
    Loss("focal upper", "upper", "upper", "mode upper: one triangle learned, mirrored at test"),
    Loss("focal none + l1", "none_l1", "average", "mode none + λ · l1 symmetry penalty, averaged at test"),
    Loss("focal none + huber", "none_huber", "average", "mode none + λ · huber symmetry penalty, averaged at test"),
]
REFERENCES = ("focal none", "BCE pos_weight=val")  # what the paired differences are taken against
# Mode pair's gradient equals mode none's where the target is symmetric (both tasks' are), and both
# are scored averaged here: their difference is what float summation order alone does to training.
NULL_CONTROLS = (("focal pair", "focal none, averaged at test"),)


def masked_bce(logits, target, lengths, pos_weight, min_separation):
    """BCE over the cells a sample has (i, j < length, |i - j| >= min_separation), as the field
    writes it: torch's BCE with a 0/1 weight."""
    cells = symfocal.reference.valid_cells(logits, lengths=lengths, min_separation=min_separation,
                                           mode="none").to(logits.dtype)
    pw = None if pos_weight is None else torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device)
    total = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=cells, pos_weight=pw,
                                               reduction="sum")
    return total / cells.sum().clamp(min=1)


def pos_weight_of(trains: str) -> float | None:
    """bce_pw10 -> 10.0; bce_pw1 -> None (plain BCE)."""
    weight = float(trains.removeprefix("bce_pw"))
    return None if weight == 1.0 else weight


def training_loss(trains: str, recipe: Recipe = Recipe(), *, min_separation: int = 0, fused: bool = True):
    """loss(logits, target, lengths) for a trained model's name; ``fused=False`` gives the same
    symfocal loss written in plain PyTorch (symfocal.reference), for timing."""
    if trains.startswith("bce"):
        weight = pos_weight_of(trains)
        return lambda x, t, n: masked_bce(x, t, n, weight, min_separation)
    mode, _, penalty = trains.partition("_")
    options = dict(alpha=recipe.alpha, gamma=recipe.gamma, normalize=recipe.normalize, mode=mode,
                   min_separation=min_separation)
    if penalty:
        options.update(symmetry_weight=recipe.symmetry_weight[penalty], symmetry_penalty=penalty)
    loss = symfocal.sym_focal_loss if fused else symfocal.reference.sym_focal_loss
    return lambda x, t, n: loss(x, t, lengths=n, **options)


def trained_models(losses=LOSSES) -> list[str]:
    """The models a seed trains: every BCE weight of the grid (the chosen one is among them)."""
    names = [f"bce_pw{w:g}" for w in POS_WEIGHT_GRID]
    return names + [t for t in dict.fromkeys(loss.trains for loss in losses) if not t.startswith("bce")]


def stopping_rule(trains: str, losses=LOSSES) -> str:
    """The test rule a model's validation F1 (early stopping, the tuning choices) is read with:
    that of its first entry."""
    for loss in losses:
        if loss.trains == trains:
            return "average" if loss.test == "better" else loss.test
    return "average"


def test_map(logits: torch.Tensor, how: str) -> torch.Tensor:
    """One sequence's [L, L] logits -> the symmetric probability map its loss is scored on."""
    if how == "raw":
        return torch.sigmoid(logits)
    # Mirrored once more after the sigmoid: ATen takes the last cells of a map through its scalar
    # sigmoid and the rest through the vectorized one, whose roundings may differ by an ulp.
    return symfocal.symmetrize(torch.sigmoid(symfocal.symmetrize(logits, how)), "upper")
