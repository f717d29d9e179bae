"""Distance bins of distogram heads: the targets of the softmax loss from coordinates, as each
structure model bins them (a boundary off by one bin or one convention is a silent bug), and the
contact probability of a predicted distogram."""

from __future__ import annotations

import torch

__all__ = ["BIN_PRESETS", "distogram_bins", "bin_upper_edges", "contact_probability"]

# (min_bin, max_bin, num_bins, scheme) of each project's distogram head.
#   "above": num_bins - 1 boundaries linspace(min_bin, max_bin); bin k holds the distances above
#            exactly k of them (bin 0 closer than min_bin, the last beyond max_bin). AlphaFold 2 /
#            OpenFold (distogram head: 2.3125-21.6875 Å, 64 bins) and Boltz-1 (2-22 Å, 64 bins).
#   "trrosetta": 36 bins of 0.5 Å over [2, 20) Å, each closed below, as bins 1..36, and bin 0 for
#            "no contact" (20 Å and beyond, and closer than 2 Å): trRosetta's 37 classes.
BIN_PRESETS = {
    "alphafold2": (2.3125, 21.6875, 64, "above"),
    "openfold": (2.3125, 21.6875, 64, "above"),
    "boltz1": (2.0, 22.0, 64, "above"),
    "trrosetta": (2.0, 20.0, 37, "trrosetta"),
}


def _scheme(preset, min_bin, max_bin, num_bins):
    if preset is None:
        return (2.3125 if min_bin is None else min_bin, 21.6875 if max_bin is None else max_bin,
                64 if num_bins is None else num_bins, "above")
    if preset not in BIN_PRESETS:
        raise ValueError(f"preset must be one of {', '.join(repr(p) for p in BIN_PRESETS)}, got {preset!r}")
    if (min_bin, max_bin, num_bins) != (None, None, None):
        raise ValueError(f"preset={preset!r} fixes min_bin, max_bin and num_bins: give either a preset or them")
    return BIN_PRESETS[preset]


def distogram_bins(coords: torch.Tensor, min_bin: float | None = None, max_bin: float | None = None,
                   num_bins: int | None = None, *, preset: str | None = None) -> torch.Tensor:
    """Distance bins of every pair of points, ``[..., L, 3] -> uint8 [..., L, L]``.

    Without a ``preset``: OpenFold's ``distogram_loss`` binning, the squared distance compared
    with the squared boundaries ``linspace(min_bin, max_bin, num_bins - 1)`` (defaults 2.3125,
    21.6875, 64); bin k holds the pairs with k boundaries below their distance. ``preset``:
    ``"alphafold2"`` / ``"openfold"``, ``"boltz1"`` or ``"trrosetta"`` (see ``BIN_PRESETS``)."""
    if not isinstance(coords, torch.Tensor) or not coords.dtype.is_floating_point:
        raise TypeError(f"coords must be a floating torch.Tensor, got "
                        f"{coords.dtype if isinstance(coords, torch.Tensor) else type(coords).__name__}")
    if coords.dim() < 2 or coords.shape[-1] != 3:
        raise ValueError(f"coords must have shape [..., L, 3], got {tuple(coords.shape)}")
    min_bin, max_bin, num_bins, scheme = _scheme(preset, min_bin, max_bin, num_bins)
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or not 2 <= num_bins <= 256:
        raise ValueError(f"num_bins must be an int in [2, 256] (the bins fit uint8), got {num_bins!r}")
    if not min_bin < max_bin:
        raise ValueError(f"min_bin must be below max_bin, got {min_bin} and {max_bin}")
    d2 = ((coords[..., :, None, :] - coords[..., None, :, :]) ** 2).sum(-1)
    if scheme == "trrosetta":
        edges = torch.linspace(min_bin, max_bin, num_bins, device=coords.device, dtype=coords.dtype) ** 2
        # The number of edges at or below d2 (bins closed below); beyond the last edge: no contact.
        bins = torch.bucketize(d2, edges, right=True)
        return torch.where(bins > num_bins - 1, 0, bins).to(torch.uint8)
    boundaries = torch.linspace(min_bin, max_bin, num_bins - 1, device=coords.device, dtype=coords.dtype) ** 2
    # The number of boundaries strictly below d2, without a [..., L, L, num_bins - 1] comparison.
    return torch.bucketize(d2, boundaries, right=False).to(torch.uint8)


def bin_upper_edges(preset: str | None = None, *, min_bin: float | None = None, max_bin: float | None = None,
                    num_bins: int | None = None) -> torch.Tensor:
    """The distance (Å) each bin of a scheme ends at, float64 ``[num_bins]``: inf for the open last
    bin (and for trRosetta's bin 0, "no contact")."""
    min_bin, max_bin, num_bins, scheme = _scheme(preset, min_bin, max_bin, num_bins)
    inf = torch.tensor([float("inf")], dtype=torch.float64)
    if scheme == "trrosetta":
        return torch.cat([inf, torch.linspace(min_bin, max_bin, num_bins, dtype=torch.float64)[1:]])
    return torch.cat([torch.linspace(min_bin, max_bin, num_bins - 1, dtype=torch.float64), inf])


def contact_probability(distogram_logits: torch.Tensor, bins: str | torch.Tensor | None = None, *,
                        threshold: float = 8.0, class_dim: int = -1) -> torch.Tensor:
    """P(distance < threshold) of each pair: the softmax mass of the bins that end at or below
    ``threshold`` Å. ``bins``: a preset name (default AlphaFold 2's bins) or the bins' upper edges
    (``bin_upper_edges``). Returns the map without the bin dim, in float32 (float64 for float64)."""
    if not isinstance(distogram_logits, torch.Tensor) or not distogram_logits.dtype.is_floating_point:
        raise TypeError("distogram_logits must be a floating torch.Tensor")
    edges = bins if isinstance(bins, torch.Tensor) else bin_upper_edges(bins)
    num_bins = distogram_logits.shape[class_dim]
    if edges.dim() != 1 or edges.numel() != num_bins:
        raise ValueError(f"bins must give one upper edge a bin: {num_bins} bins in the logits, got "
                         f"{tuple(edges.shape)} edges")
    acc = torch.float64 if distogram_logits.dtype == torch.float64 else torch.float32
    probs = torch.softmax(distogram_logits.to(acc), dim=class_dim)
    below = (edges.to(device=probs.device) <= threshold).to(acc)
    shape = [1] * probs.dim()
    shape[class_dim] = num_bins
    return (probs * below.reshape(shape)).sum(class_dim)
