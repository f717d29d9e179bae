"""PDB files -> residue coordinates and contact maps.

Contacts as CASP counts them: Cβ-Cβ distance below 8 Å, with a virtual Cβ placed from N, CA
and C for glycine (or any residue whose Cβ is missing). First model only; of alternate
locations, the blank or 'A' one; HETATM records are not residues of the chain.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

CONTACT_ANGSTROM = 8.0


def read_pdb(text: str) -> tuple[str, np.ndarray, np.ndarray]:
    """(one-letter sequence, CA coordinates [L, 3], Cβ coordinates [L, 3]) of the first chain of
    the first model; residues without N, CA and C are left out."""
    residues: dict[tuple, dict] = {}
    order, chain = [], None
    for line in text.splitlines():
        record = line[:6]
        if record.startswith("ENDMDL"):
            break
        if record != "ATOM  ":
            continue
        altloc = line[16]
        if altloc not in (" ", "A"):
            continue
        if chain is None:
            chain = line[21]
        if line[21] != chain:
            continue
        key = (line[22:26], line[26])  # residue number and insertion code
        if key not in residues:
            residues[key] = {"name": line[17:20].strip()}
            order.append(key)
        atom = line[12:16].strip()
        residues[key].setdefault(atom, np.array([float(line[30:38]), float(line[38:46]), float(line[46:54])]))
    seq, ca, cb = [], [], []
    for key in order:
        r = residues[key]
        if not all(a in r for a in ("N", "CA", "C")):
            continue
        seq.append(THREE_TO_ONE.get(r["name"], "X"))
        ca.append(r["CA"])
        cb.append(r["CB"] if "CB" in r else virtual_cb(r["N"], r["CA"], r["C"]))
    return "".join(seq), np.array(ca).reshape(-1, 3), np.array(cb).reshape(-1, 3)


def virtual_cb(n: np.ndarray, ca: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The ideal Cβ position from the backbone (the constants trRosetta and AlphaFold use)."""
    b, c_ = ca - n, c - ca
    a = np.cross(b, c_)
    return -0.58273431 * a + 0.56802827 * b - 0.54067466 * c_ + ca


def contact_map(cb: np.ndarray, cutoff: float = CONTACT_ANGSTROM) -> np.ndarray:
    """bool [L, L]: Cβ-Cβ distance below `cutoff` (the diagonal included)."""
    d = np.linalg.norm(cb[:, None, :] - cb[None, :, :], axis=-1)
    return d < cutoff


def read_pdb_file(path: Path) -> tuple[str, np.ndarray, np.ndarray]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as f:
        return read_pdb(f.read())


THREE_TO_ONE = {
    "ALA": "A", "ARG": "R", "ASN": "N", "ASP": "D", "CYS": "C", "GLN": "Q", "GLU": "E", "GLY": "G",
    "HIS": "H", "ILE": "I", "LEU": "L", "LYS": "K", "MET": "M", "PHE": "F", "PRO": "P", "SER": "S",
    "THR": "T", "TRP": "W", "TYR": "Y", "VAL": "V", "MSE": "M", "SEC": "U", "PYL": "O",
}
