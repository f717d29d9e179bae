"""Checks a study_rna.json against the data, without the study's own code: the test pairs
against a second, separately written parse of the Rfam seed file; the split's parts share no
family; ViennaRNA's F1 recomputed from the JSON's test sequences; at least 3 seeds a loss.

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
    split = study["split"]
    parts = [set(split[k]) for k in ("train_families", "validation_families", "test_families")]
    if parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]:
        problems.append("a family lies in two parts of the split")
    families = seed_families(DATA / "rna" / "rfam_seed_many_short.stk")
    for entry in study["test"]:
        if entry["family"] not in parts[2]:
            problems.append(f"{entry['family']}/{entry['name']} is not of a test family")
        ss, rows = families[entry["family"]]
        seq, pairs = pairs_from(ss, rows[entry["name"]])
        if seq != entry["sequence"] or pairs != entry["pairs"]:
            problems.append(f"{entry['family']}/{entry['name']}: sequence or pairs differ from the seed file")
    import RNA

    from symfocal.metrics import base_pair_scores  # the metric itself is tested in tests/test_metrics.py

    f1 = []
    for entry in study["test"]:
        structure, _ = RNA.fold(entry["sequence"])
        stack, pairs = [], []
        for k, ch in enumerate(structure):
            if ch == "(":
                stack.append(k)
            elif ch == ")":
                pairs.append((stack.pop(), k))
        f1.append(base_pair_scores(pairs, [tuple(p) for p in entry["pairs"]], len(entry["sequence"]))["f1"])
    recomputed = sum(f1) / len(f1)
    if abs(recomputed - study["rnafold"]["f1"]) > 1e-9:
        problems.append(f"RNAfold F1 recomputed {recomputed:.6f}, reported {study['rnafold']['f1']:.6f}")
    for loss in study["results"]:
        seeds = loss["seeds"]
        if len(seeds) < 3 or any(not all(k in s for k in ("f1", "mcc", "precision", "recall")) for s in seeds):
            problems.append(f"{loss['name']}: fewer than 3 seeds, or a seed without f1/mcc/precision/recall")
    print(f"{path}: {len(study['test'])} test sequences, {len(study['results'])} losses, "
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
