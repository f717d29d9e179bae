"""Per-channel alpha and pos_weight ([C] tensors) for [B, C, L, L] maps (several pair heads at once, as
MONAI's and kornia's focal losses take them): against the reference, and against each channel computed
on its own with that channel's scalar options; on the CPU kernels and the CUDA kernels (emulated)."""

import pytest
import torch

import cuda_emulation
import symfocal
from helpers import compare_with_reference, grad_of, random_inputs
from test_sigmoid_cuda import EMULATED

ALPHA = torch.tensor([0.25, 0.9, 0.5])
POS_WEIGHT = torch.tensor([1.0, 4.0, 0.3])


@pytest.fixture(params=["cpu", pytest.param("emulated", marks=EMULATED)])
def loss_fn(request):
    return cuda_emulation.sym_focal_loss if request.param == "emulated" else symfocal.sym_focal_loss


@pytest.mark.parametrize("mode", ["average", "pair", "upper", "none"])
@pytest.mark.parametrize("penalty", [0.0, 0.2])  # CPU: the training forward, then the backward op
def test_against_the_reference(loss_fn, mode, penalty):
    x, t = random_inputs((2, 3, 37, 37), target="soft")
    for reduction in ("mean", "none"):
        compare_with_reference(x, t, fused=loss_fn, mode=mode, alpha=ALPHA, pos_weight=POS_WEIGHT,
                               lengths=torch.tensor([37, 20]), symmetry_weight=penalty, reduction=reduction)


def test_each_channel_takes_its_own_options(loss_fn):
    x, t = random_inputs((2, 3, 40, 40), dtype=torch.float64)
    total, grad, _ = grad_of(loss_fn, x, t, alpha=ALPHA, pos_weight=POS_WEIGHT, reduction="sum")
    parts = [grad_of(loss_fn, x[:, c].contiguous(), t[:, c].contiguous(), alpha=float(ALPHA[c]),
                     pos_weight=float(POS_WEIGHT[c]), reduction="sum") for c in range(3)]
    torch.testing.assert_close(total, sum(p[0] for p in parts), rtol=1e-12, atol=0)
    torch.testing.assert_close(grad, torch.stack([p[1] for p in parts], 1), rtol=1e-10, atol=1e-14)
    # A leading batch dim before the channels, and only one of the two per channel.
    x5, t5 = random_inputs((2, 2, 3, 20, 20), dtype=torch.float64)
    compare_with_reference(x5, t5, fused=loss_fn, alpha=ALPHA, pos_weight=2.0)
    compare_with_reference(x5, t5, fused=loss_fn, alpha=None, pos_weight=POS_WEIGHT)


def test_bad_channel_tensors_name_themselves():
    x, t = random_inputs((2, 3, 16, 16))
    with pytest.raises(ValueError, match=r"alpha as a tensor must have shape \[C\]"):
        symfocal.sym_focal_loss(x, t, alpha=torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="alpha values must be in"):
        symfocal.sym_focal_loss(x, t, alpha=torch.tensor([0.5, 1.5, 0.2]))
    with pytest.raises(ValueError, match="pos_weight values must be finite and > 0"):
        symfocal.sym_focal_loss(x, t, pos_weight=torch.tensor([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="pos_weight as a tensor must be one real value a channel"):
        symfocal.sym_focal_loss(x, t, pos_weight=torch.ones(3, 1))
    with pytest.raises(ValueError, match="alpha is on meta"):
        symfocal.sym_focal_loss(x, t, alpha=torch.ones(3, device="meta"))
    with pytest.raises(ValueError, match="must not require grad"):
        symfocal.sym_focal_loss(x, t, alpha=torch.full((3,), 0.5, requires_grad=True))
    with pytest.raises(ValueError, match=r"\[C\] for logits \[\.\.\., C, L, L\]"):
        symfocal.sym_focal_loss(x[0, 0], t[0, 0], alpha=torch.tensor([0.5]))


def test_module_takes_channel_tensors():
    x, t = random_inputs((2, 3, 16, 16))
    module = symfocal.SymFocalLoss(alpha=ALPHA, pos_weight=POS_WEIGHT)
    assert "alpha=tensor(" in repr(module)
    torch.testing.assert_close(module(x, t), symfocal.reference.sym_focal_loss(x, t, alpha=ALPHA,
                                                                                 pos_weight=POS_WEIGHT))
