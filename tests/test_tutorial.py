"""docs/your_data.md, run as written: its files and its commands, in order, on a tiny image
folder; then the outputs are checked against independent recomputations."""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from repmatch.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "your_data.md"
pytest.importorskip("efficientnet_lite_pytorch", reason="needs repmatch[offline] (efficientnet_lite0)")


def doc_blocks() -> tuple[dict[str, str], list[str], list[str]]:
    """``({file name: content}, [command lines], [python snippets])`` of the doc's fenced
    blocks, in order."""
    files, commands, snippets = {}, [], []
    for info, body in re.findall(r"```([^\n]*)\n(.*?)```", DOC.read_text(), flags=re.DOTALL):
        parts = info.split()
        if len(parts) == 2:  # "python mygen.py", "json run.json": a file to write
            files[parts[1]] = body
        elif parts == ["bash"]:
            commands += [line for line in body.splitlines() if line.startswith("repmatch ")]
        elif parts == ["python"]:
            snippets.append(body)
    return files, commands, snippets


def write_images(root: Path) -> None:
    """Discs of two colours (the classes) on a light background, 32×32."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    for split, n in (("train", 48), ("val", 32)):
        for c, color in enumerate(((220, 60, 40), (40, 90, 220))):
            folder = root / "images" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n // 2):
                img = np.full((32, 32, 3), 245, np.uint8)
                x, y, r = rng.integers(8, 24), rng.integers(8, 24), rng.integers(4, 8)
                img[(yy - y) ** 2 + (xx - x) ** 2 < r * r] = color
                Image.fromarray(img).save(folder / f"{i:03d}.png")


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tutorial")
    write_images(root)
    files, commands, _ = doc_blocks()
    assert set(files) == {"mygen.py", "run.json"} and len(commands) == 7, (files.keys(), commands)
    for name, body in files.items():
        (root / name).write_text(body)
    cwd = Path.cwd()
    try:
        os.chdir(root)
        for line in commands:
            assert main(shlex.split(line)[1:]) == 0, line
    finally:
        os.chdir(cwd)
    return root


def test_the_issue_config_keys_are_the_docs(tutorial: Path) -> None:
    config = json.loads((tutorial / "run.json").read_text())
    assert config["task"]["generator"] == "mygen:build" and config["task"]["references"] == "refs"
    saved = json.loads((tutorial / "runs/mine/config.json").read_text())
    assert saved["task"]["name"] == "general" and saved["task"]["noise_shape"] == [16]


def test_the_floor_is_the_loss_of_the_real_validation_set(tutorial: Path) -> None:
    from repmatch import mmd_nystrom_loss
    from repmatch.features import FeatureStore
    from repmatch.references import References, load_references

    refs = References.open(tutorial / "refs")
    val = FeatureStore(tutorial / "feats/val").read("efficientnet_lite0")
    loaded = load_references(tutorial / "refs/efficientnet_lite0")
    assert len(val) == 32  # one batch of 32: the floor is the loss of the whole set
    direct = float(mmd_nystrom_loss(val, loaded))
    assert refs.floors(["efficientnet_lite0"])["efficientnet_lite0"] == pytest.approx(direct, rel=1e-6)


def test_training_moved_the_generator_and_logged_each_step(tutorial: Path) -> None:
    from repmatch.train import latest_checkpoint, load_checkpoint

    rows = [json.loads(x) for x in (tutorial / "runs/mine/stats.jsonl").read_text().splitlines()]
    assert [r["nimg"] for r in rows if "lr" in r] == [32, 64]
    assert all(r["status"] == "ok" and r["lr"] == 1e-3 for r in rows if "lr" in r)
    state = load_checkpoint(latest_checkpoint(tutorial / "runs/mine"))
    torch.manual_seed(0)  # train() seeds weight init with config.seed (0)
    sys.path.insert(0, str(tutorial))
    try:
        import mygen
    finally:
        sys.path.remove(str(tutorial))
    init = mygen.build().state_dict()
    assert any(not torch.equal(init[k], v) for k, v in state["generator"].items())
    assert list((tutorial / "runs/mine/samples").glob("*.png"))


def test_eval_of_the_run_equals_eval_of_its_written_samples(tutorial: Path) -> None:
    """Sampling the run batch by batch gives the scores of the same samples written to .npz
    and read back through the .npz reader."""
    cwd = Path.cwd()
    os.chdir(tutorial)
    try:
        assert main(["sample", "--run-dir", "runs/mine", "--num", "32", "--out", "s32.npz"]) == 0
        assert main(["eval", "--gen", "s32.npz", "--train", "feats/train", "--val", "feats/val",
                     "--out", "eval_npz", "--num-samples", "32", "--num-projections", "64",
                     "--cross-checks", "none"]) == 0
    finally:
        os.chdir(cwd)
    by_run = json.loads((tutorial / "runs/mine/eval/eval.json").read_text())
    by_npz = json.loads((tutorial / "eval_npz/eval.json").read_text())
    assert by_run["sw"]["per_encoder"]["efficientnet_lite0"] > 0 and by_run["sw"] == by_npz["sw"]
    samples = np.load(tutorial / "samples.npz")
    assert samples["images"].shape == (16, 3, 32, 32) and samples["images"].dtype == np.uint8


def test_the_report_shows_the_run(tutorial: Path) -> None:
    html = (tutorial / "runs/mine/report.html").read_text()
    assert "efficientnet_lite0" in html and "<img" in html


def test_the_python_api_section_runs_and_both_ways_agree(tutorial: Path) -> None:
    _, _, snippets = doc_blocks()
    assert len(snippets) == 1
    cwd = Path.cwd()
    os.chdir(tutorial)
    sys.path.insert(0, str(tutorial))
    try:
        (tutorial / "api_example.py").write_text(snippets[0])
        scope = runpy.run_path(str(tutorial / "api_example.py"))
    finally:
        sys.path.remove(str(tutorial))
        os.chdir(cwd)
    general, hand_built = scope["general"], scope["hand_built"]
    assert general["step"] == hand_built["step"] == 1
    for (name, a), b in zip(general["generator"].state_dict().items(), hand_built["generator"].state_dict().values()):
        assert torch.equal(a, b), name
