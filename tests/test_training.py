"""Training side: network, losses, trainer (learning + resume) and ONNX export parity with torch."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch", reason="training tests need the 'train' extra (torch)")

from model.canonical import canonicalize  # noqa: E402
from model.parsers import NB201_OPS, parse_darts, parse_nb101, parse_nb201  # noqa: E402
from model.parsers.nb201 import nb201_arch_str  # noqa: E402
from model.tokenizer import encode_graphs, tokenize, tokenize_graphs  # noqa: E402
from training.data import ArchDataset  # noqa: E402
from training.export import export_onnx  # noqa: E402
from training.losses import consistency, masked_mse, pairwise_difference, squared_error  # noqa: E402
from training.network import Denormalise, FusionTransformer, NetworkConfig  # noqa: E402
from training.targets import prediction_floors  # noqa: E402
from training.trainer import Normaliser, TrainConfig, Trainer, evaluate_dataset, load_best  # noqa: E402

SMALL = {"d_model": 32, "n_layers": 1, "n_heads": 2}


def nb201_cells(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    combos = list(itertools.product(NB201_OPS, repeat=6))
    return [nb201_arch_str(combos[i]) for i in rng.choice(len(combos), size=count, replace=False)]


def synthetic_dataset(count: int, seed: int = 0) -> ArchDataset:
    """NB201 cells with a learnable accuracy-like target: more 3x3 convs, higher accuracy."""
    arch_strs = nb201_cells(count, seed)
    graphs = []
    for arch in arch_strs:
        g = parse_nb201(arch)
        graphs.append(g.renumbered(canonicalize(g).order))
    convs = np.array([a.count("nor_conv_3x3") + 0.5 * a.count("nor_conv_1x1") - a.count("none") for a in arch_strs])
    y = (60.0 + 5.0 * convs)[:, None]
    return ArchDataset(np.arange(count), arch_strs, graphs, encode_graphs(graphs), y, ["cifar10_test_acc"])


def test_padding_does_not_change_predictions() -> None:
    net = FusionTransformer(NetworkConfig(n_targets=2, **SMALL)).eval()
    g = parse_nb201(nb201_cells(1)[0])
    long = parse_darts([["sep_conv_3x3", 0]] * 8, [["max_pool_3x3", 1]] * 8)
    alone = tokenize_graphs([g])
    padded = tokenize_graphs([g, long.renumbered(canonicalize(long).order)])
    with torch.no_grad():
        a = net(*(torch.from_numpy(x) for x in (alone.tokens, alone.mask, alone.depth)))
        b = net(*(torch.from_numpy(x) for x in (padded.tokens, padded.mask, padded.depth)))
    assert padded.tokens.shape[1] == 28
    np.testing.assert_allclose(a.numpy()[0], b.numpy()[0], atol=1e-5)


def test_node_sum_readout_adds_one_term_per_real_node() -> None:
    """``node_sum`` starts as the plain readout, then adds one term per node; padding adds nothing."""
    plain = FusionTransformer(NetworkConfig(n_targets=2, **SMALL)).eval()
    summed = FusionTransformer(NetworkConfig(n_targets=2, node_sum=True, **SMALL)).eval()
    missing = summed.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert sorted(missing) == ["ln_nodes.bias", "ln_nodes.weight", "node_head.bias", "node_head.weight"]
    g = parse_nb201(nb201_cells(1)[0])
    long = parse_darts([["sep_conv_3x3", 0]] * 8, [["max_pool_3x3", 1]] * 8)
    alone = tokenize_graphs([g])
    padded = tokenize_graphs([g, long.renumbered(canonicalize(long).order)])
    torch_in = [torch.from_numpy(x) for x in (padded.tokens, padded.mask, padded.depth)]
    with torch.no_grad():
        np.testing.assert_allclose(summed(*torch_in).numpy(), plain(*torch_in).numpy(), atol=1e-6)
        summed.node_head.bias.copy_(torch.tensor([1.0, -0.5]))
        shift = (summed(*torch_in) - plain(*torch_in)).numpy()
        alone_out = summed(*(torch.from_numpy(x) for x in (alone.tokens, alone.mask, alone.depth))).numpy()
    nodes = padded.mask.sum(axis=1)
    assert nodes[0] < nodes[1] == padded.tokens.shape[1]
    np.testing.assert_allclose(shift, np.outer(nodes, [1.0, -0.5]), atol=1e-4)
    np.testing.assert_allclose(alone_out[0], summed(*torch_in).detach().numpy()[0], atol=1e-5)


def test_node_sum_network_starts_from_the_plain_pretrained_encoder(tmp_path) -> None:
    from training.pretrain import pretrain_encoder
    from training.trainer import load_encoder

    data = synthetic_dataset(64)
    path = pretrain_encoder(data, SMALL, tmp_path / "enc.pt", steps=5, seed=0, batch_size=16)
    mtime = path.stat().st_mtime_ns
    assert pretrain_encoder(data, {**SMALL, "node_sum": True}, path, steps=5, seed=0).stat().st_mtime_ns == mtime
    net = FusionTransformer(NetworkConfig(n_targets=1, node_sum=True, **SMALL))
    load_encoder(net, path)
    saved = torch.load(path, weights_only=False)["encoder"]
    assert all(torch.equal(net.state_dict()[k], v) for k, v in saved.items())


def test_losses() -> None:
    y = torch.tensor([[1.0], [2.0], [4.0]])
    present = torch.ones_like(y, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    assert float(masked_mse(y, y, present)) == 0.0
    assert float(pairwise_difference(y + 3.0, y, present, g)) == pytest.approx(0.0)  # a constant shift keeps differences
    assert float(pairwise_difference(2 * y, y, present, g)) > 0.0
    assert float(masked_mse(y + 1, y, torch.zeros_like(present))) == 0.0  # missing values do not count
    assert float(consistency(y, y + 0.5)) == pytest.approx(0.5)


def test_huber_form_of_the_squared_error() -> None:
    target = torch.zeros(4, 1)
    pred = torch.tensor([[0.05], [-0.1], [1.0], [-3.0]])
    present = torch.ones_like(target, dtype=torch.bool)
    # below delta the squared error itself; beyond it linear with slope 2 * delta: 2 * delta * (|x| - delta / 2)
    expected = (0.05**2 + 0.1**2 + 2 * 0.1 * (1.0 - 0.05) + 2 * 0.1 * (3.0 - 0.05)) / 4
    assert float(masked_mse(pred, target, present, huber_delta=0.1)) == pytest.approx(expected)
    assert float(masked_mse(pred[:2], target[:2], present[:2], huber_delta=0.1)) == pytest.approx(
        float(masked_mse(pred[:2], target[:2], present[:2]))
    )
    outlier = pred.clone().requires_grad_(True)
    masked_mse(outlier, target, present, huber_delta=0.1).backward()
    assert float(outlier.grad.abs().max()) == pytest.approx(2 * 0.1 / 4)  # an outlier pulls no harder than delta
    # the whole-network trainer's per-value form (log-latency units, no missing values)
    diff = torch.tensor([0.01, -0.2])
    assert torch.allclose(squared_error(diff), diff.pow(2))
    assert torch.allclose(squared_error(diff, 0.05), torch.tensor([0.01**2, 2 * 0.05 * (0.2 - 0.025)]))


def test_normaliser_round_trip() -> None:
    y = np.array([[90.0, 3.0], [70.0, 10.0], [10.0, 0.5]])
    targets = ["cifar10_test_acc", "latency_pixel3_ms"]
    norm = Normaliser.fit(y, targets)
    np.testing.assert_allclose(norm.decode(norm.encode(y)), y, rtol=1e-9)
    assert Normaliser.from_dict(json.loads(json.dumps(norm.to_dict())), targets).kinds.tolist() == [2, 1]


def test_accuracy_predictions_stop_at_chance() -> None:
    """A regressed log(100 - acc) above log(100 - chance) decodes to chance (10 / 1 / 0.833 %), not below it; latency and
    ordinary accuracies are untouched."""
    targets = ["cifar10_test_acc", "cifar100_test_acc", "imagenet16_test_acc", "latency_pixel3_ms"]
    norm = Normaliser(np.zeros(4), np.ones(4), np.array([2, 2, 2, 1]), prediction_floors(targets))
    low = norm.decode(np.log(np.array([[96.6, 100.0, 120.0, 1e-3]])))  # 3.4 %, 0 % (and below), 1e-3 ms
    np.testing.assert_allclose(low, [[10.0, 1.0, 100.0 / 120, 1e-3]])
    ordinary = np.array([[93.0, 70.0, 45.0, 12.0]])
    np.testing.assert_allclose(norm.decode(norm.encode(ordinary)), ordinary)
    assert prediction_floors(["latency_pixel3_ms"]).tolist() == [-math.inf]


def test_trainer_learns_and_resumes(tmp_path) -> None:
    data = synthetic_dataset(320)
    train, val = data.subset(np.arange(256)), data.subset(np.arange(256, 320))
    base = {
        "targets": ["cifar10_test_acc"],
        "split": "unused",
        "seed": 3,
        "batch_size": 64,
        "lr": 3e-3,
        "eval_every": 2,
        "threads": 1,
        "network": SMALL,
    }
    full = Trainer(TrainConfig(epochs=12, **base), train, val, tmp_path / "full")
    full.fit()
    assert full.best_score > 0.8, full.history  # the synthetic target is learnable
    assert full.history[-1]["train_loss"] < full.history[0]["train_loss"]

    # stop after 6 epochs, then continue in a fresh Trainer: the result equals the uninterrupted run
    first = Trainer(TrainConfig(epochs=12, **base), train, val, tmp_path / "resumed")
    first.cfg.epochs = 6
    first.fit()
    second = Trainer(TrainConfig(epochs=12, **base), train, val, tmp_path / "resumed")
    assert second.epoch == 6
    second.fit()
    assert [h["val_score"] for h in second.history] == pytest.approx([h["val_score"] for h in full.history], abs=1e-6)
    net, normaliser, _ = load_best(tmp_path / "resumed")
    assert evaluate_dataset(net, val, normaliser)["cifar10_test_acc"]["kendall_tau"] == pytest.approx(full.best_score, abs=1e-6)


def test_a_target_without_validation_labels_does_not_block_selection(tmp_path) -> None:
    """Few validation cells may carry no label of a sparse target (nn-Meter): the others still choose the checkpoint."""
    data = synthetic_dataset(96)
    both = ArchDataset(data.indices, data.arch_strs, data.graphs, data.encoded, np.hstack([data.y, data.y + 1]),
                       ["cifar10_test_acc", "cifar100_test_acc"])  # fmt: skip
    both.y[64:, 1] = np.nan  # no validation label for the second target
    train, val = both.subset(np.arange(64)), both.subset(np.arange(64, 96))
    cfg = TrainConfig(targets=both.target_names, split="unused", epochs=4, batch_size=32, eval_every=2, threads=1, network=SMALL)
    trainer = Trainer(cfg, train, val, tmp_path / "sparse")
    trainer.fit()
    assert all(np.isfinite(h["val_score"]) for h in trainer.history)
    assert (tmp_path / "sparse" / "best.pt").exists()
    load_best(tmp_path / "sparse")


def test_augmentation_stops_after_its_share_of_the_epochs(tmp_path) -> None:
    """``augment_until``: random orders and the consistency twin in the first epochs only, then the canonical order."""

    class RecordingTrainer(Trainer):
        def __init__(self, *args) -> None:
            self.sampled_in: list[int] = []
            super().__init__(*args)

        def _sample_orders(self, rows: np.ndarray) -> np.ndarray:
            self.sampled_in.append(self.epoch)
            return super()._sample_orders(rows)

    data = synthetic_dataset(96)
    train, val = data.subset(np.arange(64)), data.subset(np.arange(64, 96))
    cfg = TrainConfig(targets=["cifar10_test_acc"], split="unused", epochs=4, batch_size=32, eval_every=2, threads=1,
                      network=SMALL, augment_until=0.5)  # fmt: skip
    trainer = RecordingTrainer(cfg, train, val, tmp_path / "half")
    trainer.fit()
    assert sorted(set(trainer.sampled_in)) == [0, 1]  # epochs 3 and 4 train on the canonical order
    assert len(trainer.sampled_in) == 2 * 2 * 2  # 2 epochs x 2 steps x (augmented view + consistency twin)
    assert len(trainer.history) == 2


def test_graphs_of_different_sizes_train_with_augmentation(tmp_path) -> None:
    """NB101 cells prune to 2..7 nodes: augmented orders are padded to the batch length, padding left in place."""
    rng = np.random.default_rng(0)
    graphs, accuracy = [], []
    for _ in range(48):
        n = int(rng.integers(3, 8))
        matrix = np.zeros((n, n), dtype=int)
        matrix[np.arange(n - 1), np.arange(1, n)] = 1  # a chain input -> ... -> output keeps every node
        ops = ["input", *rng.choice(["conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"], n - 2).tolist(), "output"]
        g = parse_nb101(matrix.tolist(), ops)
        graphs.append(g.renumbered(canonicalize(g).order))
        accuracy.append(80.0 + n)
    assert len({g.n for g in graphs}) > 2
    data = ArchDataset(np.arange(48), [""] * 48, graphs, encode_graphs(graphs), np.array(accuracy)[:, None], ["cifar10_test_acc"])
    cfg = TrainConfig(
        targets=["cifar10_test_acc"], split="unused", epochs=2, batch_size=16, eval_every=1, threads=1, network=SMALL
    )
    Trainer(cfg, data.subset(np.arange(32)), data.subset(np.arange(32, 48)), tmp_path / "sizes").fit()
    assert (tmp_path / "sizes" / "best.pt").exists()


@pytest.mark.parametrize("node_sum", [False, True])
def test_onnx_export_matches_torch(tmp_path, node_sum: bool) -> None:
    torch.manual_seed(0)
    net = FusionTransformer(NetworkConfig(n_targets=3, node_sum=node_sum, **SMALL)).eval()
    if node_sum:  # the node head starts at zero: give it weights so its path shows in the export
        torch.nn.init.normal_(net.node_head.weight, std=0.1)
    floors = torch.tensor([45.0, -math.inf, -math.inf])  # 100 - exp(4 +- ...): about half the accuracies meet the floor
    module = Denormalise(
        net, torch.tensor([4.0, 1.0, 0.0]), torch.tensor([0.5, 0.3, 1.0]), torch.tensor([2, 1, 0]), floors
    ).eval()
    path = tmp_path / "p.onnx"
    export_onnx(module, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    nb101 = parse_nb101(
        [[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        ["input", "conv3x3-bn-relu", "maxpool3x3", "conv1x1-bn-relu", "output"],
    )
    darts = parse_darts([["sep_conv_3x3", 0], ["sep_conv_3x3", 1]] * 4, [["max_pool_3x3", 0], ["skip_connect", 1]] * 4)
    batches = [
        [parse_nb201(a) for a in nb201_cells(300)],  # real NB201 cells, 8 nodes, batch 300
        [nb101],  # batch 1, 5 nodes
        [darts, nb101, parse_nb201(nb201_cells(1)[0])],  # padded to 28 nodes
    ]
    for graphs in batches:
        tb = tokenize(encode_graphs([g.renumbered(canonicalize(g).order) for g in graphs]))
        with torch.no_grad():
            expected = module(torch.from_numpy(tb.tokens), torch.from_numpy(tb.mask), torch.from_numpy(tb.depth)).numpy()
        got = session.run(["prediction"], {"tokens": tb.tokens, "mask": tb.mask, "depth": tb.depth})[0]
        assert got.shape == (len(graphs), 3)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_pretraining_learns_structure_and_initialises_the_trainer(tmp_path) -> None:
    """Label-free pre-training learns the structural properties; a run started from it holds its encoder weights."""
    from training.pretrain import pretrain_encoder, structure_targets
    from training.trainer import load_encoder

    data = synthetic_dataset(256)
    targets, names = structure_targets(data.graphs)
    assert {"connected", "log_flops", "live_nor_conv_3x3"} <= set(names) and targets.shape == (256, len(names))
    assert np.allclose(targets.mean(axis=0), 0.0, atol=1e-5) and np.allclose(targets.std(axis=0), 1.0, atol=1e-4)

    long = pretrain_encoder(data, SMALL, tmp_path / "long.pt", steps=150, seed=0, batch_size=64, lr=3e-3)
    losses = torch.load(long, weights_only=False)["losses"]
    assert len(losses) == 150 and np.mean(losses[-20:]) < 0.4 * np.mean(losses[:5]), losses  # the properties are learnt
    mtime = long.stat().st_mtime_ns
    assert pretrain_encoder(data, SMALL, long, steps=150, seed=0).stat().st_mtime_ns == mtime  # a finished file is reused
    with pytest.raises(ValueError, match="pre-trained with"):
        pretrain_encoder(data, SMALL, long, steps=2000, seed=0)  # ...but not for other settings

    cfg = TrainConfig(targets=["cifar10_test_acc"], split="unused", epochs=1, threads=1, network=SMALL, pretrained=str(long))
    trainer = Trainer(cfg, data.subset(np.arange(192)), data.subset(np.arange(192, 256)), tmp_path / "run")
    saved = torch.load(long, weights_only=False)["encoder"]
    assert all(torch.equal(trainer.net.state_dict()[k], v) for k, v in saved.items())
    assert all(torch.equal(trainer.ema.module.state_dict()[k], v) for k, v in saved.items())

    with pytest.raises(ValueError, match="does not fit"):
        load_encoder(FusionTransformer(NetworkConfig(n_targets=1, d_model=16, n_layers=1, n_heads=2)), long)


def test_nb101_pretraining_draws_random_cells_of_the_space(tmp_path) -> None:
    """NB101 / DARTS tables label a few hundred cells: pre-training draws unlabelled random cells of the space instead."""
    from training.pretrain import pretrain_encoder, pretraining_set

    spec = ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv3x3-bn-relu", "output"])
    graphs = [parse_nb101(*spec)] * 4
    labelled = ArchDataset(np.arange(4), ["a"] * 4, graphs, encode_graphs(graphs), np.ones((4, 1)), ["nb101_cifar10_val_acc"])
    pool = pretraining_set(labelled, seed=0, random_cells=1000)
    assert len(pool.graphs) == 1000 and pool.y.shape == (1000, 0)
    assert {g.space for g in pool.graphs} == {"nb101"} and len({canonicalize(g).key for g in pool.graphs}) > 300
    again = pretraining_set(labelled, seed=0, random_cells=50).graphs
    assert [canonicalize(g).key for g in again] == [canonicalize(g).key for g in pool.graphs[:50]]
    assert pretraining_set(synthetic_dataset(8), seed=0).graphs[0].space == "nb201"  # NB201: the table is the space

    encoder = pretrain_encoder(labelled, SMALL, tmp_path / "nb101.pt", steps=5, seed=0, random_cells=1000)
    saved = torch.load(encoder, weights_only=False)
    assert saved["space"] == "nb101" and saved["graphs"] == 1000 and "max_parametric_depth" in saved["properties"]
    with pytest.raises(ValueError, match="pre-trained with"):
        pretrain_encoder(synthetic_dataset(8), SMALL, encoder, steps=5, seed=0)  # an NB101 encoder is not an NB201 one
    assert saved["property_set"] == 1
    torch.save({**saved, "property_set": 0}, encoder)  # learnt an older property set: refused, not reused
    with pytest.raises(ValueError, match="'property_set': 0"):
        pretrain_encoder(labelled, SMALL, encoder, steps=5, seed=0, random_cells=1000)


def test_export_chooses_between_runs_on_validation_only(tmp_path) -> None:
    from training.export import select_on_validation

    def run(name: str, val: float, test: float, split: str = "s.json") -> Path:
        directory = tmp_path / name
        directory.mkdir()
        (directory / "config.json").write_text(json.dumps({"split": f"/x/{split}"}))
        (directory / "metrics_test.json").write_text(json.dumps({"best_val_score": val, "test": {"t": {"kendall_tau": test}}}))
        return directory

    runs = [run("aug", 0.905, 0.95), run("noaug", 0.909, 0.90)]
    chosen, candidates = select_on_validation(runs)
    assert chosen == runs[1]  # the better validation score wins, whatever the test says
    assert [(c["run"], c["best_val_score"]) for c in candidates] == [("aug", 0.905), ("noaug", 0.909)]
    with pytest.raises(ValueError, match="share one split"):
        select_on_validation([runs[0], run("other", 0.99, 0.99, split="t.json")])
