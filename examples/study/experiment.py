"""One seed (or fold) of a study: train each model of the loss list once, then score every
loss entry on the validation-chosen threshold (and half)."""

from __future__ import annotations

from dataclasses import dataclass, field

from symfocal.metrics import best_threshold

from .evaluate import choose, score
from .losses import LOSSES, POS_WEIGHT_GRID, test_map, training_loss, trained_models
from .train import Sample, predict, train


@dataclass
class Data:
    train: list[Sample]
    validation: list[Sample]
    tests: dict[str, list[Sample]]          # test set name -> samples
    min_separation: int
    features: int                           # input channels of the network
    make_batch: object = None               # (samples, step) -> batch; None: plain padding
    extra_scores: object = None             # (logits, samples, how) -> dict of further metrics


@dataclass
class Budget:
    steps: int
    batch_size: int
    progress: object = None                 # a tqdm bar, or None
    pos_weight: float | None = None         # chosen once (first seed / fold), then reused
    pos_weight_validation: dict = field(default_factory=dict)


def _fit(data: Data, budget: Budget, trains: str, seed: int, pos_weight=None):
    loss = training_loss(trains, pos_weight=pos_weight, min_separation=data.min_separation)
    model, timing = train(data.train, loss, features=data.features, steps=budget.steps, batch_size=budget.batch_size, seed=seed,
                          make_batch=data.make_batch, progress=budget.progress)
    return model, timing


def _logits(model, samples, data):
    return predict(model, samples, make_batch=data.make_batch)


def choose_pos_weight(data: Data, budget: Budget, seed: int) -> dict:
    """BCE with each pos_weight of the grid, scored on the validation sequences (mean F1 at the
    best threshold, halves averaged); the best is `budget.pos_weight` from then on. Returns the
    models trained (one per weight) for reuse."""
    models = {}
    val_pairs = [s.pairs for s in data.validation]
    for w in POS_WEIGHT_GRID:
        models[w] = _fit(data, budget, "bce_pwval", seed, pos_weight=w)
        probs = [test_map(x, "average") for x in _logits(models[w][0], data.validation, data)]
        budget.pos_weight_validation[str(w)] = best_threshold(probs, val_pairs,
                                                              min_separation=data.min_separation)[1]
    budget.pos_weight = max(POS_WEIGHT_GRID, key=lambda w: budget.pos_weight_validation[str(w)])
    return models


def run_seed(data: Data, budget: Budget, seed: int, losses=LOSSES) -> dict:
    """{loss name: {"seed", "how", "threshold", "train_s", test set name: metrics}} for one seed."""
    fitted = {}
    if budget.pos_weight is None and any(loss.trains == "bce_pwval" for loss in losses):
        grid = choose_pos_weight(data, budget, seed)
        fitted["bce_pwval"] = grid[budget.pos_weight]
        if 300.0 in grid:
            fitted["bce_pw300"] = grid[300.0]  # the same loss, the same seed: the same model
    if budget.pos_weight == 300.0 and "bce_pwval" not in fitted and "bce_pw300" in trained_models(losses):
        fitted["bce_pwval"] = fitted["bce_pw300"] = _fit(data, budget, "bce_pw300", seed)
    for trains in trained_models(losses):
        if trains not in fitted:
            fitted[trains] = _fit(data, budget, trains, seed, pos_weight=budget.pos_weight)
    val_pairs = [s.pairs for s in data.validation]
    logits = {}
    out = {}
    for loss in losses:
        model, timing = fitted[loss.trains]
        if loss.trains not in logits:
            logits[loss.trains] = {name: _logits(model, samples, data)
                                   for name, samples in {"validation": data.validation, **data.tests}.items()}
        how, threshold = choose(logits[loss.trains]["validation"], val_pairs, loss.test, data.min_separation)
        entry = {"seed": seed, "how": how, "threshold": threshold, "train_s": timing["train_s"]}
        for name, samples in data.tests.items():
            entry[name] = score(logits[loss.trains][name], [s.pairs for s in samples], how, threshold,
                                data.min_separation)
            if data.extra_scores is not None:
                entry[name].update(data.extra_scores(logits[loss.trains][name], samples, how))
        out[loss.name] = entry
    return out


def models_per_seed(losses=LOSSES, choosing_pos_weight: bool = False) -> int:
    """How many trainings a seed costs (for the progress bar)."""
    n = len(trained_models(losses))
    if choosing_pos_weight:
        n += len(POS_WEIGHT_GRID) - 2  # the grid's 300 and its winner are models of the list
    return n
