"""Distance bins and contact probabilities (symfocal/bins.py), each preset against the binning code of
the project it names, transcribed here, on random coordinates with pairs placed exactly on boundaries."""

import numpy as np
import pytest
import torch

import symfocal


def _coords(*on_boundaries):
    """[2, 40, 3] random coordinates (float64), points 1, 2, ... of the first structure placed at
    the given distances from point 0 (so that some pairs lie exactly on a boundary)."""
    g = torch.Generator().manual_seed(3)
    coords = torch.randn(2, 40, 3, generator=g, dtype=torch.float64) * 9
    coords[0, 0] = 0.0  # so that the distances below are exact
    for k, d in enumerate(on_boundaries, start=1):
        coords[0, k] = torch.tensor([d, 0.0, 0.0], dtype=torch.float64)
    return coords


def _distances(coords):
    # Not torch.cdist: for more than 25 points it takes a matrix-product form, off by rounding at a boundary.
    return ((coords[..., :, None, :] - coords[..., None, :, :]) ** 2).sum(-1).sqrt()


def test_alphafold2_and_openfold_presets_are_their_distogram_heads():
    # AlphaFold 2's distogram head config (first_break 2.3125, last_break 21.6875, num_bins 64), as OpenFold's.
    assert symfocal.BIN_PRESETS["alphafold2"][:3] == (2.3125, 21.6875, 64)
    assert symfocal.BIN_PRESETS["openfold"] == symfocal.BIN_PRESETS["alphafold2"]
    coords = _coords(2.3125, 2.625, 21.6875, 1.0, 30.0)
    # OpenFold's distogram_loss: squared distances against the squared boundaries, counted when above.
    boundaries = torch.linspace(2.3125, 21.6875, 63, dtype=torch.float64) ** 2
    d2 = ((coords[..., None, :] - coords[..., None, :, :]) ** 2).sum(-1, keepdims=True)
    expected = (d2 > boundaries).sum(-1)
    for preset in ("alphafold2", "openfold", None):
        assert torch.equal(symfocal.distogram_bins(coords, preset=preset).long(), expected)


def test_boltz1_preset_is_boltz1s_featurizer():
    coords = _coords(2.0, 22.0, 2.3175, 12.0, 40.0)
    # Boltz-1: torch.linspace(min_dist=2, max_dist=22, num_bins - 1), the bin the count of boundaries below.
    boundaries = torch.linspace(2.0, 22.0, 63, dtype=torch.float64)
    expected = (_distances(coords).unsqueeze(-1) > boundaries).sum(-1)
    bins = symfocal.distogram_bins(coords, preset="boltz1")
    assert torch.equal(bins.long(), expected)
    assert bins.max() == 63 and bins[0, 0, 1] == 0  # 2.0 Å exactly: not above the first boundary


def test_trrosetta_preset_is_trrosettas_37_classes():
    coords = _coords(2.0, 2.5, 19.5, 20.0, 1.5, 25.0, 7.25)
    # trRosetta's data pipeline: np.digitize over linspace(dmin=2, dmax=20, nbins + 1), beyond nbins -> 0.
    dist = _distances(coords).numpy().copy()
    dist[dist < 0.001] = 999.9
    expected = np.digitize(dist, np.linspace(2.0, 20.0, 37)).astype(np.uint8)
    expected[expected > 36] = 0
    bins = symfocal.distogram_bins(coords, preset="trrosetta")
    L = coords.shape[1]
    off_diagonal = ~torch.eye(L, dtype=torch.bool)  # trRosetta's zero distances become 999.9: bin 0 too
    assert torch.equal(bins[:, off_diagonal], torch.from_numpy(expected)[:, off_diagonal])
    assert bins[0, 0, 1] == 1 and bins[0, 0, 2] == 2 and bins[0, 0, 3] == 36 and bins[0, 0, 4] == 0
    assert bins[0, 0, 5] == 0 and bins[0, 0, 6] == 0 and bins[0, 0, 7] == 11
    assert bins.max() <= 36


def test_bad_presets_name_themselves():
    coords = _coords()
    with pytest.raises(ValueError, match="preset must be one of 'alphafold2'"):
        symfocal.distogram_bins(coords, preset="af3")
    with pytest.raises(ValueError, match="fixes min_bin, max_bin and num_bins"):
        symfocal.distogram_bins(coords, num_bins=37, preset="boltz1")


def test_contact_probability_is_the_mass_of_the_bins_below_the_threshold():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 30, 30, 64, generator=g)
    # Boltz's contact mask: [linspace(2, 22, 63), inf] < cutoff, over the softmax.
    edges = torch.cat([torch.linspace(2.0, 22.0, 63), torch.tensor([float("inf")])])
    expected = (torch.softmax(logits, -1) * (edges < 8.0)).sum(-1)
    torch.testing.assert_close(symfocal.contact_probability(logits, "boltz1"), expected)
    # Channels first, and AlphaFold 2's bins by default: bins 0..18 end at or below 8 Å (2.3125 + 18 * 0.3125).
    af2 = symfocal.contact_probability(logits.movedim(-1, 1), class_dim=1)
    torch.testing.assert_close(af2, torch.softmax(logits, -1)[..., :19].sum(-1))
    edges = symfocal.bin_upper_edges("alphafold2")
    assert abs(edges[18] - 7.9375) < 1e-12 and edges[19] > 8.0
    # trRosetta: bin 0 (no contact) never counts; bins 1..12 end at 2.5 .. 8.0 Å.
    tr = torch.randn(1, 10, 10, 37, generator=g)
    torch.testing.assert_close(symfocal.contact_probability(tr, "trrosetta"),
                               torch.softmax(tr, -1)[..., 1:13].sum(-1))
    with pytest.raises(ValueError, match="one upper edge a bin"):
        symfocal.contact_probability(tr, "boltz1")
