"""A study's runs: the recipe chosen on the tuning data, then every model of the loss list
trained on every seed, each run cached on disk (a stopped study continues where it stopped),
and every loss entry scored on the validation-chosen threshold (and half)."""

from __future__ import annotations

import hashlib
import json
import random
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .evaluate import choose, score, validation_f1
from .losses import (ALPHA_GRID, GAMMA_GRID, LOSSES, LR_GRID, NORMALIZE_GRID, NULL_CONTROLS, POS_WEIGHT_GRID,
                     REFERENCES, SYMMETRY_WEIGHT_GRID, Recipe, stopping_rule, trained_models, training_loss)
from .train import Budget, Sample, predict, train


@dataclass
class Seed:
    seed: int
    train: list[Sample]
    validation: list[Sample]
    tests: dict[str, list[Sample]]          # test set name -> samples
    clusters: list[str]                     # the test set's sequences' families (the bootstrap's units)


@dataclass
class Task:
    name: str
    seeds: list[Seed]
    tuning: list[Sample]                    # what the recipe is chosen on; in no seed's parts
    min_separation: int
    features: int                           # input channels of the network
    prior: float                            # the training maps' density: the output bias's start
    budget: Budget
    make_batch: object = None               # (samples, step) -> batch; None: plain padding
    extra_scores: object = None             # (logits, samples, how) -> dict of further metrics
    one_partner: bool = False               # also score every entry with one partner per base
    tuning_budget: Budget | None = None     # the recipe's grid runs (None: `budget`)

    def budget_of(self, phase: str) -> Budget:
        return self.tuning_budget if phase == "tuning" and self.tuning_budget is not None else self.budget


@dataclass
class Runs:
    """Each run's record in `folder`, named by what the run depends on."""
    folder: Path
    progress: object = None
    recompute: bool = False                 # train again even where a record is kept
    made: int = 0
    reused: int = 0
    train_s: float = 0.0                    # every used run's training time, read back or not: a fresh study's cost


    def get(self, key: dict, compute) -> dict:
        path = self.folder / (hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16] + ".json")
        try:
            if not self.recompute:
                record = json.loads(path.read_text())
                self.reused += 1
                self.train_s += record.get("train_s", 0.0)
                return record
        except (OSError, ValueError):  # not run yet, or cut off while it was written
            pass
        record = compute()
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps({"key": key, **record}) + "\n")
        partial.replace(path)  # whole or not at all: a stopped study never reads half a record
        self.made += 1
        self.train_s += record.get("train_s", 0.0)
        return record


def _logits(model, samples, task):
    return predict(model, samples, make_batch=task.make_batch)


def _fit(task: Task, phase: str, trains: str, recipe: Recipe, train_on: list[Sample], stop_on: list[Sample],
         seed: int, progress=None):
    how = stopping_rule(trains)
    pairs = [s.pairs for s in stop_on]

    def validate(model):
        logits = _logits(model, stop_on, task)
        spread = float(torch.cat([x.flatten() for x in logits]).std(correction=0))
        return validation_f1(logits, pairs, how, task.min_separation), spread

    loss = training_loss(trains, recipe, min_separation=task.min_separation)
    return train(train_on, loss, features=task.features, budget=task.budget_of(phase), seed=seed,
                 lr=recipe.lr(trains),
                 prior=task.prior, validate=validate, make_batch=task.make_batch, progress=progress)


# Raised whenever what a run computes changes in a way its key does not show (training, scoring).
RECORD_VERSION = 2


def _key(task: Task, phase: str, trains: str, recipe: Recipe, seed: int) -> dict:
    return {"version": RECORD_VERSION, "task": task.name, "phase": phase, "trains": trains, "seed": seed, "recipe": recipe.key(trains),
            "budget": asdict(task.budget_of(phase)), "sizes": [len(s.train) for s in task.seeds]}


def tuning_run(task: Task, runs: Runs, trains: str, recipe: Recipe) -> dict:
    """One model trained on the first seed's training data, stopped and scored on the tuning data."""
    first = task.seeds[0]

    def compute():
        _, info = _fit(task, "tuning", trains, recipe, first.train, task.tuning, first.seed, runs.progress)
        return {"val_f1": info["best_val_f1"], **info}

    return runs.get(_key(task, "tuning", trains, recipe, first.seed), compute)


def choose_recipe(task: Task, runs: Runs, grids: dict) -> tuple[Recipe, dict]:
    """The focal settings (normalize x alpha x gamma, mode none), then the focal learning rate
    and each BCE pos_weight's, then each penalty's weight, each the best tuning F1 of its grid (the first of equal
    ones). Returns the recipe and every grid's scores."""
    report = {}
    base = Recipe(focal_lr=5e-3, bce_lr=5e-3)
    focal, curves = {}, {}
    for normalize in grids["normalize"]:
        for alpha in grids["alpha"]:
            for gamma in grids["gamma"]:
                run = tuning_run(task, runs, "none", base.but(alpha=alpha, gamma=gamma, normalize=normalize))
                focal[(normalize, alpha, gamma)] = run["val_f1"]
                curves[(normalize, alpha, gamma)] = run["curve"]  # how the settings that stall, stall
    normalize, alpha, gamma = max(focal, key=focal.get)
    report["focal"] = [{"normalize": n, "alpha": a, "gamma": g, "val_f1": f, "curve": curves[(n, a, g)]}
                       for (n, a, g), f in focal.items()]
    recipe = base.but(alpha=alpha, gamma=gamma, normalize=normalize)
    lrs = {lr: tuning_run(task, runs, "none", recipe.but(focal_lr=lr))["val_f1"] for lr in grids["lr"]}
    report["focal_lr"] = {f"{lr:g}": f for lr, f in lrs.items()}
    recipe = recipe.but(focal_lr=max(lrs, key=lrs.get))
    report["bce_lr"], chosen_lrs = {}, {}
    for weight in POS_WEIGHT_GRID:
        trains = f"bce_pw{weight:g}"
        lrs = {lr: tuning_run(task, runs, trains, recipe.but(bce_lr=lr))["val_f1"] for lr in grids["lr"]}
        report["bce_lr"][f"{weight:g}"] = {f"{lr:g}": f for lr, f in lrs.items()}
        chosen_lrs[trains] = max(lrs, key=lrs.get)
    recipe = recipe.but(bce_lr=chosen_lrs["bce_pw1"], bce_lrs=chosen_lrs)
    weights = dict(recipe.symmetry_weight)
    for penalty in ("l1", "huber"):
        scores = {w: tuning_run(task, runs, f"none_{penalty}", recipe.but(symmetry_weight={**weights, penalty: w}))
                  ["val_f1"] for w in grids["symmetry_weight"]}
        report[f"{penalty}_weight"] = {f"{w:g}": f for w, f in scores.items()}
        weights[penalty] = max(scores, key=scores.get)
    recipe = recipe.but(symmetry_weight=weights)
    report["chosen"] = asdict(recipe)
    return recipe, report


def _entry_rules(trains: str, task: Task) -> list[tuple[str, bool]]:
    rules = {loss.test for loss in LOSSES if loss.trains == trains or (trains.startswith("bce") and
                                                                       loss.trains.startswith("bce"))}
    return [(rule, partner) for rule in sorted(rules) for partner in ((False, True) if task.one_partner else (False,))]


def main_run(task: Task, runs: Runs, trains: str, recipe: Recipe, seed: Seed) -> dict:
    """One model on one seed: trained, stopped on the seed's validation data, scored on its tests
    by every rule its entries use, and its F1 on the tuning data (the pos_weight choice)."""

    def compute():
        model, info = _fit(task, "main", trains, recipe, seed.train, seed.validation, seed.seed, runs.progress)
        logits = {name: _logits(model, samples, task) for name, samples in
                  {"validation": seed.validation, "tuning": task.tuning, **seed.tests}.items()}
        val_pairs = [s.pairs for s in seed.validation]
        scored = {}
        for rule, partner in _entry_rules(trains, task):
            how, threshold = choose(logits["validation"], val_pairs, rule, task.min_separation, partner)
            entry = {"how": how, "threshold": threshold}
            for name, samples in seed.tests.items():
                entry[name] = score(logits[name], [s.pairs for s in samples], how, threshold, task.min_separation,
                                    partner)
                if task.extra_scores is not None:
                    entry[name].update(task.extra_scores(logits[name], samples, how))
            scored[f"{rule}{' partner' if partner else ''}"] = entry
        tuning_f1 = validation_f1(logits["tuning"], [s.pairs for s in task.tuning], stopping_rule(trains),
                                  task.min_separation)
        return {"tuning_f1": tuning_f1, "scored": scored, **info}

    return runs.get(_key(task, "main", trains, recipe, seed.seed), compute)


def run_task(task: Task, runs: Runs, grids: dict) -> dict:
    """The recipe, every model on every seed, the pos_weight chosen over seeds on the tuning
    data, and per seed each entry's record (entries of one model share it)."""
    recipe, recipe_report = choose_recipe(task, runs, grids)
    records = {(t, s.seed): main_run(task, runs, t, recipe, s) for s in task.seeds for t in trained_models()}
    by_weight = {w: statistics.fmean(records[(f"bce_pw{w:g}", s.seed)]["tuning_f1"] for s in task.seeds)
                 for w in POS_WEIGHT_GRID}
    chosen = max(by_weight, key=by_weight.get)
    per_seed = []
    for s in task.seeds:
        out = {}
        for loss in LOSSES:
            model = f"bce_pw{chosen:g}" if loss.trains == "bce_pwval" else loss.trains
            record = records[(model, s.seed)]
            for partner in (False, True) if task.one_partner else (False,):
                entry = dict(record["scored"][f"{loss.test}{' partner' if partner else ''}"])
                entry.update(seed=s.seed, model=model, train_s=record["train_s"], best_step=record["best_step"],
                             steps_run=record["steps_run"], steps_per_epoch=record["steps_per_epoch"])
                out[loss.name + (", one partner per base" if partner else "")] = entry
        per_seed.append(out)
    curves = {f"{t} seed {s.seed}": {k: records[(t, s.seed)][k] for k in ("curve", "best_step", "steps_run")}
              for s in task.seeds for t in trained_models()}
    return {"recipe": recipe, "recipe_grids": recipe_report, "per_seed": per_seed, "curves": curves,
            "pos_weight_validation": {"f1_by_weight": {f"{w:g}": f for w, f in by_weight.items()},
                                      "chosen": chosen, "on": "tuning data, mean over seeds"}}


def paired_differences(task: Task, per_seed: list[dict], names: list[str], test: str = "test",
                       resamples: int = 2000) -> list[dict]:
    """Each entry's per-sequence F1 minus a reference's (same seed, same sequences), averaged
    over the sequences and then the seeds, with a 95 % interval from a two-level bootstrap:
    seeds resampled, then within each the test families (clusters), whole. Last, the null
    controls: two entries that train the same gradient, whose difference is training noise."""
    rng = random.Random(0)
    suffix = ", one partner per base"
    # A post-processed entry is compared with the post-processed reference.
    pairs = [(name, reference + (suffix if name.endswith(suffix) else "")) for reference in REFERENCES for name in names]
    pairs += [(a + s, b + s) for a, b in NULL_CONTROLS for s in ("", suffix) if a + s in names and b + s in names]
    return [_paired_difference(task, per_seed, name, reference, test, resamples, rng)
            for name, reference in pairs if name != reference]


def _paired_difference(task, per_seed, name, reference, test, resamples, rng) -> dict:
    diffs = []
    for s, run in zip(task.seeds, per_seed):
        d = [a - b for a, b in zip(run[name][test]["per_sequence_f1"], run[reference][test]["per_sequence_f1"])]
        groups: dict[str, list[float]] = {}
        for cluster, v in zip(s.clusters, d):
            groups.setdefault(cluster, []).append(v)
        diffs.append(list(groups.values()))
    per_seed_mean = [statistics.fmean(v for g in seed for v in g) for seed in diffs]
    boot = []
    for _ in range(resamples):
        means = []
        for seed in (diffs[rng.randrange(len(diffs))] for _ in diffs):
            picked = [seed[rng.randrange(len(seed))] for _ in seed]
            means.append(statistics.fmean(v for g in picked for v in g))
        boot.append(statistics.fmean(means))
    boot.sort()
    return {"name": name, "minus": reference, "mean": statistics.fmean(per_seed_mean),
            "ci95": [boot[int(0.025 * resamples)], boot[int(0.975 * resamples) - 1]], "per_seed": per_seed_mean}


@dataclass
class Grids:
    normalize: tuple = NORMALIZE_GRID
    alpha: tuple = ALPHA_GRID
    gamma: tuple = GAMMA_GRID
    lr: tuple = LR_GRID
    symmetry_weight: tuple = SYMMETRY_WEIGHT_GRID
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "extra"}
