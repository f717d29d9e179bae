"""The one network every loss of the study trains: a small dilated 2-D residual CNN over pair
features, as UFold and SPOT-RNA use (much smaller: the study runs on two CPU cores).

Its output is not symmetric by construction: the pair features of (i, j) and (j, i) differ
(the outer concatenation puts residue i's channels first), so how a loss uses the symmetry is
what decides how symmetric the prediction comes out.
"""

from __future__ import annotations

import math

import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels: int, dilation: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        # No normalization layer: in a padded batch its statistics would mix in the padding.
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(torch.relu(x))))


def prior_logit(prior: float) -> float:
    return math.log(prior / (1 - prior))


class PairNet(nn.Module):
    """[B, F, L, L] pair features -> [B, L, L] logits."""

    def __init__(self, features: int, channels: int = 16, dilations=(1, 2, 4, 8), prior: float = 0.01):
        super().__init__()
        self.inp = nn.Conv2d(features, channels, 1)
        self.blocks = nn.Sequential(*[Block(channels, d) for d in dilations])
        self.out = nn.Conv2d(channels, 1, 1)
        # The output starts at the training maps' density (RetinaNet's prior initialization):
        # a start far from it spends the first steps moving every cell's logit together.
        nn.init.constant_(self.out.bias, prior_logit(prior))
        # oneDNN's convolutions on the CPU run about twice as fast on channels-last tensors.
        self.to(memory_format=torch.channels_last)

    def forward(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        return self.out(torch.relu(self.blocks(self.inp(x)))).squeeze(1)
