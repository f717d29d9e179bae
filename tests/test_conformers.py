"""The multi-conformer distogram loss (symfocal/conformers.py) against Boltz-2's distogramv2, transcribed,
on random inputs: the loss and its gradient, on the CPU kernels and the CUDA kernels (emulated)."""

import pytest
import torch

import cuda_emulation
import symfocal
from symfocal.conformers import multi_conformer_distogram_loss
from test_sigmoid_cuda import EMULATED


def _boltz2_distogram_loss(pred, target_onehot, token_mask):
    """Boltz-2's distogram loss without aggregation, transcribed: pred [B, L, L, D, bins], target
    [B, L, L, K, bins], token_mask [B, L]. Per (conformer k, prediction d): the masked cross-entropy
    mean over pairs (the diagonal left out, 1e-5 added to the count); min over d, mean over k and b."""
    D = pred.shape[3]
    losses = []
    for k in range(target_onehot.shape[3]):
        P_k = target_onehot[:, :, :, k:k + 1, :].repeat_interleave(D, dim=3)
        errors = -torch.sum(P_k * torch.nn.functional.log_softmax(pred, dim=-1), dim=-1)  # [B, L, L, D]
        mask = token_mask[:, None, :] * token_mask[:, :, None]
        mask = mask * (1 - torch.eye(mask.shape[1])[None]).to(pred)
        mask = mask.unsqueeze(-1).repeat_interleave(D, -1)
        denom = 1e-5 + torch.sum(mask, dim=(-2, -3))
        mean = torch.sum(errors * mask, dim=-2) / denom[..., None, :]
        losses.append(torch.sum(mean, dim=-2))  # [B, D]
    batch_loss = torch.stack(losses, dim=1).min(dim=-1).values.mean(dim=1)
    return batch_loss.mean()


def _inputs(B=2, K=3, D=4, L=21, C=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, D, L, L, C, dtype=torch.float64, generator=g) * 2
    bins = torch.randint(0, C, (B, K, L, L), generator=g)
    bins = torch.minimum(bins, bins.transpose(-1, -2))  # symmetric, as distances are
    lengths = torch.tensor([L, L - 6])[:B]
    return logits, bins, lengths


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def kernels(request):
    return cuda_emulation.module() if request.param == "emulated" else None


@pytest.mark.parametrize("soft", [False, True])
def test_equals_boltz2s_distogram_loss(kernels, soft):
    logits, bins, lengths = _inputs()
    B, D, L, _, C = logits.shape
    onehot = torch.nn.functional.one_hot(bins, C).double()
    token_mask = (torch.arange(L)[None, :] < lengths[:, None]).double()
    x = logits.clone().requires_grad_(True)
    ours = multi_conformer_distogram_loss(x, onehot if soft else bins, lengths=lengths, _kernels=kernels)
    (grad,) = torch.autograd.grad(ours * 1.3, x)
    xr = logits.clone().requires_grad_(True)
    theirs = _boltz2_distogram_loss(xr.permute(0, 2, 3, 1, 4), onehot.permute(0, 2, 3, 1, 4), token_mask)
    (their_grad,) = torch.autograd.grad(theirs * 1.3, xr)
    # Boltz-2 adds 1e-5 to each count of about 400 cells: 2.5e-8 relative.
    torch.testing.assert_close(ours, theirs, rtol=1e-7, atol=0)
    torch.testing.assert_close(grad, their_grad, rtol=1e-7, atol=1e-12)
    # The minimum over predictions matters: with the first prediction alone the loss is higher.
    alone = multi_conformer_distogram_loss(logits[:, :1], onehot if soft else bins, lengths=lengths, _kernels=kernels)
    assert alone > ours


def test_options_and_mask_against_the_reference():
    logits, bins, lengths = _inputs(L=18, C=6, seed=3)
    mask = torch.rand(2, 18, 18, generator=torch.Generator().manual_seed(1)) < 0.8
    x = logits.clone().requires_grad_(True)
    kw = dict(lengths=lengths, mask=mask, mode="sum", gamma=2.0, label_smoothing=0.1, min_separation=2)
    ours = multi_conformer_distogram_loss(x, bins, **kw)
    (grad,) = torch.autograd.grad(ours, x)
    xr = logits.clone().requires_grad_(True)
    from symfocal import conformers
    theirs = conformers._reference(xr, bins, lengths, mask, None, ("sum", 2.0, 0.1, 2, "sum", "sample"), 3, 4, False)
    (their_grad,) = torch.autograd.grad(theirs, xr)
    torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=0)
    torch.testing.assert_close(grad, their_grad, rtol=1e-9, atol=1e-14)


def test_float32_and_one_conformer_is_the_per_sample_mean():
    logits, bins, lengths = _inputs(K=1, D=1)
    x = logits.float()
    one = multi_conformer_distogram_loss(x, bins, lengths=lengths)
    plain = symfocal.sym_softmax_focal_loss(x[:, 0], bins[:, 0], mode="none", min_separation=1, lengths=lengths,
                                            normalize="sample")
    assert one.dtype == torch.float32
    torch.testing.assert_close(one, plain, rtol=1e-6, atol=0)


def test_bad_shapes_name_themselves():
    logits, bins, _ = _inputs()
    with pytest.raises(ValueError, match=r"logits must have shape \[B, D, L, L, C\]"):
        multi_conformer_distogram_loss(logits[0], bins)
    with pytest.raises(ValueError, match="target must have shape"):
        multi_conformer_distogram_loss(logits, bins[:, :, :5])
    with pytest.raises(ValueError, match=r"target bin indices must be in \[0, C\)"):
        multi_conformer_distogram_loss(logits, bins + 100)
