"""make study: which use of the symmetry helps, on real RNA base-pair maps and real protein
contact maps. Every loss of examples/study/losses.py, the same network, data order and step
budget; results (markdown, plots, JSON) in examples/results/.

    python -m examples.study            # both studies, within 30 minutes on 2 cores
    python -m examples.study --quick    # the same pipeline on a small subset, within 3 minutes
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from examples.realdata.fetch import RNA, PROTEIN, fetch

from . import protein, report, rna
from .experiment import Budget, Data, models_per_seed, run_seed
from .losses import LOSSES, POS_WEIGHT_GRID
from .timing import loss_cost
from .train import collate

ROOT = Path(__file__).resolve().parents[2]

FULL = dict(seeds=3, rna_steps=240, rna_batch=4, per_family=10, ood_per_family=25, protein_steps=50,
            protein_batch=4, protein_chains=None, limit=None)
QUICK = dict(seeds=3, rna_steps=4, rna_batch=4, per_family=2, ood_per_family=2, protein_steps=2,
             protein_batch=2, protein_chains=15, limit={"train": 12, "validation": 4, "test": 4})


def rna_study(cfg: dict, out: Path) -> dict:
    split = rna.load(per_family=cfg["per_family"], ood_per_family=cfg["ood_per_family"], limit=cfg["limit"])
    data = Data(train=[rna.sample(m) for m in split.train], validation=[rna.sample(m) for m in split.validation],
                tests={"test": [rna.sample(m) for m in split.test], "ood": [rna.sample(m) for m in split.ood]},
                min_separation=rna.MIN_SEPARATION, features=rna.FEATURES)
    seeds = list(range(cfg["seeds"]))
    trainings = models_per_seed(choosing_pos_weight=True) + (len(seeds) - 1) * models_per_seed()
    bar = tqdm(total=trainings * cfg["rna_steps"], desc="RNA study (training steps)", unit="step")
    budget = Budget(cfg["rna_steps"], cfg["rna_batch"], progress=bar)
    per_seed = [run_seed(data, budget, seed) for seed in seeds]
    bar.close()
    print("RNA study: ViennaRNA on the test sequences", flush=True)
    baseline = {name: rna.rnafold(maps) for name, maps in (("test", split.test), ("ood", split.ood))}
    print("RNA study: timing the loss (fused against symfocal.reference)", flush=True)
    timing = loss_cost(collate(data.train[: cfg["rna_batch"]]), rna.FEATURES, min_separation=rna.MIN_SEPARATION,
                       repeats=3 if cfg["limit"] else 10)
    results = {
        "split": {"seed": split.seed, "by": "Rfam family", "per_family_at_most": cfg["per_family"],
                  "train_families": split.families("train"), "validation_families": split.families("validation"),
                  "test_families": split.families("test"), "ood_families": split.families("ood"),
                  "sizes": {p: len(getattr(split, p)) for p in ("train", "validation", "test", "ood")}},
        "config": {**cfg, "min_separation": rna.MIN_SEPARATION, "features": "UFold-style: one-hot outer "
                   "concatenation, canonical-pair indicator, log separation", "network": "PairNet, 16 channels, "
                   "4 dilated residual blocks (1, 2, 4, 8)", "optimizer": "Adam, lr 5e-3 (of 2e-3, 5e-3, 1e-2 on "
                   "the validation families, BCE pos_weight 30 and focal average, seed 0)", "pos_weight_grid": list(POS_WEIGHT_GRID)},
        "test": [rna.describe(m) for m in split.test],
        "ood_test": [rna.describe(m) for m in split.ood],
        "rnafold": {"f1": baseline["test"]["f1"], "mcc": baseline["test"]["mcc"],
                    "precision": baseline["test"]["precision"], "recall": baseline["test"]["recall"],
                    "ood": {k: baseline["ood"][k] for k in ("f1", "mcc", "precision", "recall")},
                    "version": _viennarna_version()},
        "pos_weight_validation": {"f1_by_weight": budget.pos_weight_validation, "chosen": budget.pos_weight},
        "results": report.collect(per_seed, ("test", "ood")),
        "timing": timing,
    }
    report.write_rna(results, per_seed, baseline, split, out)
    return results


def protein_study(cfg: dict, out: Path) -> dict:
    chains = protein.load(cfg["protein_chains"])
    folds = list(protein.folds(chains, validation=3 if cfg["limit"] else 8))
    trainings = models_per_seed(choosing_pos_weight=True) + (len(folds) - 1) * models_per_seed()
    bar = tqdm(total=trainings * cfg["protein_steps"], desc="protein study (training steps)", unit="step")
    budget = Budget(cfg["protein_steps"], cfg["protein_batch"], progress=bar)
    per_fold = []
    for k, (train, val, test) in enumerate(folds):
        data = Data(train=train, validation=val, tests={"test": test}, min_separation=protein.MIN_SEPARATION,
                    features=protein.FEATURES, make_batch=protein.make_batch, extra_scores=protein.contact_scores)
        per_fold.append(run_seed(data, budget, seed=k))
    bar.close()
    results = {
        "chains": [s.extra["name"] for s in chains],
        "folds": [[s.extra["name"] for s in test] for _, _, test in folds],
        "config": {**cfg, "noise_angstrom": protein.NOISE_ANGSTROM, "hidden": protein.HIDDEN,
                   "min_separation": protein.MIN_SEPARATION},
        "pos_weight_validation": {"f1_by_weight": budget.pos_weight_validation, "chosen": budget.pos_weight},
        "results": report.collect(per_fold, ("test",), seed_key="fold"),
    }
    report.write_protein(results, out)
    return results


def _viennarna_version() -> str:
    import RNA
    return getattr(RNA, "__version__", "unknown")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small subset, within 3 minutes (what CI runs)")
    parser.add_argument("--only", choices=("rna", "protein"), help="one study")
    parser.add_argument("--out", type=Path, help="results folder (default examples/results, "
                        "build/study-quick with --quick)")
    for key in ("seeds", "rna_steps", "protein_steps"):
        parser.add_argument(f"--{key.replace('_', '-')}", type=int, help=f"override {key}")
    args = parser.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({k: getattr(args, k) for k in ("seeds", "rna_steps", "protein_steps") if getattr(args, k)})
    out = args.out or (ROOT / "build" / "study-quick" if args.quick else ROOT / "examples" / "results")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    for source in (RNA, PROTEIN):
        fetch(source)
    start = time.monotonic()
    summary = {"machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"}
    if args.only in (None, "rna"):
        summary["rna"] = rna_study(cfg, out)
    if args.only in (None, "protein"):
        summary["protein"] = protein_study(cfg, out)
    took = time.monotonic() - start
    print(f"study: {took / 60:.1f} min; results in {out}")
    (out / "study_run.json").write_text(json.dumps({"minutes": took / 60, "quick": args.quick,
                                                    "machine": summary["machine"]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
