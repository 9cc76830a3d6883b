"""Whole-network latency training pieces: leave-one-family-out splits and the readout variants."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from model.network_tokenizer import GRAPH_FEATURE_DIM, NETWORK_TOKEN_DIM, REPEAT_COLUMN  # noqa: E402
from training.latency_data import (  # noqa: E402
    aligned_split,
    hop_neighbours,
    in_domain_pretraining_split,
    in_domain_split,
    leave_out_split,
    pretraining_split,
    subsample_train,
    train_ids_below,
)
from training.latency_trainer import LatencyTrainConfig  # noqa: E402
from training.whole_network import READOUTS, WholeNetworkTransformer  # noqa: E402

FAMILIES = np.array(["resnet"] * 10 + ["vgg"] * 7 + ["vit"] * 5 + ["swin"] * 4)


@pytest.mark.parametrize("val_family", [False, True])
def test_leave_out_split_is_disjoint_and_tests_exactly_the_family(val_family: bool) -> None:
    for seed in range(4):
        split = leave_out_split(FAMILIES, "vit", seed, val_family=val_family)
        assert set(FAMILIES[split.test]) == {"vit"} and len(split.test) == 5
        parts = [set(split.train.tolist()), set(split.val.tolist()), set(split.test.tolist())]
        assert sum(len(p) for p in parts) == len(FAMILIES) == len(set().union(*parts))
        assert "vit" not in set(FAMILIES[split.train]) | set(FAMILIES[split.val])


def test_subsampled_training_keeps_validation_and_test_and_a_share_of_each_family() -> None:
    families = np.repeat(np.array(["a", "b", "c"]), [100, 40, 60])
    split = in_domain_split(families, 0)
    half = subsample_train(split, families, 0.5)
    assert half.name == "in_domain_seed0_train50pct"
    np.testing.assert_array_equal(half.val, split.val)
    np.testing.assert_array_equal(half.test, split.test)
    assert set(half.train) < set(split.train)
    for family in "abc":
        assert (families[half.train] == family).sum() == round(0.5 * (families[split.train] == family).sum())
    assert subsample_train(split, families, 1.0) is split
    with pytest.raises(ValueError, match="fraction"):
        subsample_train(split, families, 0.0)


def test_training_on_the_networks_before_an_extension_keeps_the_whole_splits_validation_and_test() -> None:
    families = np.repeat(np.array(["a", "b"]), [60, 40])
    ids = np.arange(100)
    split = in_domain_split(families, 0)
    before = train_ids_below(split, ids, 70)
    assert before.name == "in_domain_seed0_trainidsbelow70"
    np.testing.assert_array_equal(before.val, split.val)
    np.testing.assert_array_equal(before.test, split.test)
    assert set(before.train.tolist()) == {r for r in split.train.tolist() if r < 70}
    assert 0 < len(before.train) < len(split.train)


def test_a_split_on_another_device_follows_the_source_split_by_network_id() -> None:
    source_ids = np.arange(20)
    source = in_domain_split(np.array(["a", "b"] * 10), 0)
    target_ids = np.array([3, 0, 19, 7, 25, 12, 5])  # another device measured part of the networks, plus one more
    split = aligned_split(target_ids, source_ids, source, "other")
    for rows, part in ((split.train, source.train), (split.val, source.val), (split.test, source.test)):
        assert set(target_ids[rows]) - {25} == set(target_ids) & set(source_ids[part])
    assert 25 in target_ids[split.train]
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(len(target_ids)))


def test_family_validation_holds_out_one_whole_other_family() -> None:
    held = set()
    for seed in range(12):
        split = leave_out_split(FAMILIES, "vit", seed, val_family=True)
        (family,) = set(FAMILIES[split.val])
        assert len(split.val) == list(FAMILIES).count(family)
        assert family not in set(FAMILIES[split.train])
        assert family in split.name
        held.add(family)
    assert held == {"resnet", "vgg", "swin"}  # the seed varies which one


def test_pretraining_on_another_device_never_sees_the_held_out_or_the_validation_family() -> None:
    source = np.array(["resnet"] * 6 + ["vit"] * 3 + ["unet"] * 4 + ["vgg"] * 5 + ["swin"] * 2)  # one family more
    for seed in range(6):
        split = leave_out_split(FAMILIES, "vit", seed, val_family=True)
        (val_family,) = set(FAMILIES[split.val])
        first = pretraining_split(source, FAMILIES, split)
        assert set(source[first.train]) == {"resnet", "unet", "vgg", "swin"} - {val_family}
        assert set(source[first.val]) == {val_family} and len(first.val) == list(source).count(val_family)
        assert len(first.test) == 0 and first.name == f"{split.name}__pretrain"
    with pytest.raises(ValueError, match="validation family of its own"):
        pretraining_split(source, FAMILIES, leave_out_split(FAMILIES, "vit", 0))
    with pytest.raises(ValueError, match="no network of the validation family"):
        pretraining_split(np.array(["unet"] * 3), FAMILIES, leave_out_split(FAMILIES, "vit", 0, val_family=True))


def test_metrics_of_no_networks_are_empty_not_nan() -> None:
    from training.latency_metrics import latency_metrics

    assert latency_metrics(np.array([]), np.array([])) == {"n": 0.0}


def _inputs(batch: int = 2, length: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    tokens = torch.rand(batch, length, NETWORK_TOKEN_DIM, generator=generator)
    return tokens, torch.ones(batch, length, dtype=torch.bool), torch.rand(batch, GRAPH_FEATURE_DIM, generator=generator)


def _model(readout: str) -> WholeNetworkTransformer:
    torch.manual_seed(0)
    model = WholeNetworkTransformer(LatencyTrainConfig().network_config(), readout).eval()
    with torch.no_grad():  # make the correction head live, so a readout that uses it shows it
        model.correction[-1].weight.normal_()
    return model


@pytest.mark.parametrize("readout", ["additive", "local_additive", "cached_additive"])
def test_additive_readouts_ignore_the_whole_graph_features(readout: str) -> None:
    tokens, mask, features = _inputs()
    model = _model(readout)
    assert torch.equal(model(tokens, mask, features), model(tokens, mask, features * 0 + 5))
    assert not torch.equal(*(_model("contextual")(tokens, mask, f) for f in (features, features * 0 + 5)))


def test_local_additive_is_a_sum_of_independent_per_op_costs() -> None:
    """Each op's cost depends on its own token only: the network's latency is the sum over its ops."""
    tokens, mask, features = _inputs(batch=1)
    model = _model("local_additive")
    whole = model(tokens, mask, features).exp()
    parts = sum(model(tokens[:, i : i + 1], mask[:, i : i + 1], features).exp() for i in range(tokens.shape[1]))
    assert whole.item() == pytest.approx(parts.item(), rel=1e-5)
    contextual = _model("contextual")
    assert contextual(tokens, mask, features).item() != pytest.approx(
        sum(contextual(tokens[:, i : i + 1], mask[:, i : i + 1], features).exp().item() for i in range(6)), rel=1e-3
    )


@pytest.mark.parametrize("readout", ["additive", "local_additive", "contextual"])
def test_a_repeated_node_costs_its_compute_and_memory_that_many_times_and_its_overhead_once(readout: str) -> None:
    """Tokenizer 9's repeat column (a recurrent step run D*T times): ln(repeat) is added to the node's compute and
    memory terms and to nothing else; the encoder never reads the column."""
    tokens, mask, features = _inputs(batch=1)
    tokens[..., REPEAT_COLUMN] = 0.0
    repeated = tokens.clone()
    repeated[0, 2, REPEAT_COLUMN] = float(np.log2(40.0)) / 16.0
    model = _model(readout)
    with torch.no_grad():
        x, terms, _ = model.node_costs(tokens, mask)
        x_repeated, terms_repeated, _ = model.node_costs(repeated, mask)
    assert torch.equal(x, x_repeated)
    shift = terms_repeated - terms
    assert shift[0, 2, :2].tolist() == pytest.approx([np.log(40.0)] * 2, rel=1e-5)
    assert shift[0, 2, 2].item() == 0.0 and torch.equal(shift[0, [0, 1, 3, 4, 5]], torch.zeros(5, 3))
    assert model(repeated, mask, features).item() > model(tokens, mask, features).item()


def test_cached_additive_reads_a_repeated_nodes_bytes_once_then_at_its_own_rate() -> None:
    """"cached_additive": a node run 40 times pays its compute 40 times, its bytes once at the memory rate and 39
    more times at that rate times the learned re-read factor (1 when untrained); a node run once has no re-read
    term, so it costs what "additive" would make it."""
    tokens, mask, features = _inputs(batch=1)
    tokens[..., REPEAT_COLUMN] = 0.0
    repeated = tokens.clone()
    repeated[0, 2, REPEAT_COLUMN] = float(np.log2(40.0)) / 16.0
    model = _model("cached_additive")
    with torch.no_grad():
        x, terms, cost = model.node_costs(tokens, mask)
        _, terms_repeated, _ = model.node_costs(repeated, mask)
        rates = model.node_rates(model.ln_nodes(x))
    assert terms.shape == (1, 6, 4)
    assert terms[..., 2].max().item() < -1e3  # no re-reads anywhere
    once = torch.logsumexp(terms[..., [0, 1, 3]], dim=-1)
    assert torch.allclose(cost, once, atol=1e-6)
    shift = terms_repeated[0, 2] - terms[0, 2]
    assert shift[0].item() == pytest.approx(np.log(40.0), rel=1e-5)
    assert shift[1].item() == 0.0 and shift[3].item() == 0.0
    assert torch.equal(rates[..., 3], torch.zeros(1, 6))  # untrained: re-reads cost what first reads do
    assert terms_repeated[0, 2, 2].item() == pytest.approx(terms[0, 2, 1].item() + np.log(39.0), rel=1e-5)
    additive = _model("additive")
    additive.load_state_dict({k: v[:3] if k.startswith("node_rates") else v for k, v in model.state_dict().items()})
    with torch.no_grad():
        assert model(repeated, mask, features).item() == pytest.approx(additive(repeated, mask, features).item(), rel=1e-5)
    with torch.no_grad():  # a cheaper re-read factor makes the repeated network cheaper; the single-run one is untouched
        before = [model(t, mask, features).item() for t in (tokens, repeated)]
        model.node_rates.bias[3] -= 2.0
        after = [model(t, mask, features).item() for t in (tokens, repeated)]
    assert after[0] == before[0] and after[1] < before[1]


def test_padding_does_not_change_any_readout() -> None:
    tokens, mask, features = _inputs(batch=1)
    padded = torch.cat([tokens, torch.rand(1, 3, NETWORK_TOKEN_DIM)], dim=1)
    padded_mask = torch.cat([mask, torch.zeros(1, 3, dtype=torch.bool)], dim=1)
    for readout in READOUTS:
        model = _model(readout)
        assert model(tokens, mask, features).item() == pytest.approx(model(padded, padded_mask, features).item(), rel=1e-5)


def test_hop_neighbours_follow_edges_both_ways_up_to_the_hop_count() -> None:
    src, dst = np.array([0, 1, 2, 3, 0]), np.array([1, 2, 3, 4, 2])  # a chain 0-1-2-3-4 and a skip 0->2
    one = hop_neighbours(5, src, dst, 1).toarray()
    assert [set(np.flatnonzero(row)) for row in one] == [{0, 1, 2}, {0, 1, 2}, {0, 1, 2, 3}, {2, 3, 4}, {3, 4}]
    two = hop_neighbours(5, src, dst, 2).toarray()
    assert set(np.flatnonzero(two[4])) == {2, 3, 4} and set(np.flatnonzero(two[0])) == {0, 1, 2, 3}
    assert (two == two.T).all() and hop_neighbours(5, src, dst, 3).toarray().all()


def test_attention_within_hops_ignores_nodes_further_away() -> None:
    """With a neighbour mask a node's cost reads only its neighbours: changing a far node's token leaves it alone."""
    tokens, mask, features = _inputs(batch=1)
    neighbours = torch.from_numpy(hop_neighbours(6, np.arange(5), np.arange(1, 6), 1).toarray())[None]  # a chain
    changed = tokens.clone()
    changed[0, 5] += 1.0
    model = _model("additive")
    near = [model.node_costs(t, mask, neighbours)[2][0] for t in (tokens, changed)]
    assert torch.equal(near[0][:4], near[1][:4]) and not torch.equal(near[0][4], near[1][4])
    everywhere = [model.node_costs(t, mask)[2][0] for t in (tokens, changed)]
    assert not torch.equal(everywhere[0][0], everywhere[1][0])
    full = torch.ones(1, 6, 6, dtype=torch.bool)  # every node a neighbour: the same as no neighbour mask
    assert torch.allclose(model(tokens, mask, features, full), model(tokens, mask, features))


def test_a_member_that_attends_within_hops_is_not_exported(tmp_path) -> None:  # noqa: ANN001
    from training.latency_export import export_ensemble

    cfg = LatencyTrainConfig(network={**LatencyTrainConfig().network, "attention_hops": 2}).network_config()
    with pytest.raises(ValueError, match="no neighbour mask"):
        export_ensemble([WholeNetworkTransformer(cfg, "additive")], tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_an_unknown_readout_is_refused() -> None:
    with pytest.raises(ValueError, match="readout must be one of"):
        WholeNetworkTransformer(LatencyTrainConfig().network_config(), "sum")


def test_the_blend_weight_is_the_validation_mape_minimiser() -> None:
    from benchmarks.onnx_latency import blend_weight

    true = np.array([1.0, 2.0, 4.0, 8.0])
    exact, off = true.copy(), true * np.array([1.3, 0.7, 1.2, 0.8])
    assert blend_weight(exact, off, true) == 0.0  # archcast exact: no trees
    assert blend_weight(off, exact, true) == 1.0  # trees exact: trees only
    high, low = true * 1.2, true / 1.2  # opposite biases cancel in the middle of the log-space blend
    assert blend_weight(high, low, true) == 0.5


def test_one_blend_weight_minimises_the_validation_mape_summed_over_splits() -> None:
    """Split A's trees are 2x off, split B's archcast 1.1x: each alone picks its exact side, together archcast."""
    from benchmarks.onnx_latency import blend_curve, blend_weight, one_blend_weight

    true = np.array([1.0, 2.0, 4.0])
    curves = [blend_curve(true, 2 * true, true), blend_curve(1.1 * true, true, true)]
    assert [blend_weight(true, 2 * true, true), blend_weight(1.1 * true, true, true)] == [0.0, 1.0]
    assert curves[0][0] == pytest.approx(0.0) and curves[1][0] == pytest.approx(10.0)
    assert one_blend_weight(curves) == 0.0
    assert one_blend_weight([curves[1]]) == 1.0


def test_an_extension_with_new_families_leaves_the_earlier_families_split_unchanged() -> None:
    base = np.array(["resnet", "vgg", "vit", "swin"] * 30)
    extended = np.concatenate([base, np.array(["unet", "fpn", "deeplab"] * 20)])  # "deeplab" sorts before "resnet"
    before, after = in_domain_split(base, 0), in_domain_split(extended, 0)
    for part in ("train", "val", "test"):
        old, new = getattr(before, part), getattr(after, part)
        np.testing.assert_array_equal(new[new < len(base)], old)
    assert set(extended[after.test]) == set(extended)


def test_a_sequence_extension_leaves_the_dense_families_split_unchanged() -> None:
    """ "rnn" and "text" sort between "fpn" and "unet": the groups, not the names, set the draw order."""
    base = np.array(["resnet", "vgg"] * 20 + ["unet", "fpn", "deeplab", "yolo"] * 20)
    extended = np.concatenate([base, np.array(["rnn", "text"] * 20)])
    before, after = in_domain_split(base, 0), in_domain_split(extended, 0)
    for part in ("train", "val", "test"):
        old, new = getattr(before, part), getattr(after, part)
        np.testing.assert_array_equal(new[new < len(base)], old)


def test_an_aligned_split_matches_ids_only_within_the_same_family() -> None:
    from training.latency_data import LatencyDataset, aligned_in_domain_split

    def dataset(ids: list[int], families: list[str]) -> LatencyDataset:
        n = len(ids)
        return LatencyDataset(np.array(ids), np.array(families), np.ones(n), np.ones(n), np.ones(n), [], [], [], np.zeros((n, 1)))

    # the source was extended with "unet" from id 40; the target continued its classifier round-robin instead
    source = dataset(list(range(60)), ["a", "b"] * 20 + ["unet"] * 20)
    target = dataset(list(range(60)), ["a", "b"] * 30)
    split = aligned_in_domain_split(target, source)
    assert all(i < 40 for i in target.ids[np.concatenate([split.val, split.test])])
    source_split = in_domain_split(source.families, 0)
    assert set(target.ids[split.test]) == {i for i in source.ids[source_split.test] if i < 40}


def test_an_aligned_split_draws_its_own_held_out_parts_for_families_the_source_never_matches() -> None:
    from training.latency_data import LatencyDataset, aligned_in_domain_split

    def dataset(ids: list[int], families: list[str]) -> LatencyDataset:
        n = len(ids)
        return LatencyDataset(np.array(ids), np.array(families), np.ones(n), np.ones(n), np.ones(n), [], [], [], np.zeros((n, 1)))

    # both hold "a" and "b" under ids 0-39; the target added "unet" from id 60, the source "unet" from id 40
    source = dataset(list(range(60)), ["a", "b"] * 20 + ["unet"] * 20)
    target = dataset(list(range(40)) + list(range(60, 110)), ["a", "b"] * 20 + ["unet"] * 50)
    split = aligned_in_domain_split(target, source)
    unet = np.flatnonzero(target.families == "unet")
    assert len(np.intersect1d(split.test, unet)) == 10 and len(np.intersect1d(split.val, unet)) == 5
    assert len(np.intersect1d(split.train, unet)) == 35
    # the matched families keep the source's placement
    source_split = in_domain_split(source.families, 0)
    assert set(target.ids[np.setdiff1d(split.test, unet)]) == {i for i in source.ids[source_split.test] if i < 40}
    # every row lands in exactly one part
    together = np.concatenate([split.train, split.val, split.test])
    assert sorted(together.tolist()) == list(range(len(target.ids)))


def test_in_domain_pretraining_on_another_device_never_sees_a_target_test_network() -> None:
    target = np.array([f"{i}:resnet" for i in range(10)] + [f"{i}:vit" for i in range(10, 20)])
    source = np.array([f"{i}:resnet" for i in range(12)] + [f"{i}:unet" for i in range(10, 16)])  # 10-11 resnet: not in target
    split = in_domain_split(np.array([k.split(":")[1] for k in target]), 0)
    first = in_domain_pretraining_split(source, target, split)
    assert set(source[first.val]) == set(target[split.val]) & set(source)
    assert set(source[first.train]).isdisjoint(set(target[split.val]) | set(target[split.test]))
    assert set(source[first.train]) | set(source[first.val]) | set(target[split.test]) >= set(source)  # nothing else left out
    assert "10:unet" in set(source[first.train])  # the same id in another family is another network
    assert len(first.test) == 0 and first.name == f"{split.name}__pretrain"
    with pytest.raises(ValueError, match="none of the target's validation networks"):
        in_domain_pretraining_split(np.array(["99:unet"]), target, split)


def test_cached_additive_re_reads_train_their_factor_not_the_memory_rate() -> None:
    """The gradient of a repeated node's re-read term reaches the re-read offset and nothing of the memory rate."""
    tokens, mask, features = _inputs(batch=1)
    tokens[..., REPEAT_COLUMN] = 0.0
    tokens[0, 2, REPEAT_COLUMN] = float(np.log2(40.0)) / 16.0
    model = _model("cached_additive")
    _, terms, _ = model.node_costs(tokens, mask)
    terms[0, 2, 2].backward()
    grad = model.node_rates.bias.grad
    assert grad[3].item() == 1.0 and grad[:3].abs().sum().item() == 0.0
