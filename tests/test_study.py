"""The study's pipeline (examples/study) on small made-up inputs: no download needed."""

import pytest
import torch
import torch.nn.functional as F

import symfocal
from examples.realdata.stockholm import RnaMap
from examples.study import evaluate, experiment, losses, protein, report, rna
from examples.study.experiment import Grids, Runs, Seed, Task, paired_differences, run_task
from examples.study.train import Budget, Sample, batch_order, collate, train


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


def test_tuning_families_are_the_same_for_every_seed_and_in_no_part(monkeypatch):
    maps = _maps(families=40, per=3)
    tuning, rest = rna.set_aside_tuning(maps, per_family=2)
    assert {m.family for m in rna.set_aside_tuning(maps[::-1], per_family=2)[0]} == {m.family for m in tuning}
    assert len({m.family for m in tuning}) == 4 and all(sum(t.family == m.family for t in tuning) == 2 for m in tuning)
    assert not {m.family for m in tuning} & {m.family for m in rest} and len(rest) == 36 * 3
    monkeypatch.setattr(rna, "read_maps", lambda path: maps)
    a, b = rna.load(seed=0, per_family=3), rna.load(seed=1, per_family=3, train_per_family=1)
    assert a.families("tuning") == b.families("tuning") == sorted({m.family for m in tuning})
    for split in (a, b):
        parts = [set(split.families(p)) for p in ("train", "validation", "test", "tuning")]
        assert all(not parts[x] & parts[y] for x in range(4) for y in range(x + 1, 4))
    assert a.families("test") != b.families("test")
    assert len(b.train) == len(b.families("train"))  # train_per_family caps the training families


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


@pytest.mark.parametrize("trains", ["none", "average", "pair", "upper", "none_l1", "none_huber"])
@pytest.mark.parametrize("normalize", ["cells", "positives"])
def test_training_loss_fused_equals_reference(trains, normalize):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 20, 20, generator=gen, dtype=torch.float64)
    t = torch.rand(2, 20, 20, generator=gen) < 0.05
    n = torch.tensor([20, 13])
    recipe = losses.Recipe(alpha=0.75, gamma=0.5, normalize=normalize, symmetry_weight={"l1": 0.3, "huber": 2.0})
    fused = losses.training_loss(trains, recipe, min_separation=4)(x, t, n)
    ref = losses.training_loss(trains, recipe, min_separation=4, fused=False)(x, t, n)
    assert fused.item() == pytest.approx(ref.item(), rel=1e-10)
    other = losses.training_loss(trains, recipe.but(alpha=0.25), min_separation=4)(x, t, n)
    assert other.item() != pytest.approx(fused.item(), rel=1e-3)  # the recipe reaches the loss


def test_each_pos_weight_trains_at_its_own_learning_rate():
    recipe = losses.Recipe(focal_lr=1e-3, bce_lr=2e-3, bce_lrs={"bce_pw10": 5e-3})
    assert recipe.lr("bce_pw10") == 5e-3 and recipe.key("bce_pw10") == {"lr": 5e-3}
    assert recipe.lr("bce_pw1") == 2e-3 and recipe.key("bce_pw1") == {"lr": 2e-3}  # absent: bce_lr
    assert recipe.lr("none") == 1e-3


def test_every_loss_entry_names_a_trained_model_and_a_rule():
    assert len({loss.name for loss in losses.LOSSES}) == len(losses.LOSSES)
    for loss in losses.LOSSES:
        assert loss.test in ("average", "upper", "raw", "better")
        losses.training_loss(loss.trains if loss.trains != "bce_pwval" else "bce_pw10")  # builds
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


def test_protein_view_is_degraded_symmetric_and_fixed_at_test():
    gen = torch.Generator().manual_seed(0)
    chains = [_chain("a", 30, gen), _chain("b", 24, gen)]
    f_test, target, lengths = protein.make_batch(chains, -1)
    again, _, _ = protein.make_batch(chains, -1)
    step0, _, _ = protein.make_batch(chains, 0)
    step1, _, _ = protein.make_batch(chains, 1)
    assert torch.equal(f_test, again) and not torch.equal(step0, step1)
    shown = f_test[0, 1]
    assert 0.6 < shown.mean() < 0.8                   # 30 % hidden
    assert torch.equal(shown, shown.T)                 # the same pairs in both halves
    # An honest view: symmetric (cdist's rounding aside), one view of each pair.
    torch.testing.assert_close(f_test[0], f_test[0].transpose(-1, -2), rtol=1e-5, atol=1e-5)
    d = f_test[0, 0] * 10
    true_d = torch.cdist(chains[0].extra["ca"], chains[0].extra["ca"])
    off = (d - true_d).abs()[shown.bool()]
    assert 1.0 < off.mean() < 8.0                      # noisy, not exact, not garbage
    assert f_test[1, :, 24:].abs().sum() == 0 and lengths.tolist() == [30, 24]


def test_folds_cover_every_chain_but_the_tuning_ones_once():
    gen = torch.Generator().manual_seed(0)
    chains = [_chain(f"c{k}", 20, gen) for k in range(23)]
    tuning, folds = protein.folds(chains, k=5, validation=4, tuning=3)
    tuned = {s.extra["name"] for s in tuning}
    seen = []
    for train_, val, test in folds:
        names = [s.extra["name"] for s in train_], [s.extra["name"] for s in val], [s.extra["name"] for s in test]
        assert not (set(names[0]) & set(names[1]) or set(names[0]) & set(names[2]) or set(names[1]) & set(names[2]))
        assert not tuned & (set(names[0]) | set(names[1]) | set(names[2]))
        assert len(names[1]) == 4 and sum(map(len, names)) == 20
        seen += names[2]
    assert sorted(seen + sorted(tuned)) == sorted(s.extra["name"] for s in chains)


def _greedy_pairs(probs, threshold, min_separation):
    """One partner per base the slow way: the pairs at or above the threshold, best first."""
    n = probs.shape[-1]
    cand = sorted(((float(probs[i, j]), i, j) for i in range(n) for j in range(i + min_separation, n)
                   if probs[i, j] >= threshold), key=lambda c: -c[0])
    used, out = set(), set()
    for _, i, j in cand:
        if i not in used and j not in used:
            used |= {i, j}
            out.add((i, j))
    return out


def test_one_partner_keeps_each_base_once_at_every_threshold():
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(17, 17, generator=gen)
    probs = (x + x.T) / 2
    kept = evaluate.one_partner(probs, min_separation=2)
    assert torch.equal(kept, kept.T)
    assert ((kept > 0).sum(1) <= 1).all()
    for threshold in (0.02, 0.3, 0.5, 0.7, 0.9):
        got = symfocal.metrics.pairs_of(kept, threshold, min_separation=2)
        assert got == _greedy_pairs(probs, threshold, 2)


def test_early_stopping_keeps_the_best_step_and_stops_after_patience():
    samples = [rna.sample(m) for m in _maps(families=4, per=4)]
    scores = iter([0.1, 0.3, 0.2, 0.25, 0.2, 0.9, 0.9])
    seen = []

    def validate(model):
        seen.append(model.out.bias.item())
        return next(scores), 1.0

    budget = Budget(epochs=10, batch_size=4, evals_per_epoch=1, patience=3)
    model, info = train(samples, losses.training_loss("none"), features=rna.FEATURES, budget=budget, seed=0,
                        lr=1e-2, prior=0.01, validate=validate)
    assert info["curve"]["step"] == [4, 8, 12, 16, 20] and info["steps_run"] == 20  # 3 worse after the best
    assert info["best_step"] == 8 and info["best_val_f1"] == 0.3
    assert model.out.bias.item() == seen[1]  # the best step's weights are the ones kept
    assert info["curve"]["val_f1"] == [0.1, 0.3, 0.2, 0.25, 0.2] and len(info["curve"]["train_loss"]) == 5


def test_early_stopping_waits_for_the_minimum_epochs():
    samples = [rna.sample(m) for m in _maps(families=4, per=4)]
    scores = iter([0.1, 0.1, 0.1, 0.1, 0.5, 0.4, 0.4, 0.4, 0.4])
    budget = Budget(epochs=20, batch_size=4, evals_per_epoch=1, patience=2, min_epochs=6)
    _, info = train(samples, losses.training_loss("none"), features=rna.FEATURES, budget=budget, seed=0,
                    lr=1e-2, prior=0.01, validate=lambda model: (next(scores), 1.0))
    # a plateau from the first measurement: patience alone would stop at step 12; not before epoch 6
    assert info["curve"]["step"] == [4, 8, 12, 16, 20, 24, 28]
    assert info["best_step"] == 20 and info["steps_run"] == 28


def test_output_bias_starts_at_the_prior():
    from examples.study.model import PairNet
    net = PairNet(rna.FEATURES, prior=0.004)
    assert torch.sigmoid(net.out.bias).item() == pytest.approx(0.004, rel=1e-5)


def test_paired_differences_and_their_interval():
    seeds = [Seed(k, [], [], {}, ["a", "a", "b", "c"]) for k in range(3)]
    task = Task("t", seeds, [], 1, 1, 0.01, Budget(1, 1))
    gen = torch.Generator().manual_seed(0)
    per_seed = []
    for _ in seeds:
        base = torch.rand(4, generator=gen).tolist()
        per_seed.append({"focal none": {"test": {"per_sequence_f1": base}},
                         "BCE pos_weight=val": {"test": {"per_sequence_f1": base}},
                         "focal upper": {"test": {"per_sequence_f1": [v + 0.1 for v in base]}},
                         "focal none, averaged at test": {"test": {"per_sequence_f1": [v - 0.05 for v in base]}},
                         "focal pair": {"test": {"per_sequence_f1": [v + (0.2 if k < 2 else 0.0)
                                                                     for k, v in enumerate(base)]}}})
    out = {(d["name"], d["minus"]): d for d in paired_differences(task, per_seed, list(per_seed[0]), resamples=400)}
    up = out[("focal upper", "focal none")]
    assert up["mean"] == pytest.approx(0.1) and up["ci95"] == pytest.approx([0.1, 0.1])
    assert out[("focal none", "BCE pos_weight=val")]["ci95"] == [0.0, 0.0]
    pair = out[("focal pair", "focal none")]
    assert pair["mean"] == pytest.approx(0.1)
    # Family a (two sequences, +0.2 each) is resampled whole: a bootstrap mean is 0, 0.1, 0.133, 0.2, ...
    assert pair["ci95"][0] < 0.05 and pair["ci95"][1] > 0.15
    # The null control comes last: pair against none averaged at test, the same gradient trained apart.
    control = list(out)[-1]
    assert control == ("focal pair", "focal none, averaged at test") and out[control]["mean"] == pytest.approx(0.15)


def test_runs_are_kept_and_read_back(tmp_path):
    runs = Runs(tmp_path)
    calls = []
    first = runs.get({"a": 1}, lambda: calls.append(1) or {"value": 2.5})
    again = Runs(tmp_path).get({"a": 1}, lambda: calls.append(1) or {"value": 0.0})
    assert first["value"] == again["value"] == 2.5 and calls == [1]
    assert Runs(tmp_path).get({"a": 2}, lambda: {"value": 1.0})["value"] == 1.0
    for path in tmp_path.glob("*.json"):  # a record cut off while written is run again
        path.write_text(path.read_text()[:5])
    assert Runs(tmp_path).get({"a": 1}, lambda: {"value": 7.0})["value"] == 7.0
    retrained = Runs(tmp_path, recompute=True)  # --retrain: computed again and the record replaced
    assert retrained.get({"a": 1}, lambda: {"value": 9.0})["value"] == 9.0 and retrained.made == 1
    timed = Runs(tmp_path)  # a fresh study's cost counts the records read back as well as those trained
    timed.get({"b": 1}, lambda: {"train_s": 3.0})
    Runs(tmp_path).get({"b": 1}, lambda: {"train_s": 0.0})
    timed.get({"b": 1}, lambda: {"train_s": 0.0})
    assert timed.train_s == 6.0 and timed.made == 1 and timed.reused == 1
    assert Runs(tmp_path).get({"a": 1}, lambda: {"value": 0.0})["value"] == 9.0


def test_a_task_end_to_end_and_the_summary(tmp_path):
    maps = _maps(families=8, per=3)
    samples = [rna.sample(m) for m in maps]
    seeds = [Seed(k, samples[:12], samples[12:15], {"test": samples[15:21]}, [m.family for m in maps[15:21]])
             for k in (0, 1)]
    task = Task("rna", seeds, samples[21:], rna.MIN_SEPARATION, rna.FEATURES, 0.01,
                Budget(epochs=1, batch_size=4, evals_per_epoch=1, patience=1), one_partner=True)
    grids = Grids(normalize=("cells", "positives"), alpha=(0.5,), gamma=(1.0,), lr=(5e-3,),
                  symmetry_weight=(0.1, 1.0)).as_dict()
    runs = Runs(tmp_path)
    result = run_task(task, runs, grids)
    assert result["pos_weight_validation"]["chosen"] in losses.POS_WEIGHT_GRID
    assert len(result["recipe_grids"]["focal"]) == 2 and set(result["recipe_grids"]["l1_weight"]) == {"0.1", "1"}
    assert set(result["recipe_grids"]["bce_lr"]) == {f"{w:g}" for w in losses.POS_WEIGHT_GRID}
    made, again = runs.made, Runs(tmp_path)
    f1s = lambda r: [[e["test"]["per_sequence_f1"] for e in run.values()] for run in r["per_seed"]]  # noqa: E731
    assert f1s(run_task(task, again, grids)) == f1s(result) and again.made == 0  # read back, not retrained
    names = list(result["per_seed"][0])
    assert names[0] == "BCE" and "focal upper, one partner per base" in names
    for run in result["per_seed"]:
        assert run["focal pair"]["test"]["asymmetry"] == run["focal pair, better half"]["test"]["asymmetry"]
        assert run["focal pair, better half"]["how"] in ("upper", "lower")
        chosen = f"bce_pw{result['pos_weight_validation']['chosen']:g}"
        assert run["BCE pos_weight=val"]["model"] == chosen
        for entry in run.values():
            assert 0 <= entry["test"]["f1"] <= 1 and len(entry["test"]["per_sequence_f1"]) == 6
            assert 0 < entry["best_step"] <= entry["steps_run"]
    summary = report.collect(result["per_seed"], ("test",), names)
    e = summary[0]
    assert [s["seed"] for s in e["seeds"]] == [0, 1]
    assert e["mean"]["f1"] == pytest.approx((e["seeds"][0]["f1"] + e["seeds"][1]["f1"]) / 2)
    assert "predicted" not in e["seeds"][0] and len(e["seeds"][0]["per_sequence_f1"]) == 6
    assert made > 0


def test_rnafold_baseline_is_scored_like_the_models():
    pytest.importorskip("RNA", reason="viennarna (requirements-study.txt) not installed")
    m = RnaMap("F", "hairpin", "GGGGAAAACCCC", [(0, 11), (1, 10), (2, 9), (3, 8)])
    out = rna.rnafold([m])
    assert out["pairs"][0] and all(j - i >= 4 for i, j in out["pairs"][0])
    assert out["f1"] == symfocal.metrics.base_pair_scores(out["pairs"][0], m.pairs, 12)["f1"]
