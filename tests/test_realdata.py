"""The real-data parsers and the download's checks, on small hand-written inputs (no download)."""

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from examples.realdata import fetch, pdb, stockholm  # noqa: E402

# Two families; the second is wrapped in two blocks and has a pseudoknot (A...a) and [] pairs.
STOCKHOLM = """# STOCKHOLM 1.0
#=GF AC   RF99901
#=GF ID   hairpin
seqA/1-10      GGA.AAU-CC
seqB/3-12      GtAcAAU-AC
seqC/1-9       GGA.AAU-CC
#=GC SS_cons   <<_.__>-->
//
# STOCKHOLM 1.0
#=GF AC   RF99902
#=GF ID   knot

long/1-16      GCAGAU
short/1-9      G-A-A-
#=GC SS_cons   ((A[_(

long/1-16      CAUGCUUUGC
short/1-9      C--G.U-CC-
#=GC SS_cons   ]_a_)__)),
//
"""


def test_stockholm_blocks_and_families():
    fams = stockholm.read_stockholm(STOCKHOLM)
    assert [(f.accession, f.name) for f in fams] == [("RF99901", "hairpin"), ("RF99902", "knot")]
    assert fams[1].rows["long/1-16"] == "GCAGAUCAUGCUUUGC" and fams[1].ss_cons == "((A[_(]_a_)__)),"


def test_consensus_pairs_nested_bracket_kinds_and_pseudoknots():
    assert stockholm.consensus_pairs("<<_.__>-->") == [(0, 9), (1, 6)]
    #                                  0123456789012345
    assert stockholm.consensus_pairs("((A[_(]_a_)__)),") == [(0, 14), (1, 13), (2, 8), (3, 6), (5, 10)]
    with pytest.raises(ValueError, match="closes nothing"):
        stockholm.consensus_pairs("<_>>")
    with pytest.raises(ValueError, match="unclosed"):
        stockholm.consensus_pairs("A<_>")


def test_projection_drops_gaps_and_pairs_with_a_gap_end():
    fams = stockholm.read_stockholm(STOCKHOLM)
    hairpin = stockholm.project(fams[0], "seqB/3-12")
    # GtAcAAU-AC: no gaps but '-' at column 7; T read as U, lower case (inserts) kept as residues.
    assert hairpin.sequence == "GUACAAUAC"
    # Column pairs (0, 9) -> residues (0, 8); (1, 6) -> (1, 6).
    assert hairpin.pairs == [(0, 8), (1, 6)]
    knot = stockholm.project(fams[1], "short/1-9")
    # G-A-A-C--G.U-CC- : residues at columns 0, 2, 4, 6, 9, 11, 13, 14.
    assert knot.sequence == "GAACGUCC"
    # Column pairs with both ends residues: (0, 14) -> (0, 7), (2, 8)? column 8 is '.', dropped;
    # (1, 13)? column 1 is a gap, dropped; (3, 6)? column 3 a gap; (5, 10)? both gaps.
    assert knot.pairs == [(0, 7)]


def test_identical_sequences_count_once():
    maps = stockholm.rna_maps(stockholm.read_stockholm(STOCKHOLM))
    names = [m.name for m in maps]
    assert "seqC/1-9" not in names and names.count("seqA/1-10") == 1  # seqC repeats seqA
    assert all(i < j for m in maps for i, j in m.pairs)


def test_rows_of_another_width_are_an_error():
    with pytest.raises(ValueError, match="width"):
        stockholm.read_stockholm("# STOCKHOLM 1.0\ns1 GGAA\n#=GC SS_cons <..>>\n//\n")


def _atom(serial, name, res, seq, x, y, z, altloc=" ", record="ATOM  ", chain="A"):
    return (f"{record}{serial:5d} {name:<4}{altloc}{res:>3} {chain}{seq:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00 20.00           C")


PDB = "\n".join([
    _atom(1, "N", "ALA", 1, 0.0, 0.0, 0.0), _atom(2, "CA", "ALA", 1, 1.458, 0.0, 0.0),
    _atom(3, "C", "ALA", 1, 2.009, 1.420, 0.0), _atom(4, "CB", "ALA", 1, 1.988, -0.773, -1.199),
    # A glycine: no CB, a virtual one is placed.
    _atom(5, "N", "GLY", 2, 3.332, 1.536, 0.0), _atom(6, "CA", "GLY", 2, 3.988, 2.839, 0.0),
    _atom(7, "C", "GLY", 2, 5.504, 2.693, 0.0),
    # Two locations of one serine: A is taken, B is not.
    _atom(8, "N", "SER", 3, 6.0, 3.9, 0.0, "A"), _atom(9, "N", "SER", 3, 60.0, 39.0, 0.0, "B"),
    _atom(10, "CA", "SER", 3, 7.4, 4.0, 0.0, "A"), _atom(11, "CA", "SER", 3, 70.0, 40.0, 0.0, "B"),
    _atom(12, "C", "SER", 3, 8.0, 5.4, 0.0, "A"), _atom(13, "CB", "SER", 3, 8.0, 3.3, 1.2, "A"),
    # A ligand: not a residue.
    _atom(14, "C1", "HEM", 4, 9.0, 9.0, 9.0, record="HETATM"),
    "ENDMDL",
    _atom(15, "N", "LYS", 5, 0.0, 0.0, 0.0),  # a second model: ignored
])


def test_pdb_first_model_altloc_a_no_hetatm():
    seq, ca, cb = pdb.read_pdb(PDB)
    assert seq == "AGS"
    np.testing.assert_allclose(ca[2], [7.4, 4.0, 0.0])
    np.testing.assert_allclose(cb[0], [1.988, -0.773, -1.199])  # a real Cβ is used as it is
    np.testing.assert_allclose(cb[2], [8.0, 3.3, 1.2])


def test_virtual_cb_sits_where_a_real_one_does():
    # Alanine's backbone above, its real Cβ about 0.05 Å from the ideal position.
    n, ca, c = np.array([0.0, 0.0, 0.0]), np.array([1.458, 0.0, 0.0]), np.array([2.009, 1.420, 0.0])
    virtual = pdb.virtual_cb(n, ca, c)
    assert np.linalg.norm(virtual - ca) == pytest.approx(1.52, abs=0.03)  # the C-C bond length
    assert np.linalg.norm(virtual - np.array([1.988, -0.773, -1.199])) < 0.1
    seq, _, cb = pdb.read_pdb(PDB)
    np.testing.assert_allclose(cb[1], pdb.virtual_cb(*[np.array(v) for v in
                                                       ([3.332, 1.536, 0], [3.988, 2.839, 0], [5.504, 2.693, 0])]))


def test_contact_map_is_symmetric_with_the_cutoff_strict():
    cb = np.array([[0.0, 0, 0], [7.99, 0, 0], [8.0, 0, 0], [20.0, 0, 0]])
    m = pdb.contact_map(cb)
    assert (m == m.T).all() and m[0, 1] and not m[0, 2] and m[1, 2] and not m[0, 3] and m.diagonal().all()


def _archive(tmp_path, files):
    path = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_fetch_checks_the_sha256_and_extracts_only_what_is_needed(tmp_path, monkeypatch):
    archive = _archive(tmp_path, {"pkg-1.0/data/a.pdb.gz": b"a", "pkg-1.0/data/bad_failing.pdb.gz": b"b",
                                  "pkg-1.0/data/README.md": b"r", "pkg-1.0/other/c.txt": b"c"})
    good = fetch.sha256_of(archive)
    source = fetch.Source("pkg==1.0", archive.name, good, ("pkg-1.0/data/",), "things", suffix=".pdb.gz",
                          skip=("_failing",))
    monkeypatch.setattr(fetch, "download", lambda src, folder: archive)
    folder = fetch.fetch(source, tmp_path / "data")
    assert sorted(p.name for p in folder.iterdir()) == [".complete", "a.pdb.gz"]
    # A second call finds it done and downloads nothing.
    monkeypatch.setattr(fetch, "download", lambda src, folder: pytest.fail("downloaded again"))
    assert fetch.fetch(source, tmp_path / "data") == folder
    # Another archive under the same name is refused.
    wrong = fetch.Source("pkg==1.0", archive.name, "0" * 64, ("pkg-1.0/data/",), "other")
    monkeypatch.setattr(fetch, "download", lambda src, folder: archive)
    with pytest.raises(RuntimeError, match="sha256"):
        fetch.fetch(wrong, tmp_path / "data")
    assert not (tmp_path / "data" / "other").exists()
