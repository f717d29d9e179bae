"""Checks a study_rna.json against the data, without the study's own code: the test pairs
against a second, separately written parse of the Rfam seed file; no seed's split shares a
family between its parts or with the tuning families; ViennaRNA's F1 recomputed from the
JSON's test sequences of every seed; at least 3 seeds a loss.

    python -m examples.study.check examples/results/study_rna.json
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from examples.realdata.fetch import DATA

OPEN, CLOSE = "(<[{", ")>]}"


def seed_families(path: Path) -> dict:
    """{accession: (SS_cons, {name: aligned row})}, read block by block with regular expressions."""
    families = {}
    for block in path.read_text(encoding="latin-1").split("\n//"):
        acc = re.search(r"^#=GF AC\s+(\S+)", block, re.M)
        if not acc:
            continue
        ss = "".join(re.findall(r"^#=GC SS_cons\s+(\S+)", block, re.M))
        rows: dict[str, str] = {}
        for name, row in re.findall(r"^([^#\s]\S*)\s+(\S+)$", block, re.M):
            rows[name] = rows.get(name, "") + row
        families[acc[1]] = (ss, rows)
    return families


def pairs_from(ss: str, row: str) -> tuple[str, list]:
    """The ungapped sequence of `row` and the SS_cons pairs both of whose columns it has."""
    stacks: dict[str, list] = {}
    column_pairs = []
    for col, ch in enumerate(ss):
        if ch in OPEN or ch.isupper():
            stacks.setdefault(ch, []).append(col)
        elif ch in CLOSE:
            column_pairs.append((stacks[OPEN[CLOSE.index(ch)]].pop(), col))
        elif ch.islower():
            column_pairs.append((stacks[ch.upper()].pop(), col))
    residue = {}
    seq = ""
    for col, ch in enumerate(row):
        if ch not in ".-~_":
            residue[col] = len(seq)
            seq += ch.upper().replace("T", "U")
    pairs = sorted([residue[a], residue[b]] for a, b in column_pairs if a in residue and b in residue)
    return seq, pairs


def check(path: Path) -> list[str]:
    study = json.loads(path.read_text())
    problems = []
    tuning = set(study["split"].get("tuning_families", []))
    splits = study.get("splits") or [{"seed": study["split"]["seed"], **study["split"],
                                      "test": [[e["family"], e["name"]] for e in study["test"]]}]
    for sp in splits:
        parts = [set(sp[k]) for k in ("train_families", "validation_families", "test_families")] + [tuning]
        if any(parts[a] & parts[b] for a in range(4) for b in range(a + 1, 4)):
            problems.append(f"seed {sp['seed']}: a family lies in two parts of the split (tuning included)")
        for family, name in sp["test"]:
            if family not in parts[2]:
                problems.append(f"seed {sp['seed']}: {family}/{name} is not of a test family")
    families = seed_families(DATA / "rna" / "rfam_seed_many_short.stk")
    by_name = {}
    for entry in study["test"]:
        ss, rows = families[entry["family"]]
        seq, pairs = pairs_from(ss, rows[entry["name"]])
        if seq != entry["sequence"] or pairs != entry["pairs"]:
            problems.append(f"{entry['family']}/{entry['name']}: sequence or pairs differ from the seed file")
        by_name[(entry["family"], entry["name"])] = entry
    import RNA

    from symfocal.metrics import base_pair_scores  # the metric itself is tested in tests/test_metrics.py

    def rnafold_f1(entry):
        structure, _ = RNA.fold(entry["sequence"])
        stack, pairs = [], []
        for k, ch in enumerate(structure):
            if ch == "(":
                stack.append(k)
            elif ch == ")":
                pairs.append((stack.pop(), k))
        return base_pair_scores(pairs, [tuple(p) for p in entry["pairs"]], len(entry["sequence"]))["f1"]

    f1 = {key: rnafold_f1(entry) for key, entry in by_name.items()}
    per_seed = [sum(f1[tuple(k)] for k in sp["test"]) / len(sp["test"]) for sp in splits]
    recomputed = sum(per_seed) / len(per_seed)
    if abs(recomputed - study["rnafold"]["f1"]) > 1e-9:
        problems.append(f"RNAfold F1 recomputed {recomputed:.6f}, reported {study['rnafold']['f1']:.6f}")
    for loss in study["results"]:
        seeds = loss["seeds"]
        if len(seeds) < 3 or any(not all(k in s for k in ("f1", "mcc", "precision", "recall")) for s in seeds):
            problems.append(f"{loss['name']}: fewer than 3 seeds, or a seed without f1/mcc/precision/recall")
    print(f"{path}: {len(study['test'])} test sequences over {len(splits)} splits, {len(study['results'])} losses, "
          f"RNAfold F1 {recomputed:.4f}: " + ("ok" if not problems else f"{len(problems)} problems"))
    return problems


def main(argv=None) -> int:
    problems = []
    for path in (argv if argv is not None else sys.argv[1:]):
        problems += check(Path(path))
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
