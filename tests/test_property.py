"""Property test: fused == float64 reference over random shapes and options."""

import os

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import compare_with_reference, random_inputs

EXAMPLES = int(os.environ.get("SYMFOCAL_HYPOTHESIS_EXAMPLES", "200"))


@st.composite
def cases(draw):
    # Mostly non-empty maps of up to ~130 cells a side (four tiles and a ragged edge), the tile
    # boundaries drawn more often; an empty map (L = 0 or a batch dim of 0) one time in twenty.
    empty = draw(st.integers(0, 19)) == 0
    batch = draw(st.lists(st.integers(1, 3), min_size=0, max_size=2))
    L = draw(st.one_of(st.integers(1, 130), st.sampled_from([1, 31, 32, 33, 64, 65, 96, 97, 128, 129])))
    if empty:
        batch, L = draw(st.sampled_from([(batch, 0), ([0] + batch, L), (batch[:1] + [0], L)]))
    shape = (*batch, L, L)
    kw = dict(
        mode=draw(st.sampled_from(["average", "pair", "upper", "none"])),
        reduction=draw(st.sampled_from(["mean", "sum", "none"])),
        alpha=draw(st.one_of(st.none(), st.floats(0, 1))),
        gamma=draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.3])),
        pos_weight=draw(st.one_of(st.none(), st.floats(0.1, 10))),
        label_smoothing=draw(st.sampled_from([0.0, 0.05, 0.3])),
        min_separation=draw(st.integers(0, 8)),
        symmetry_weight=draw(st.sampled_from([0.0, 0.0, 0.5, 2.0])),
        symmetry_penalty=draw(st.sampled_from(["l1", "l2", "huber"])),
        huber_delta=draw(st.floats(0.1, 3)),
    )
    if batch and draw(st.booleans()):
        kw["lengths"] = torch.tensor(draw(st.lists(st.integers(0, L), min_size=batch[0], max_size=batch[0])),
                                     dtype=torch.long).reshape(batch[:1])
    if draw(st.booleans()):
        options = [(L, L), shape] + ([(1, L, L)] if len(shape) >= 3 else [])
        kw["mask"] = torch.rand(draw(st.sampled_from(options))) < 0.8
    target = draw(st.sampled_from(["bool", "uint8", "soft"]))
    transpose = draw(st.booleans())
    seed = draw(st.integers(0, 2**31 - 1))
    return shape, kw, target, transpose, seed


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_fused_matches_reference(case):
    shape, kw, target, transpose, seed = case
    torch.manual_seed(seed)
    x, t = random_inputs(shape, dtype=torch.float64, target=target)
    if transpose:
        x, t = x.transpose(-1, -2), t.transpose(-1, -2)
    compare_with_reference(x, t, **kw)
