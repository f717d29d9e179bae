"""symfocal: fused symmetric focal losses for square maps: sigmoid (contact maps) and softmax over bins
(distogram heads)."""

from . import reference
from ._ops import available as extension_available
from .bins import BIN_PRESETS, bin_upper_edges, contact_probability, distogram_bins
from .conformers import multi_conformer_distogram_loss
from .softmax import sym_softmax_focal_loss
from .sigmoid import num_positives, num_valid_cells, sym_focal_loss
from .loss import SymFocalLoss, SymSoftmaxFocalLoss
from .symmetrize import better_half, symmetrize
from .version import __version__

__all__ = ["sym_focal_loss", "SymFocalLoss", "sym_softmax_focal_loss", "SymSoftmaxFocalLoss", "distogram_bins",
           "BIN_PRESETS", "bin_upper_edges", "contact_probability", "multi_conformer_distogram_loss", "num_valid_cells", "num_positives", "symmetrize",
           "better_half", "reference", "extension_available", "__version__"]
