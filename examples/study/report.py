"""The study's outputs: per-loss means and spreads, markdown tables, plots and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from dataclasses import asdict

from .evaluate import METRICS, mean_sd
from .losses import LOSSES

BULKY = ("predicted",)  # kept for the figures, left out of the JSON


def _loss_of(name: str):
    return next(loss for loss in LOSSES if name.startswith(loss.name) and
                name[len(loss.name):] in ("", ", one partner per base"))


def recipe_dict(result: dict) -> dict:
    return {"chosen": asdict(result["recipe"]), "grids": result["recipe_grids"]}


def collect(per_seed: list[dict], test_names, names=None, seed_key: str = "seed") -> list[dict]:
    """One entry per loss (and post-processing): what it is, each seed's (or fold's) metrics
    with its sequences' F1 and the step chosen, and their mean and standard deviation over the
    seeds."""
    entries = []
    for name in names or [loss.name for loss in LOSSES]:
        loss = _loss_of(name)
        runs = []
        for run in per_seed:
            r = run[name]
            row = {seed_key: r["seed"], "how": r["how"], "threshold": r["threshold"],
                   "train_s": round(r["train_s"], 2)}
            row.update({k: r[k] for k in ("model", "best_step", "steps_run", "steps_per_epoch") if k in r})
            for test in test_names:
                metrics = {k: v for k, v in r[test].items() if k not in BULKY}
                row.update(metrics) if test == "test" else row.update({test: metrics})
            runs.append(row)
        keys = [k for k, v in runs[0].items() if isinstance(v, float) and k not in ("threshold", "train_s")]
        summary = {k: mean_sd([r[k] for r in runs]) for k in keys}
        for test in test_names:
            if test != "test":
                summary.update({f"{test} {k}": mean_sd([r[test][k] for r in runs]) for k in METRICS})
        entries.append({"name": name, "trains": loss.trains, "test_rule": loss.test, "what": loss.what,
                        "seeds" if seed_key == "seed" else "folds": runs,
                        "mean": {k: v[0] for k, v in summary.items()}, "sd": {k: v[1] for k, v in summary.items()}})
    return entries


def _pm(entry, key, digits=3):
    return f"{entry['mean'][key]:.{digits}f} ± {entry['sd'][key]:.{digits}f}"


def write_rna(results: dict, per_seed: list[dict], baseline: dict, split, out: Path) -> None:
    (out / "study_rna.json").write_text(json.dumps(results, indent=1) + "\n")
    s = results["split"]["sizes"]
    rf, ood = results["rnafold"], results["rnafold"]["ood"]
    lines = [
        "# RNA base-pair maps: which use of the symmetry helps",
        "",
        f"Rfam seed families split by family (seed {results['split']['seed']}): {s['train']} training, "
        f"{s['validation']} validation and {s['test']} test sequences of "
        f"{len(results['split']['train_families'])} / {len(results['split']['validation_families'])} / "
        f"{len(results['split']['test_families'])} families (at most {results['split']['per_family_at_most']} "
        f"a family); out of distribution: {s['ood']} longer RNAs of rfam_seed_selected "
        f"({', '.join(results['split']['ood_families'])}). Per-sequence metrics, averaged over the sequences; "
        f"mean ± standard deviation over {len(per_seed)} seeds (the split dealt anew by each seed; the "
        f"{len(results['split']['tuning_families'])} tuning families, where the recipe was chosen, in none); "
        "threshold (and half) chosen on the validation families. Asymmetry: mean |p_ij - p_ji| of the raw output.",
        "",
        "| loss | test F1 | F1 of each seed | MCC | precision | recall | asymmetry | OOD F1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in results["results"]:
        each = ", ".join(f"{s['f1']:.2f}" for s in e["seeds"])
        lines.append(f"| {e['name']} | {_pm(e, 'f1')} | {each} | {_pm(e, 'mcc')} | {_pm(e, 'precision')} | "
                     f"{_pm(e, 'recall')} | {_pm(e, 'asymmetry')} | {_pm(e, 'ood f1')} |")
    lines.append(f"| ViennaRNA RNAfold (MFE, {rf['version']}) | {rf['f1']:.3f} | | {rf['mcc']:.3f} | "
                 f"{rf['precision']:.3f} | {rf['recall']:.3f} | 0 | {ood['f1']:.3f} |")
    lines += _differences_lines(results) + _recipe_lines(results)
    t = results["timing"]
    lines += ["", f"Loss cost, batch {t['batch']}, loss `{t['loss']}`, medians of {t['repeats']} interleaved "
              f"runs: the fused loss's forward + backward takes {t['fused_loss_s'] * 1e3:.2f} ms "
              f"({100 * t['fused_share']:.1f} % of a {t['fused_step_s'] * 1e3:.0f} ms training step); the same loss "
              f"in plain PyTorch (symfocal.reference) {t['reference_loss_s'] * 1e3:.2f} ms "
              f"({100 * t['reference_share']:.1f} % of its step): {t['loss_speedup']:.1f}x for the loss, "
              f"{t['step_speedup']:.2f}x for the step (CPU)."]
    if "fused_step_quartiles_s" in t:  # the step's spread, beside which a difference of the loss's size vanishes
        lines[-1] += (" Steps' quartiles: fused " + ", ".join(f"{v * 1e3:.0f}" for v in t["fused_step_quartiles_s"])
                      + " ms, reference " + ", ".join(f"{v * 1e3:.0f}" for v in t["reference_step_quartiles_s"]) + " ms.")
    (out / "study_rna.md").write_text("\n".join(lines) + "\n")
    _plot_f1(results, out / "study_rna_f1.png")
    _plot_curves(results, out / "study_rna_curves.png")
    _plot_tuning(results, out / "study_rna_tuning.png")
    _plot_examples(results, per_seed, baseline, split, out / "study_rna_examples.png")


def _differences_lines(results: dict, units: str = "sequence", splits: str = "seeds",
                       clusters: str = "test families") -> list[str]:
    lines = ["", f"Paired differences of the per-{units} test F1 at the validation threshold (same {splits[:-1]}, "
             f"same {units}s), mean over the {units}s then the {splits}, 95 % interval of a two-level bootstrap "
             f"({splits}, then the {clusters} within each, resampled whole):", "",
             f"| loss | minus | difference | 95 % interval | each {splits[:-1]} |", "|---|---|---|---|---|"]
    for d in results["paired_differences"]["test"]:
        apart = "" if d["ci95"][0] <= 0 <= d["ci95"][1] else " *"
        lines.append(f"| {d['name']} | {d['minus']} | {d['mean']:+.3f}{apart} | [{d['ci95'][0]:+.3f}, "
                     f"{d['ci95'][1]:+.3f}] | " + ", ".join(f"{v:+.2f}" for v in d["per_seed"]) + " |")
    lines += ["", "\\* the interval excludes 0. The last rows are a null control: mode pair trains mode none's gradient "
              "where the target is symmetric (here it is), so their difference, both averaged at test, is what float "
              "summation order alone does to a training run."]
    return lines


def _recipe_lines(results: dict) -> list[str]:
    r, g = results["recipe"]["chosen"], results["recipe"]["grids"]
    lines = ["", f"Recipe, chosen on the tuning data (validation F1 there, mode none): alpha {r['alpha']:g}, gamma "
             f"{r['gamma']:g}, normalize {r['normalize']}, focal lr {r['focal_lr']:g}, BCE lr "
             + ", ".join(f"{k.removeprefix('bce_pw')}: {v:g}" for k, v in r['bce_lrs'].items()) + " (by pos_weight), "
             f"penalty weights l1 {r['symmetry_weight']['l1']:g}, huber {r['symmetry_weight']['huber']:g}.", "",
             "| normalize | alpha | gamma | tuning F1 |", "|---|---|---|---|"]
    lines += [f"| {e['normalize']} | {e['alpha']:g} | {e['gamma']:g} | {e['val_f1']:.3f} |" for e in g["focal"]]
    grids = {"focal learning rate": g["focal_lr"],
             **{f"BCE pos_weight {w} learning rate": lrs for w, lrs in g["bce_lr"].items()},
             "l1 penalty weight": g["l1_weight"], "huber penalty weight": g["huber_weight"]}
    for label, scores in grids.items():
        lines.append(f"\n{label}: " + ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    pw = results["pos_weight_validation"]
    lines += ["", f"pos_weight chosen on the tuning data (F1 there of each seed's model, mean over the seeds): {pw['chosen']:g} ("
              + ", ".join(f"{w}: {f:.3f}" for w, f in pw["f1_by_weight"].items()) + ")."]
    return lines


def _plot_curves(results: dict, path: Path) -> None:
    """Each model's validation F1 and training loss against the step, one line a seed."""
    plt = _pyplot()
    models = list(dict.fromkeys(k.rsplit(" seed ", 1)[0] for k in results["curves"]))
    fig, axes = plt.subplots(2, len(models), figsize=(2.2 * len(models), 4.4), squeeze=False, sharex="col")
    for col, model in enumerate(models):
        for key, run in results["curves"].items():
            if key.rsplit(" seed ", 1)[0] != model:
                continue
            c = run["curve"]
            line, = axes[0][col].plot(c["step"], c["val_f1"], lw=1)
            axes[0][col].axvline(run["best_step"], color=line.get_color(), lw=0.5, ls=":")
            axes[1][col].plot(c["step"], c["train_loss"], lw=1, color=line.get_color())
        axes[0][col].set_title(model, fontsize=8)
        axes[1][col].set_yscale("log")
        axes[1][col].set_xlabel("step", fontsize=7)
        for ax in axes[:, col]:
            ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("validation F1", fontsize=7)
    axes[1][0].set_ylabel("training loss", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_tuning(results: dict, path: Path) -> None:
    """The focal grid's runs (mode none), a panel per normalize x gamma, a line per alpha:
    validation F1 above, the spread of the validation logits below (a constant map has none)."""
    plt = _pyplot()
    grid = results["recipe"]["grids"]["focal"]
    panels = list(dict.fromkeys((e["normalize"], e["gamma"]) for e in grid))
    fig, axes = plt.subplots(2, len(panels), figsize=(2.1 * len(panels), 4.2), squeeze=False, sharex=True,
                             sharey="row")
    for col, (normalize, gamma) in enumerate(panels):
        for e in grid:
            if (e["normalize"], e["gamma"]) == (normalize, gamma):
                c = e["curve"]
                axes[0][col].plot(c["step"], c["val_f1"], lw=1, label=f"alpha {e['alpha']:g}")
                axes[1][col].plot(c["step"], c["val_logit_sd"], lw=1)
        axes[0][col].set_title(f"{normalize}, gamma {gamma:g}", fontsize=8)
        axes[1][col].set_xlabel("step", fontsize=7)
        for ax in axes[:, col]:
            ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("tuning F1", fontsize=7)
    axes[1][0].set_ylabel("sd of the logits", fontsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pyplot():
    """matplotlib, imported only to draw (the tables and JSON need none of it)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _plot_f1(results: dict, path: Path) -> None:
    plt = _pyplot()
    entries = results["results"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    y = range(len(entries))
    for offset, key, label in ((-0.18, "f1", "test families"), (0.18, "ood f1", "out of distribution")):
        ax.barh([k + offset for k in y], [e["mean"][key] for e in entries], height=0.36,
                xerr=[e["sd"][key] for e in entries], capsize=3, label=label)
    ax.axvline(results["rnafold"]["f1"], color="k", ls="--", lw=1, label="RNAfold (test families)")
    ax.set_yticks(list(y), [e["name"] for e in entries])
    ax.invert_yaxis()
    ax.set_xlabel("per-sequence base-pair F1 (mean ± sd over seeds)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_examples(results, per_seed, baseline, split, path: Path, count: int = 3) -> None:
    """A few test RNAs (the longest of different families): truth above the diagonal, the
    prediction below it, for RNAfold and the best and the worst loss (seed 0)."""
    plt = _pyplot()
    entries = sorted(results["results"], key=lambda e: e["mean"]["f1"])
    worst, best = entries[0]["name"], entries[-1]["name"]
    picks, seen = [], set()
    for k in sorted(range(len(split.test)), key=lambda k: -len(split.test[k].sequence)):
        if split.test[k].family not in seen:
            seen.add(split.test[k].family)
            picks.append(k)
        if len(picks) == count:
            break
    columns = [("RNAfold", baseline["test"]["pairs"]), (best, per_seed[0][best]["test"]["predicted"]),
               (worst, per_seed[0][worst]["test"]["predicted"])]
    fig, axes = plt.subplots(len(picks), len(columns), figsize=(3.2 * len(columns), 3.2 * len(picks)), squeeze=False)
    for row, k in enumerate(picks):
        m = split.test[k]
        for col, (label, predicted) in enumerate(columns):
            ax = axes[row][col]
            truth = m.pairs
            ax.scatter([j for i, j in truth], [i for i, j in truth], s=4, c="k", label="truth")
            ax.scatter([i for i, j in predicted[k]], [j for i, j in predicted[k]], s=4, c="tab:red", label="predicted")
            n = len(m.sequence)
            ax.plot([0, n], [0, n], c="0.8", lw=0.5)
            ax.set_xlim(0, n)
            ax.set_ylim(n, 0)
            ax.set_title(f"{m.family} {m.name[:18]}\n{label}", fontsize=7)
            ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_protein(results: dict, out: Path) -> None:
    (out / "study_protein.json").write_text(json.dumps(results, indent=1) + "\n")
    keys = ["long P@L", "long P@L/2", "long P@L/5", "medium P@L/5", "short P@L/5"]
    lines = [
        "# Protein contact maps: refining a degraded view",
        "",
        f"{len(results['chains'])} chains (MDAnalysisTests' DSSP set), {len(results['folds'])}-fold cross-validation "
        "over chains; input: the chain's Cα distances from coordinates with Gaussian noise "
        f"(σ = {results['config']['noise_angstrom']} Å) and {100 * results['config']['hidden']:.0f} % of the "
        "pairs hidden (the same in both halves); target: Cβ-Cβ < 8 Å; recipe chosen on tuning chains in no fold. Precision of the top L/k pairs by "
        "separation range (short 6-11, medium 12-23, long ≥ 24), mean over chains, then mean ± standard "
        "deviation over the folds.",
        "",
        "| loss | " + " | ".join(keys) + " | asymmetry |",
        "|---|" + "---|" * (len(keys) + 1),
    ]
    for e in results["results"]:
        lines.append(f"| {e['name']} | " + " | ".join(_pm(e, k) for k in keys) + f" | {_pm(e, 'asymmetry')} |")
    lines += _differences_lines(results, "chain", "folds", "test chains") + _recipe_lines(results)
    (out / "study_protein.md").write_text("\n".join(lines) + "\n")
    _plot_curves(results, out / "study_protein_curves.png")
    _plot_tuning(results, out / "study_protein_tuning.png")
