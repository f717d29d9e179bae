"""SymFocalLoss, symmetrize and the reference's own correctness."""

import io
import pickle

import pytest
import torch

import symfocal
from helpers import random_inputs
from symfocal import reference


def test_module_equals_function():
    x, t = random_inputs((2, 30, 30))
    lengths = torch.tensor([30, 17])
    crit = symfocal.SymFocalLoss(mode="pair", gamma=1.5, min_separation=2, symmetry_weight=0.1)
    a = crit(x, t, lengths=lengths)
    b = symfocal.sym_focal_loss(x, t, mode="pair", gamma=1.5, min_separation=2, symmetry_weight=0.1,
                                lengths=lengths)
    assert torch.equal(a, b)


def test_module_repr_shows_what_differs():
    r = repr(symfocal.SymFocalLoss(mode="upper", gamma=3.0, symmetry_weight=0.5))
    assert r == "SymFocalLoss(mode='upper', gamma=3.0, symmetry_weight=0.5)"
    assert repr(symfocal.SymFocalLoss()) == "SymFocalLoss(mode='average')"


NON_DEFAULT_OPTIONS = [
    dict(mode="pair", alpha=None, pos_weight=4.0),
    dict(mode="upper", gamma=0.5, label_smoothing=0.1, min_separation=6, reduction="sum"),
    dict(mode="none", alpha=0.6, symmetry_weight=0.3, symmetry_penalty="huber", huber_delta=0.5,
         validate=False),
]


@pytest.mark.parametrize("options", NON_DEFAULT_OPTIONS)
def test_module_pickles_and_round_trips(options):
    crit = symfocal.SymFocalLoss(**options)
    x, t = random_inputs((1, 20, 20))
    clone = pickle.loads(pickle.dumps(crit))
    assert clone.options() == crit.options() and torch.equal(crit(x, t), clone(x, t))
    # The options travel in state_dict: a default module that loads it becomes the same loss.
    state = crit.state_dict()
    assert state["_extra_state"] == crit.options()
    buf = io.BytesIO()
    torch.save(state, buf)
    other = symfocal.SymFocalLoss()
    other.load_state_dict(torch.load(io.BytesIO(buf.getvalue()), weights_only=True))
    assert other.options() == crit.options() and repr(other) == repr(crit)
    assert torch.equal(other(x, t), crit(x, t))
    # Inside a model's checkpoint too.
    model = torch.nn.ModuleDict({"head": torch.nn.Linear(2, 1), "criterion": crit})
    fresh = torch.nn.ModuleDict({"head": torch.nn.Linear(2, 1), "criterion": symfocal.SymFocalLoss()})
    fresh.load_state_dict(model.state_dict())
    assert fresh["criterion"].options() == crit.options()


def test_a_state_dict_with_bad_options_is_refused():
    state = symfocal.SymFocalLoss().state_dict()
    with pytest.raises(ValueError, match="gamma"):
        symfocal.SymFocalLoss().load_state_dict({"_extra_state": dict(state["_extra_state"], gamma=-1.0)})
    with pytest.raises(ValueError, match="no option colour"):
        symfocal.SymFocalLoss().load_state_dict({"_extra_state": dict(colour="red")})


@pytest.mark.parametrize("options", NON_DEFAULT_OPTIONS + [dict()])
def test_repr_is_a_constructor_call(options):
    crit = symfocal.SymFocalLoss(**options)
    rebuilt = eval(repr(crit), {"SymFocalLoss": symfocal.SymFocalLoss})
    assert rebuilt.options() == crit.options()


def test_module_validate_false_skips_the_element_checks():
    x = torch.randn(2, 12, 12)
    bad = torch.full((2, 12, 12), 1.5)
    with pytest.raises(ValueError, match="target values"):
        symfocal.SymFocalLoss()(x, bad)
    got = symfocal.SymFocalLoss(validate=False)(x, bad)
    assert torch.equal(got, symfocal.sym_focal_loss(x, bad, validate=False))
    # What it computes is the formula at t = 1.5, not a clamped target.
    torch.testing.assert_close(got, reference.sym_focal_loss(x, bad, validate=False))
    assert got != symfocal.sym_focal_loss(x, bad.clamp(max=1.0))


@pytest.mark.parametrize("how", ["average", "upper", "lower"])
def test_symmetrize(how):
    x = torch.randn(3, 9, 9)
    s = symfocal.symmetrize(x, how)
    assert torch.equal(s, s.transpose(-1, -2))
    if how == "upper":
        assert torch.equal(torch.triu(s), torch.triu(x))
    if how == "lower":
        assert torch.equal(torch.tril(s), torch.tril(x))
    with pytest.raises(ValueError, match="how"):
        symfocal.symmetrize(x, "diagonal")


def _focal_by_hand(z, t, alpha=0.25, gamma=2.0, w=1.0):
    import math
    p = 1 / (1 + math.exp(-z))
    ce = -(w * t * math.log(p) + (1 - t) * math.log(1 - p))
    p_t = p * t + (1 - p) * (1 - t)
    a_t = 1.0 if alpha is None else alpha * t + (1 - alpha) * (1 - t)
    return a_t * (1 - p_t) ** gamma * ce


def test_reference_against_a_hand_computed_case():
    # 3x3, lengths 2, mode pair, with an l2 penalty: every term written out by hand.
    x = torch.tensor([[0.5, -1.0, 2.0], [0.3, 1.5, -0.7], [1.1, 0.2, -2.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    n = 2
    cells = [(i, j) for i in range(n) for j in range(n)]
    focal = sum(0.5 * (_focal_by_hand(x[i, j].item(), y[i, j].item()) +
                       _focal_by_hand(x[j, i].item(), y[i, j].item())) for i, j in cells)
    pen = (x[0, 1] - x[1, 0]).item() ** 2
    expect = focal / len(cells) + 0.3 * pen / 1
    for fn in (reference.sym_focal_loss, symfocal.sym_focal_loss):
        got = fn(x[None], y[None], mode="pair", lengths=torch.tensor([2]), symmetry_weight=0.3,
                 symmetry_penalty="l2")
        assert got.item() == pytest.approx(expect, rel=1e-12)


@pytest.fixture
def without_extension(monkeypatch):
    """As if the compiled extension had not been built: the reference serves."""
    from symfocal import _ops
    monkeypatch.setattr(_ops, "_C", None)
    monkeypatch.setattr(_ops, "LOAD_ERROR", ImportError("simulated"))
    monkeypatch.setattr(_ops, "_warned", False)


def test_fallback_warns_once_and_matches(without_extension):
    from symfocal import sigmoid
    x, t = random_inputs((2, 12, 12), dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="reference"):
        a = sigmoid.sym_focal_loss(x, t)
    b = reference.sym_focal_loss(x, t)
    assert torch.equal(a, b)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_fallback_passes_every_option(reduction, without_extension):
    """The fallback is the same loss as the fused op, every option included."""
    import warnings
    x, t = random_inputs((2, 3, 30, 30), dtype=torch.float64, target="soft")
    kw = dict(mode="pair", alpha=0.4, gamma=1.5, pos_weight=3.0, label_smoothing=0.1, min_separation=3,
              lengths=torch.tensor([30, 17]), mask=torch.rand(30, 30) < 0.8, symmetry_weight=0.7,
              symmetry_penalty="huber", huber_delta=0.8, reduction=reduction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fallback = symfocal.sym_focal_loss(x, t, **kw)
    from symfocal import _ops
    assert _ops._C is None and _ops._warned
    options = {k: v for k, v in kw.items() if k not in ("lengths", "mask")}
    fused = torch.ops.symfocal.forward(*symfocal.sigmoid.op_arguments(x, t, kw["lengths"], kw["mask"],
                                                                          **options))[0]
    torch.testing.assert_close(fallback, fused, atol=1e-12, rtol=1e-10)
    # Each option changes the result, so a fallback that dropped one would show.
    for name, plain in dict(lengths=None, mask=None, min_separation=0, label_smoothing=0.0,
                            symmetry_weight=0.0).items():
        assert not torch.allclose(reference.sym_focal_loss(x, t, **dict(kw, **{name: plain})), fallback), name


def test_num_valid_cells_is_the_mean_normalizer():
    x, t = random_inputs((3, 30, 30), dtype=torch.float64)
    kw = dict(lengths=torch.tensor([30, 12, 0]), mask=torch.rand(30, 30) < 0.7, min_separation=2, mode="upper")
    n = symfocal.num_valid_cells(x, **kw)
    total = symfocal.sym_focal_loss(x, t, reduction="sum", **kw)
    mean = symfocal.sym_focal_loss(x, t, reduction="mean", **kw)
    torch.testing.assert_close(total / n, mean, atol=1e-12, rtol=1e-10)
    assert 0 < n.item() < 30 * 30 * 3


def test_info_reports_the_build():
    from symfocal import info
    rep = info.report()
    assert rep["extension loaded"] is True
    assert rep["symfocal"] == symfocal.__version__
    assert rep["CPU kernels"].startswith("yes")
    assert rep["built against torch"] == torch.__version__
