"""The cell rules of both loss families (lengths, mask, separation, the triangle of mode upper) as
plain PyTorch."""

from __future__ import annotations

import torch


def _admitted(logits, lengths, mask, min_separation):
    """Cells that lengths, mask and separation admit (no triangle rule), as bool."""
    *batch, L, _ = logits.shape
    idx = torch.arange(L, device=logits.device)
    ok = torch.ones(logits.shape, dtype=torch.bool, device=logits.device)
    if min_separation > 0:
        ok = ok & ((idx[:, None] - idx[None, :]).abs() >= min_separation)
    if lengths is not None:
        lengths = lengths.to(device=logits.device, dtype=torch.long)
        if lengths.dim() == 1 and len(batch) > 1 and lengths.numel() == batch[0]:
            lengths = lengths.view(-1, *([1] * (len(batch) - 1))).expand(*batch)
        lengths = lengths.reshape(*batch, 1, 1)
        ok = ok & (idx[:, None] < lengths) & (idx[None, :] < lengths)
    if mask is not None:
        ok = ok & (mask != 0)
    return ok


def valid_cells(logits, lengths=None, mask=None, min_separation=0, mode="average"):
    """The cells that count in `mode` (SPEC.md, "A cell is valid when ...")."""
    ok = _admitted(logits, lengths, mask, min_separation)
    if mode == "upper":
        ok = ok & torch.ones_like(ok).triu()
    return ok
