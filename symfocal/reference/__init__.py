"""SPEC.md written as plain PyTorch: the "naive" baseline and the fallback, one module a loss family.

This is how the loss is usually hand-rolled: full B×L×L intermediates, the
transpose read through a strided view, autograd for the backward pass. It is
the ground truth of the tests (run in float64) and what the benchmarks compare
the fused kernels against. It computes in the logits' dtype, as a user's own
code would.
"""

from .cells import valid_cells
from .sigmoid import focal_term, sym_focal_loss
from .softmax import softmax_focal_term, sym_softmax_focal_loss

__all__ = ["sym_focal_loss", "focal_term", "valid_cells", "sym_softmax_focal_loss", "softmax_focal_term"]
