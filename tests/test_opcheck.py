"""torch.library.opcheck on each op: schema, fake tensors, autograd registration, AOT dispatch."""

import pytest
import torch

from helpers import random_inputs


def _args(reduction, mode="average", with_extras=False):
    x, t = random_inputs((2, 20, 20), dtype=torch.float32, target="soft")
    x.requires_grad_(True)
    lengths = torch.tensor([20, 11]) if with_extras else None
    mask = (torch.rand(20, 20) < 0.9) if with_extras else None
    weight = torch.rand(20, 20) if with_extras else None
    if with_extras:
        t = torch.where(torch.rand(t.shape) < 0.1, -1.0, t)
    return (x, t, lengths, mask, weight, None, None, None, mode, 0.25, 2.0, 1.0, 0.0, 1 if with_extras else 0, 0.3,
            "l1", 1.0, reduction, "cells", -1.0 if with_extras else None)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_extras", [False, True])
def test_forward(reduction, with_extras):
    torch.library.opcheck(torch.ops.symfocal.forward.default, _args(reduction, "pair", with_extras))


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("with_extras", [False, True])
def test_backward(reduction, with_extras):
    args = _args(reduction, "average", with_extras)
    x = args[0].detach()
    loss, stats = torch.ops.symfocal.forward(x, *args[1:])
    grad = torch.randn_like(loss)
    torch.library.opcheck(torch.ops.symfocal.backward.default, (grad, x, *args[1:5], *args[6:8], stats, *args[8:]),
                          test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_forward_train(reduction):
    args = list(_args(reduction, "average", True))
    args[14] = 0.0  # no penalty: the op's domain
    # Not test_aot_dispatch_dynamic: it keeps the grad_unit output and compares it after an eager
    # backward, which (by design, see _ops.py) scales that donated buffer in place. Compiled
    # training through this op is checked against eager in test_compile.py.
    torch.library.opcheck(torch.ops.symfocal.forward_train.default, tuple(args),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))
