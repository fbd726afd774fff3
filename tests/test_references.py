"""repmatch.references: eq. 4 joined in one place, and the training floors against the SW
metric's floors (two quantities, each against its own float64 formula)."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from _oracles import mmd_nystrom, sliced_w2_squared
from torch import nn

import repmatch
from repmatch.apps.fmnist.parts import FMNIST_NUM_CLASSES, Layout
from repmatch.apps.fmnist.task import _val_features
from repmatch.data import NpzImages
from repmatch.evaluation import EvalConfig, metric_floors, open_source
from repmatch.features import FeatureStore, extract_features
from repmatch.metrics.sliced import random_projections
from repmatch.references import (
    ClassCondition,
    FloorEstimate,
    TextCondition,
    build_references,
    reference_distance,
    training_floors,
)
from repmatch.references.floors import MAX_FLOOR_REL_STDERR, MIN_FLOOR_BATCHES
from repmatch.represent import ConditionPool, joint_features, one_hot_embedding
from repmatch.train import TrainTask
from _train_toys import register_linear_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
ENCODER = "referencestest_lin"
SRC = Path(repmatch.__file__).resolve().parent


register_linear_encoder(ENCODER, dim=3, seed=7)


def _store(root: Path, n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(root.with_suffix(".npz"), images=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8),
             labels=np.arange(n) % FMNIST_NUM_CLASSES)
    extract_features(NpzImages(root.with_suffix(".npz")), ENCODER, root, progress=False)
    return root


def _features(n: int, dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- eq. 4, written once


def test_class_and_text_conditions_join_through_joint_features() -> None:
    feats, labels = _features(10, 4, 0), torch.arange(10) % 3
    cls = ClassCondition(num_classes=3, beta=2.5)
    assert torch.equal(cls.join(feats, labels), joint_features(feats, one_hot_embedding(labels, 3), 2.5))
    emb = _features(10, 6, 1)
    text = TextCondition(encoder="t", encoder_fingerprint="t-fp", dim=6, beta=0.25)
    assert torch.equal(text.join(feats, emb), joint_features(feats, emb, 0.25))
    assert cls.join(feats, labels)[:, 4:].sum(1).tolist() == [2.5] * 10  # β·onehot(c)


def test_the_training_task_joins_through_joint_features() -> None:
    pool = ConditionPool.from_labels(torch.arange(6) % 3, 3)
    generator = nn.Linear(2, 2)
    generator.noise_shape = (2,)  # type: ignore[assignment]
    task = TrainTask(generator=generator, encode=lambda im: {"a": im.flatten(1)}, distances={"a": torch.sum},
                     floors={"a": 0.0}, conditions=pool, joint_beta=3.0)
    images, index = _features(4, 5, 2).view(4, 1, 5), torch.tensor([0, 5, 2, 2])
    expected = joint_features(images.flatten(1), pool.embedding(index), 3.0)
    assert torch.equal(task.features(images, index)["a"], expected)


def test_the_fmnist_validation_features_join_through_joint_features(tmp_path: Path) -> None:
    layout = Layout.of(tmp_path / "job")
    layout.features.mkdir(parents=True)
    _store(layout.test_features, 20, 3)
    store = FeatureStore(layout.test_features)
    got = _val_features(layout, [ENCODER], 30.0, torch.device("cpu"))[ENCODER]
    expected = joint_features(store.read(ENCODER), one_hot_embedding(store.labels.long(), FMNIST_NUM_CLASSES), 30.0)
    assert torch.equal(got, expected)


def _beta_concatenations(path: Path) -> list[int]:
    """Lines of ``path`` where ``torch.cat`` concatenates something scaled by a ``beta``."""

    def scaled_by_beta(node: ast.AST) -> bool:
        return any(
            isinstance(n, ast.BinOp) and isinstance(n.op, ast.Mult)
            and any("beta" in ast.unparse(side) for side in (n.left, n.right))
            for n in ast.walk(node)
        )

    return [
        node.lineno for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.cat" and scaled_by_beta(node)
    ]


def test_eq4_is_written_once() -> None:
    found = {str(p.relative_to(SRC)): lines for p in SRC.rglob("*.py") if (lines := _beta_concatenations(p))}
    assert list(found) == ["represent/joint.py"], found


def test_the_eq4_scan_finds_a_second_copy(tmp_path: Path) -> None:
    copy = tmp_path / "copy.py"
    copy.write_text("import torch\ndef f(x, e, beta):\n    return torch.cat([x, beta * e], dim=1)\n")
    assert _beta_concatenations(copy) == [3]


def test_the_references_verb_resolves_the_library_landmark_default(tmp_path: Path, capsys) -> None:
    import json

    from repmatch.cli import main
    from repmatch.compare import DEFAULT_NUM_LANDMARKS

    store = _store(tmp_path / "train", 8, 0)
    assert main(["references", "--features", str(store), "--out", str(tmp_path / "refs"), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["num_landmarks"] == DEFAULT_NUM_LANDMARKS


# ---------------------------------------------------------------- the training floors


def test_training_floors_are_the_mean_over_disjoint_batches_with_their_spread() -> None:
    val = {"a": _features(50, 2, 4)}
    per = [float(val["a"][i : i + 8].square().sum()) for i in range(0, 48, 8)]  # 6 batches; 2 rows left
    est = training_floors({"a": lambda x: x.square().sum()}, val, 8)
    mean = sum(per) / 6
    sd = math.sqrt(sum((v - mean) ** 2 for v in per) / 5)
    assert est.values["a"] == pytest.approx(mean, rel=1e-12)
    assert est.rel_stderr["a"] == pytest.approx(sd / math.sqrt(6) / mean, rel=1e-9)
    assert (est.batch_size, est.num_val, est.num_batches) == (8, 50, 6)
    # Fewer rows than a batch: one batch of all rows, whose spread cannot be measured.
    small = training_floors({"a": lambda x: x.square().sum()}, val, 64)
    assert small.values["a"] == pytest.approx(float(val["a"].square().sum()), rel=1e-12)
    assert small.num_batches == 1 and small.rel_stderr["a"] == math.inf


def test_floor_warnings_name_a_small_or_noisy_validation_set() -> None:
    good = FloorEstimate(batch_size=4, num_val=4 * MIN_FLOOR_BATCHES, values={"a": 1.0}, rel_stderr={"a": 0.01})
    assert good.warnings() == []
    few = FloorEstimate(batch_size=4, num_val=8, values={"a": 1.0}, rel_stderr={"a": 0.01})
    assert "2 batch(es)" in few.warnings()[0]
    noisy = FloorEstimate(batch_size=4, num_val=64, values={"a": 1.0}, rel_stderr={"a": 2 * MAX_FLOOR_REL_STDERR})
    assert "relative standard error" in noisy.warnings()[0]


def test_training_floors_name_a_missing_encoder() -> None:
    with pytest.raises(ValueError, match="missing encoder 'b'"):
        training_floors({"b": torch.sum}, {"a": _features(4, 2, 0)}, 2)
    with pytest.raises(ValueError, match="batch_size"):
        training_floors({"a": torch.sum}, {"a": _features(4, 2, 0)}, 0)


def test_training_and_metric_floors_are_two_quantities_each_its_formula(tmp_path: Path) -> None:
    """On the same real features: the training floor is eq. 3 against the Nyström reference of
    train, averaged over validation batches of the generator's batch size (so it depends on
    it); the metric floor is SW(val, train) on the whole sets. Each equals its own float64
    formula, and they differ."""
    train_dir, val_dir = _store(tmp_path / "train", 64, 5), _store(tmp_path / "val", 64, 6)
    train, val = FeatureStore(train_dir).read(ENCODER), FeatureStore(val_dir).read(ENCODER)
    refs = build_references(train, fingerprint="fp", num_landmarks=16, bandwidth_scale=(0.5, 1.0), seed=0)
    distance = {ENCODER: reference_distance(refs, "fp")}

    floors = {}
    for batch_size in (8, 32):
        per = [float(mmd_nystrom(val[i : i + batch_size].double(), refs)) for i in range(0, 64, batch_size)]
        floors[batch_size] = training_floors(distance, {ENCODER: val}, batch_size).values[ENCODER]
        assert floors[batch_size] == pytest.approx(sum(per) / len(per), rel=1e-4, abs=1e-7)
    assert floors[8] != pytest.approx(floors[32], rel=1e-2)  # the biased repulsion depends on B

    config = EvalConfig(num_samples=64, num_projections=32, seed=0)
    sources = [open_source(str(d), [ENCODER], role=r, cache_dir=tmp_path / "cache")
               for d, r in ((train_dir, "train"), (val_dir, "val"))]
    metric = metric_floors(*sources, [ENCODER], config).values[ENCODER]
    sw = math.sqrt(float(sliced_w2_squared(val.double(), train, random_projections(3, 32, 0))))
    assert metric == pytest.approx(sw, rel=1e-9)
    assert metric != pytest.approx(floors[8], rel=1e-2) and metric != pytest.approx(floors[32], rel=1e-2)
