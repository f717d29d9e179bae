"""Stockholm alignments (Rfam seeds) -> one base-pair map per distinct sequence.

A sequence's pairs are its family's consensus structure (#=GC SS_cons) projected onto it:
gap columns of that sequence are dropped, and a consensus pair is kept where both of its
columns are residues of that sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAPS = set(".-~_")
# WUSS brackets; pseudoknots are letter pairs, upper case opening: A...a, B...b.
BRACKETS = {")": "(", ">": "<", "]": "[", "}": "{"}


@dataclass
class Family:
    accession: str                 # e.g. RF00001
    name: str                      # e.g. 5S_rRNA
    ss_cons: str
    rows: dict[str, str] = field(default_factory=dict)  # sequence name -> aligned row


@dataclass
class RnaMap:
    family: str
    name: str
    sequence: str                  # A, C, G, U (T read as U); other IUPAC codes kept
    pairs: list[tuple[int, int]]   # 0-based (i, j), i < j


def read_stockholm(text: str) -> list[Family]:
    """Every alignment in `text`; a wrapped (interleaved) alignment's blocks are joined."""
    families, current = [], None
    for raw in text.splitlines():
        line = raw.rstrip()
        if line.startswith("# STOCKHOLM"):
            current = Family("", "", "")
        elif line == "//":
            if current is not None:
                families.append(current)
            current = None
        elif current is None or not line:
            continue
        elif line.startswith("#=GF "):
            tag, _, value = line[5:].partition(" ")
            if tag == "AC":
                current.accession = value.strip()
            elif tag == "ID":
                current.name = value.strip()
        elif line.startswith("#=GC SS_cons"):
            current.ss_cons += line.split()[-1]
        elif line.startswith("#"):
            continue
        else:
            name, row = line.split()
            current.rows[name] = current.rows.get(name, "") + row
    for fam in families:
        bad = [name for name, row in fam.rows.items() if len(row) != len(fam.ss_cons)]
        if bad:
            raise ValueError(f"{fam.accession}: rows of another width than SS_cons: {bad[:3]}")
    return families


def consensus_pairs(ss: str) -> list[tuple[int, int]]:
    """Column pairs (i < j) of a WUSS structure: (), <>, [], {} and A...a letter pairs."""
    stacks: dict[str, list[int]] = {}
    pairs = []
    for col, ch in enumerate(ss):
        if ch in "(<[{" or ch.isupper():
            stacks.setdefault(ch, []).append(col)
        elif ch in BRACKETS or ch.islower():
            opener = BRACKETS.get(ch, ch.upper())
            if not stacks.get(opener):
                raise ValueError(f"SS_cons: {ch!r} at column {col} closes nothing")
            pairs.append((stacks[opener].pop(), col))
    left = [ch for ch, cols in stacks.items() if cols]
    if left:
        raise ValueError(f"SS_cons: unclosed {left}")
    return sorted(pairs)


def project(fam: Family, name: str) -> RnaMap:
    """One sequence of a family with the consensus pairs both of whose columns it has."""
    row = fam.rows[name]
    index = {}  # column -> residue index in the ungapped sequence
    residues = []
    for col, ch in enumerate(row):
        if ch not in GAPS:
            index[col] = len(residues)
            residues.append(ch.upper().replace("T", "U"))
    pairs = [(index[a], index[b]) for a, b in consensus_pairs(fam.ss_cons) if a in index and b in index]
    return RnaMap(fam.accession, name, "".join(residues), pairs)


def rna_maps(families: list[Family]) -> list[RnaMap]:
    """Every distinct sequence once (the first family and name it appears under)."""
    seen, maps = set(), []
    for fam in families:
        for name in fam.rows:
            m = project(fam, name)
            if m.sequence not in seen:
                seen.add(m.sequence)
                maps.append(m)
    return maps
