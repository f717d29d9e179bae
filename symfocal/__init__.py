"""symfocal: a fused symmetric focal loss for sparse symmetric maps."""

from . import reference
from ._ops import available as extension_available
from .functional import num_valid_cells, sym_focal_loss
from .loss import SymFocalLoss
from .symmetrize import better_half, symmetrize
from .version import __version__

__all__ = ["sym_focal_loss", "SymFocalLoss", "num_valid_cells", "symmetrize", "better_half", "reference",
           "extension_available", "__version__"]
