"""make study: which use of the symmetry helps, on real RNA base-pair maps and real protein
contact maps. The recipe chosen on tuning data set aside once, then every loss of
examples/study/losses.py trained on every seed with the same network, data order and budget
rule; results (markdown, plots, JSON) in examples/results/. Each run's record is kept in
examples/results/study-runs/ and committed with the results: a stopped study continues where it
stopped, on any machine, and the tables can be re-derived from the records without training
(`--retrain` ignores them).

    python -m examples.study            # both studies, within 120 minutes on 2 cores
    python -m examples.study --quick    # the same pipeline on a small subset, within 3 minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm import tqdm

from examples.realdata.fetch import PROTEIN, RNA, fetch

from . import protein, report, rna
from .experiment import Grids, Runs, Seed, Task, paired_differences, run_task
from .losses import POS_WEIGHT_GRID, trained_models
from .timing import loss_cost
from .train import Budget, collate

ROOT = Path(__file__).resolve().parents[2]

FULL = dict(seeds=5, per_family=10, train_per_family=5, ood_per_family=25, protein_chains=None, limit=None,
            rna_budget=Budget(epochs=4, batch_size=8, evals_per_epoch=4, patience=4, min_epochs=2),
            # The recipe's grid runs train half as long (what keeps the study within 120 minutes):
            # the recipe chosen is one that trains within two epochs.
            rna_tuning_budget=Budget(epochs=2, batch_size=8, evals_per_epoch=4, patience=4, min_epochs=2),
            # 30 epochs left most protein runs still improving at the end: the main runs get 60,
            # evaluated every 2 epochs and stopped after 10 without a better validation F1.
            protein_budget=Budget(epochs=60, batch_size=4, evals_per_epoch=0.5, patience=5, min_epochs=20),
            protein_tuning_budget=Budget(epochs=30, batch_size=4, evals_per_epoch=0.25, patience=4, min_epochs=12),
            grids=Grids())
QUICK = dict(seeds=3, per_family=2, train_per_family=2, ood_per_family=2, protein_chains=24,
             limit={"train": 12, "validation": 4, "test": 4, "tuning": 4},
             rna_budget=Budget(epochs=1, batch_size=4, evals_per_epoch=2, patience=2),
             rna_tuning_budget=Budget(epochs=1, batch_size=4, evals_per_epoch=2, patience=2),
             protein_budget=Budget(epochs=1, batch_size=4, evals_per_epoch=1, patience=2),
             protein_tuning_budget=Budget(epochs=1, batch_size=4, evals_per_epoch=1, patience=2),
             grids=Grids(normalize=("cells", "positives"), alpha=(0.5,), gamma=(1.0,), lr=(5e-3,),
                         symmetry_weight=(0.1,)))


def _density(samples, min_separation: int) -> float:
    cells = positives = 0
    for s in samples:
        n = s.length
        k = torch.arange(n)
        keep = (k[:, None] - k[None, :]).abs() >= min_separation
        cells += int(keep.sum())
        positives += int(s.target[keep].sum())
    return max(positives, 1) / max(cells, 1)


def _progress(task: Task, grids: Grids, desc: str):
    g = grids.as_dict()
    tuning = (len(g["normalize"]) * len(g["alpha"]) * len(g["gamma"]) + (1 + len(POS_WEIGHT_GRID)) * len(g["lr"])
              + 2 * len(g["symmetry_weight"]))
    steps = (tuning * task.budget_of("tuning").steps(len(task.seeds[0].train))
             + len(trained_models()) * sum(task.budget.steps(len(s.train)) for s in task.seeds))
    return tqdm(total=steps, desc=desc, unit="step")


def rna_task(cfg: dict) -> tuple[Task, list]:
    splits = [rna.load(seed, per_family=cfg["per_family"], ood_per_family=cfg["ood_per_family"], limit=cfg["limit"],
                       train_per_family=cfg["train_per_family"]) for seed in range(cfg["seeds"])]
    seeds = [Seed(sp.seed, [rna.sample(m) for m in sp.train], [rna.sample(m) for m in sp.validation],
                  {"test": [rna.sample(m) for m in sp.test], "ood": [rna.sample(m) for m in sp.ood]},
                  [m.family for m in sp.test]) for sp in splits]
    tuning = [rna.sample(m) for m in splits[0].tuning]
    task = Task("rna", seeds, tuning, rna.MIN_SEPARATION, rna.FEATURES,
                _density(seeds[0].train, rna.MIN_SEPARATION), cfg["rna_budget"], one_partner=True,
                tuning_budget=cfg["rna_tuning_budget"])
    return task, splits


def rna_study(cfg: dict, out: Path, runs: Runs) -> dict:
    task, splits = rna_task(cfg)
    runs.progress = _progress(task, cfg["grids"], "RNA study (training steps)")
    result = run_task(task, runs, cfg["grids"].as_dict())
    runs.progress.close()
    print("RNA study: ViennaRNA on the test sequences", flush=True)
    baselines = [{name: rna.rnafold(maps) for name, maps in (("test", sp.test), ("ood", sp.ood))} for sp in splits]
    print("RNA study: timing the loss (fused against symfocal.reference)", flush=True)
    timing = loss_cost(collate(task.seeds[0].train[: task.budget.batch_size]), rna.FEATURES,
                       recipe=result["recipe"], min_separation=rna.MIN_SEPARATION, repeats=3 if cfg["limit"] else 30)
    names = list(result["per_seed"][0])
    tests = {}
    for sp in splits:
        for m in sp.test:
            tests.setdefault((m.family, m.name), {**rna.describe(m), "seeds": []})["seeds"].append(sp.seed)
    first = splits[0]
    results = {
        "split": {"seed": first.seed, "by": "Rfam family", "per_family_at_most": cfg["per_family"],
                  "train_per_family_at_most": cfg["train_per_family"],
                  "train_families": first.families("train"), "validation_families": first.families("validation"),
                  "test_families": first.families("test"), "ood_families": first.families("ood"),
                  "tuning_families": first.families("tuning"),
                  "sizes": {p: len(getattr(first, p)) for p in ("train", "validation", "test", "ood", "tuning")}},
        "splits": [{"seed": sp.seed, "train_families": sp.families("train"),
                    "validation_families": sp.families("validation"), "test_families": sp.families("test"),
                    "test": [[m.family, m.name] for m in sp.test]} for sp in splits],
        "config": _config(cfg, task, rna.MIN_SEPARATION, "UFold-style: one-hot outer concatenation, canonical-pair "
                          "indicator, log separation"),
        "recipe": report.recipe_dict(result),
        "test": list(tests.values()),
        "ood_test": [rna.describe(m) for m in first.ood],
        "rnafold": _rnafold(baselines),
        "pos_weight_validation": result["pos_weight_validation"],
        "results": report.collect(result["per_seed"], ("test", "ood"), names),
        "paired_differences": {t: paired_differences(task, result["per_seed"], names, t) for t in ("test",)},
        "curves": result["curves"],
        "timing": timing,
    }
    report.write_rna(results, result["per_seed"], baselines[0], first, out)
    return results


def _rnafold(baselines: list[dict]) -> dict:
    import RNA

    mean = lambda part, k: sum(b[part][k] for b in baselines) / len(baselines)  # noqa: E731
    return {**{k: mean("test", k) for k in ("f1", "mcc", "precision", "recall")},
            "ood": {k: baselines[0]["ood"][k] for k in ("f1", "mcc", "precision", "recall")},
            "per_seed": [{"f1": b["test"]["f1"], "per_sequence_f1": b["test"]["per_sequence_f1"]} for b in baselines],
            "version": getattr(RNA, "__version__", "unknown")}


def _config(cfg: dict, task: Task, min_separation: int, features: str) -> dict:
    return {"seeds": cfg["seeds"], "budget": asdict(task.budget), "tuning_budget": asdict(task.budget_of("tuning")),
            "min_separation": min_separation, "prior": task.prior, "features": features,
            "network": "PairNet, 16 channels, 4 dilated residual blocks (1, 2, 4, 8), output bias at the prior",
            "optimizer": "Adam, learning rate per loss family chosen on the tuning data",
            "grids": cfg["grids"].as_dict(), "pos_weight_grid": list(POS_WEIGHT_GRID)}


def protein_study(cfg: dict, out: Path, runs: Runs) -> dict:
    chains = protein.load(cfg["protein_chains"])
    tuning, folds = protein.folds(chains, validation=3 if cfg["limit"] else 6, tuning=4 if cfg["limit"] else 8)
    seeds = [Seed(k, train, val, {"test": test}, [s.extra["name"] for s in test])
             for k, (train, val, test) in enumerate(folds)]
    task = Task("protein", seeds, tuning, protein.MIN_SEPARATION, protein.FEATURES,
                _density(seeds[0].train, protein.MIN_SEPARATION), cfg["protein_budget"],
                make_batch=protein.make_batch, extra_scores=protein.contact_scores,
                tuning_budget=cfg["protein_tuning_budget"])
    runs.progress = _progress(task, cfg["grids"], "protein study (training steps)")
    result = run_task(task, runs, cfg["grids"].as_dict())
    runs.progress.close()
    names = list(result["per_seed"][0])
    results = {
        "chains": [s.extra["name"] for s in chains],
        "tuning_chains": [s.extra["name"] for s in tuning],
        "folds": [[s.extra["name"] for s in test] for _, _, test in folds],
        "config": {**_config(cfg, task, protein.MIN_SEPARATION, "noisy Cα distances, the same pairs hidden in both "
                             "halves"), "noise_angstrom": protein.NOISE_ANGSTROM, "hidden": protein.HIDDEN},
        "recipe": report.recipe_dict(result),
        "pos_weight_validation": result["pos_weight_validation"],
        "results": report.collect(result["per_seed"], ("test",), names, seed_key="fold"),
        "paired_differences": {"test": paired_differences(task, result["per_seed"], names)},
        "curves": result["curves"],
    }
    report.write_protein(results, out)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset, within 3 minutes (what CI runs)")
    parser.add_argument("--only", choices=("rna", "protein"), help="one study")
    parser.add_argument("--out", type=Path, help="results folder (default examples/results, "
                        "build/study-quick with --quick)")
    parser.add_argument("--seeds", type=int, help="override the number of seeds")
    parser.add_argument("--retrain", action="store_true", help="train every run again (the kept records replaced)")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.seeds:
        cfg["seeds"] = args.seeds
    out = args.out or (ROOT / "build" / "study-quick" if args.quick else ROOT / "examples" / "results")
    out.mkdir(parents=True, exist_ok=True)
    runs = Runs(ROOT / "build" / "study-runs-quick" if args.quick else ROOT / "examples" / "results" / "study-runs",
                recompute=args.retrain)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for source in (RNA, PROTEIN):
        fetch(source)
    start = time.monotonic()
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    if args.only in (None, "rna"):
        rna_study(cfg, out, runs)
    if args.only in (None, "protein"):
        protein_study(cfg, out, runs)
    took = time.monotonic() - start
    print(f"study: {took / 60:.1f} min ({runs.made} runs trained, {runs.reused} read back; their training "
          f"{runs.train_s / 60:.1f} min, what a fresh study trains); results in {out}")
    (out / "study_run.json").write_text(json.dumps({"minutes": took / 60, "quick": args.quick, "machine": machine,
                                                    "runs_trained": runs.made, "runs_reused": runs.reused,
                                                    "training_minutes_of_all_runs": runs.train_s / 60},
                                                   indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
