"""DistributedDataParallel on CPU (gloo, 2 processes) trains exactly like one process on the global batch:
with equal counts per rank, with the valid cells counted over all ranks, and with RetinaNet's
normalization by the positives counted over all ranks (the normalizer argument)."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import symfocal

STEPS = 3
WORLD = 2
L = 24
# Unequal cell counts per rank: rank 0 gets samples of 24 and 20, rank 1 of 9 and 5.
LENGTHS = torch.tensor([24, 20, 9, 5])


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 1, 3, padding=1))


def _data():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(4, 2, L, L, generator=g)
    y = torch.rand(4, L, L, generator=g) < 0.05
    return feats, y | y.transpose(-1, -2)


def _mean_loss(model, feats, y, lengths):
    """What one process computes on the whole batch."""
    return symfocal.SymFocalLoss(mode="pair", min_separation=1)(model(feats).squeeze(1), y, lengths=lengths)


def _global_mean_loss(model, feats, y, lengths):
    """The README's recipe: a sum, normalized by the valid cells of all ranks."""
    logits = model(feats).squeeze(1)
    n = symfocal.num_valid_cells(logits, lengths=lengths, min_separation=1, mode="pair").double()
    dist.all_reduce(n)
    total = symfocal.SymFocalLoss(mode="pair", min_separation=1, reduction="sum")(logits, y, lengths=lengths)
    return total * dist.get_world_size() / n  # the world size undoes DDP's averaging of gradients


def _positives_loss(model, feats, y, lengths):
    """What one process computes on the whole batch: the focal sum over its positives."""
    return symfocal.SymFocalLoss(mode="pair", min_separation=1, normalize="positives")(
        model(feats).squeeze(1), y, lengths=lengths)


def _global_positives_loss(model, feats, y, lengths):
    """Each rank's focal sum over the positives of all ranks (all-reduced, as mmdetection does), the
    count divided by the world size to undo DDP's averaging of gradients."""
    n = symfocal.num_positives(y, lengths=lengths, min_separation=1, mode="pair")
    dist.all_reduce(n)
    loss = symfocal.SymFocalLoss(mode="pair", min_separation=1, normalize="positives")
    return loss(model(feats).squeeze(1), y, lengths=lengths, normalizer=n / dist.get_world_size())


# recipe: (lengths, the loss on each rank, the loss of one process on the whole batch)
RECIPES = {"equal": (torch.full((4,), L), "_mean_loss", "_mean_loss"),
           "global": (LENGTHS, "_global_mean_loss", "_mean_loss"),
           "positives": (LENGTHS, "_global_positives_loss", "_positives_loss")}


def _mean_of_halves(model, feats, y, lengths):
    """Each half of the batch's own mean, averaged: what DDP with mean losses computes."""
    return sum(_mean_loss(model, feats[s], y[s], lengths[s]) for s in (slice(0, 2), slice(2, 4))) / 2


def _positives_of_halves(model, feats, y, lengths):
    """Each half of the batch normalized by its own positives, averaged: DDP without the global count."""
    return sum(_positives_loss(model, feats[s], y[s], lengths[s]) for s in (slice(0, 2), slice(2, 4))) / 2


def _train(model, loss_of, rows, lengths):
    feats, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(STEPS):
        opt.zero_grad()
        loss_of(model, feats[rows], y[rows], lengths[rows]).backward()
        opt.step()


def _worker(rank, world, port, recipe, out_path):
    torch.set_num_threads(1)  # two processes on two cores: no oversubscription
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model()
        per = 4 // world
        lengths, loss_of, _ = RECIPES[recipe]
        _train(nn.parallel.DistributedDataParallel(model), globals()[loss_of], slice(rank * per, (rank + 1) * per),
               lengths)
        if rank == 0:
            torch.save(model.state_dict(), out_path)
        # Both ranks are done before either tears its connections down (an early exit of one
        # rank can kill the other's gloo threads).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_ddp_two_processes_equal_single_process(tmp_path, recipe):
    """'equal': the same cell count on each rank, so the mean of the ranks' means is the global
    mean. 'global': unequal lengths per rank, normalized by the global count (README).
    'positives': unequal positives per rank, normalized by the global positive count."""
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(WORLD, _free_port(), recipe, str(out)), nprocs=WORLD, join=True)
    ddp_state = torch.load(out)

    lengths, _, single = RECIPES[recipe]
    model = _model()
    _train(model, globals()[single], slice(None), lengths)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, atol=1e-6, rtol=1e-5)
    assert not torch.equal(ddp_state["0.weight"], _model().state_dict()["0.weight"])  # it did train
    if recipe != "equal":
        # The ranks' own normalizations would train another model: the check can tell the two apart.
        naive = _model()
        _train(naive, _mean_of_halves if recipe == "global" else _positives_of_halves, slice(None), lengths)
        assert not torch.allclose(naive.state_dict()["0.weight"], model.state_dict()["0.weight"], atol=1e-5)
