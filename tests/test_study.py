"""The study's pipeline (examples/study) on small made-up inputs: no download needed."""

import pytest
import torch
import torch.nn.functional as F

import symfocal
from examples.realdata.stockholm import RnaMap
from examples.study import losses, protein, report, rna
from examples.study.experiment import Budget, Data, run_seed
from examples.study.train import Sample, batch_order, collate


def _maps(families=30, per=5):
    gen = torch.Generator().manual_seed(0)
    maps = []
    for f in range(families):
        for k in range(per):
            n = int(torch.randint(12, 30, (), generator=gen))
            seq = "".join("ACGU"[int(v)] for v in torch.randint(0, 4, (n,), generator=gen))
            maps.append(RnaMap(f"RF{f:05d}", f"s{k}", seq, [(0, n - 1), (1, n - 2)]))
    return maps


def test_split_by_family_keeps_families_apart_and_caps_them():
    maps = _maps()
    train, val, test = rna.split_by_family(maps, seed=3, per_family=4)
    fams = [{m.family for m in part} for part in (train, val, test)]
    assert not (fams[0] & fams[1] or fams[0] & fams[2] or fams[1] & fams[2])
    assert len(fams[0] | fams[1] | fams[2]) == 30
    assert (len(fams[0]), len(fams[1]), len(fams[2])) == (24, 3, 3)
    for part in (train, val, test):
        for f in {m.family for m in part}:
            assert sum(m.family == f for m in part) == 4
    again = rna.split_by_family(maps, seed=3, per_family=4)
    other = rna.split_by_family(maps, seed=4, per_family=4)
    assert [m.name + m.family for m in again[2]] == [m.name + m.family for m in test]
    assert {m.family for m in other[2]} != fams[2]


def test_rna_features():
    x = rna.features("GACU")
    assert x.shape == (rna.FEATURES, 4, 4)
    # Channels 0-3: residue i's one-hot, 4-7: residue j's.
    assert x[2, 0, 3] == 1 and x[4 + 3, 0, 3] == 1 and x[:8, 0, 3].sum() == 2
    assert torch.equal(x[:4].transpose(-1, -2), x[4:8])  # (i, j) and (j, i) swap the halves
    canonical = x[8]
    assert canonical[0, 2] == 1 and canonical[2, 0] == 1   # G-C
    assert canonical[0, 3] == 1                            # G-U wobble
    assert canonical[1, 3] == 1                            # A-U
    assert canonical[1, 2] == 0 and canonical[0, 1] == 0   # A-C, G-A
    assert x[9, 0, 0] == 0 and x[9, 0, 3] > x[9, 0, 1] > 0


def test_dot_bracket_pairs():
    assert rna.dot_bracket_pairs("((.((...)).))..") == [(0, 12), (1, 11), (3, 9), (4, 8)]


def test_batch_order_depends_on_the_seed_alone_and_groups_lengths():
    lengths = [int(v) for v in torch.randint(10, 200, (300,), generator=torch.Generator().manual_seed(0))]
    a = batch_order(lengths, 8, 50, seed=1)
    assert a == batch_order(lengths, 8, 50, seed=1) and a != batch_order(lengths, 8, 50, seed=2)
    assert len(a) == 50 and all(0 < len(b) <= 8 for b in a)
    spread = sum(max(lengths[k] for k in b) - min(lengths[k] for k in b) for b in a) / len(a)
    assert spread < 40  # random batches of 8 from 10..200 spread about 150


def test_collate_pads():
    s = [rna.sample(RnaMap("F", "a", "GGGAAACCC", [(0, 8), (1, 7)])), rna.sample(RnaMap("F", "b", "GAAAC", []))]
    feats, target, lengths = collate(s)
    assert feats.shape == (2, rna.FEATURES, 9, 9) and lengths.tolist() == [9, 5]
    assert target[0, 0, 8] and target[0, 8, 0] and target.sum() == 4
    assert feats[1, :, 5:].abs().sum() == 0 and feats[1, :, :, 5:].abs().sum() == 0


def test_masked_bce_is_torch_bce_over_the_valid_cells():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 12, 12, generator=gen)
    t = torch.rand(2, 12, 12, generator=gen) < 0.1
    n = torch.tensor([12, 7])
    got = losses.masked_bce(x, t, n, 30.0, min_separation=2)
    terms = []
    for b, L in enumerate(n.tolist()):
        i, j = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")
        keep = (i - j).abs() >= 2
        terms.append(F.binary_cross_entropy_with_logits(x[b, :L, :L][keep], t[b, :L, :L][keep].float(),
                                                        pos_weight=torch.tensor(30.0), reduction="none"))
    assert got.item() == pytest.approx(torch.cat(terms).mean().item(), rel=1e-6)


@pytest.mark.parametrize("trains", ["none", "average", "pair", "upper", "average_l1", "average_huber"])
def test_training_loss_fused_equals_reference(trains):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 20, 20, generator=gen, dtype=torch.float64)
    t = torch.rand(2, 20, 20, generator=gen) < 0.05
    n = torch.tensor([20, 13])
    fused = losses.training_loss(trains, min_separation=4)(x, t, n)
    ref = losses.training_loss(trains, min_separation=4, fused=False)(x, t, n)
    assert fused.item() == pytest.approx(ref.item(), rel=1e-10)


def test_every_loss_entry_names_a_trained_model_and_a_rule():
    assert len({loss.name for loss in losses.LOSSES}) == len(losses.LOSSES)
    for loss in losses.LOSSES:
        assert loss.test in ("average", "upper", "raw", "better")
        losses.training_loss(loss.trains, pos_weight=10.0)  # builds
    x = torch.randn(9, 9)
    for how in ("average", "upper", "lower"):
        p = losses.test_map(x, how)
        assert torch.equal(p, p.T)
    assert torch.equal(losses.test_map(x, "raw"), torch.sigmoid(x))


def _chain(name, L, gen):
    steps = torch.randn(L, 3, generator=gen)
    ca = torch.cumsum(3.8 * steps / steps.norm(dim=1, keepdim=True), 0)
    target = torch.cdist(ca, ca) < 8
    return Sample(None, target, protein._pairs(target), extra={"ca": ca, "name": name})


def test_protein_view_is_degraded_asymmetric_and_fixed_at_test():
    gen = torch.Generator().manual_seed(0)
    chains = [_chain("a", 30, gen), _chain("b", 24, gen)]
    f_test, target, lengths = protein.make_batch(chains, -1)
    again, _, _ = protein.make_batch(chains, -1)
    step0, _, _ = protein.make_batch(chains, 0)
    step1, _, _ = protein.make_batch(chains, 1)
    assert torch.equal(f_test, again) and not torch.equal(step0, step1)
    shown = f_test[0, 1]
    assert 0.6 < shown.mean() < 0.8                   # 30 % hidden
    assert not torch.equal(shown, shown.T)             # independently in the two halves
    d = f_test[0, 0] * 10
    true_d = torch.cdist(chains[0].extra["ca"], chains[0].extra["ca"])
    off = (d - true_d).abs()[shown.bool()]
    assert 1.0 < off.mean() < 8.0                      # noisy, not exact, not garbage
    assert f_test[1, :, 24:].abs().sum() == 0 and lengths.tolist() == [30, 24]


def test_folds_cover_every_chain_once():
    gen = torch.Generator().manual_seed(0)
    chains = [_chain(f"c{k}", 20, gen) for k in range(23)]
    seen = []
    for train, val, test in protein.folds(chains, k=5, validation=4):
        names = [s.extra["name"] for s in train], [s.extra["name"] for s in val], [s.extra["name"] for s in test]
        assert not (set(names[0]) & set(names[1]) or set(names[0]) & set(names[2]) or set(names[1]) & set(names[2]))
        assert len(names[1]) == 4 and sum(map(len, names)) == 23
        seen += names[2]
    assert sorted(seen) == sorted(s.extra["name"] for s in chains)


def test_one_seed_end_to_end_and_the_summary():
    maps = _maps(families=6, per=3)
    samples = [rna.sample(m) for m in maps]
    data = Data(train=samples[:12], validation=samples[12:15], tests={"test": samples[15:]},
                min_separation=rna.MIN_SEPARATION, features=rna.FEATURES)
    budget = Budget(steps=2, batch_size=4)
    runs = [run_seed(data, budget, seed) for seed in (0, 1)]
    assert budget.pos_weight in losses.POS_WEIGHT_GRID
    assert set(budget.pos_weight_validation) == {str(w) for w in losses.POS_WEIGHT_GRID}
    for run in runs:
        assert set(run) == {loss.name for loss in losses.LOSSES}
        # Entries that share a trained model share its raw output.
        assert run["focal pair"]["test"]["asymmetry"] == run["focal pair, better half"]["test"]["asymmetry"]
        assert run["focal pair, better half"]["how"] in ("upper", "lower")
        for entry in run.values():
            assert 0 <= entry["test"]["f1"] <= 1 and len(entry["test"]["predicted"]) == 3
    summary = report.collect(runs, ("test",))
    assert [e["name"] for e in summary] == [loss.name for loss in losses.LOSSES]
    e = summary[0]
    assert [s["seed"] for s in e["seeds"]] == [0, 1]
    assert e["mean"]["f1"] == pytest.approx((e["seeds"][0]["f1"] + e["seeds"][1]["f1"]) / 2)
    assert "predicted" not in e["seeds"][0]


def test_rnafold_baseline_is_scored_like_the_models():
    pytest.importorskip("RNA", reason="viennarna (requirements-study.txt) not installed")
    m = RnaMap("F", "hairpin", "GGGGAAAACCCC", [(0, 11), (1, 10), (2, 9), (3, 8)])
    out = rna.rnafold([m])
    assert out["pairs"][0] and all(j - i >= 4 for i, j in out["pairs"][0])
    assert out["f1"] == symfocal.metrics.base_pair_scores(out["pairs"][0], m.pairs, 12)["f1"]
