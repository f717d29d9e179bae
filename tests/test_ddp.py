"""DistributedDataParallel on CPU (gloo, 2 processes) trains exactly like one process on the global batch."""

import os
import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

import symfocal

STEPS = 3


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 1, 3, padding=1))


def _data():
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(4, 2, 24, 24, generator=g)
    y = torch.rand(4, 24, 24, generator=g) < 0.05
    return feats, y | y.transpose(-1, -2)


def _train(model, feats, y):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    crit = symfocal.SymFocalLoss(mode="pair", min_separation=1)
    for _ in range(STEPS):
        opt.zero_grad()
        crit(model(feats).squeeze(1), y).backward()
        opt.step()


def _worker(rank, world, port, out_path):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model = _model()
        ddp = nn.parallel.DistributedDataParallel(model)
        feats, y = _data()
        per = feats.shape[0] // world
        shard = slice(rank * per, (rank + 1) * per)
        _train(ddp, feats[shard], y[shard])
        if rank == 0:
            torch.save(model.state_dict(), out_path)
    finally:
        dist.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_equal_single_process(tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    ddp_state = torch.load(out)

    model = _model()
    feats, y = _data()
    _train(model, feats, y)
    # Same number of valid cells on both ranks, so the mean of the ranks' means is the global mean.
    for name, value in model.state_dict().items():
        torch.testing.assert_close(ddp_state[name], value, atol=1e-6, rtol=1e-5)
    assert not torch.equal(ddp_state["0.weight"], _model().state_dict()["0.weight"])  # it did train
