"""`repmatch floors` / `repmatch eval` end to end on tiny in-test encoders and .npz images.

Oracles: the pure metric functions applied directly to the features in the stores, and the
identity that real validation data scores 1.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from repmatch.cli import main
from repmatch.data import open_dataset
from repmatch.evaluation import EvalConfig, evaluate
from repmatch.features import FeatureStore, extract_features
from repmatch.metrics import FingerprintMismatchError, mmd_ratio_panel, sw_floors, sw_ratio_panel
from repmatch.represent import EncoderSpec, register_encoder

NAMES = ["evaltest_a", "evaltest_b"]
ENC = ",".join(NAMES)
SW = ["--num-projections", "64"]


class _Linear(nn.Module):
    """Average-pool to 4x4 then a fixed seeded linear map: a deterministic toy feature space."""

    def __init__(self, dim: int, seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("w", torch.randn(48, dim, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.adaptive_avg_pool2d(x, 4).flatten(1) @ self.w


for _name, _dim, _held in (("evaltest_a", 6, False), ("evaltest_b", 4, True)):
    _spec = EncoderSpec(
        name=_name,
        source="in-project",
        checkpoint="test",
        dim=_dim,
        input_size=8,
        mean=(0.0, 0.0, 0.0),
        std=(1.0, 1.0, 1.0),
        held_out=_held,
    )
    register_encoder(_spec)(lambda spec, *, weights, pretrained, _d=_dim: _Linear(_d, seed=_d))


def _npz(path: Path, seed: int, n: int, shift: int = 0) -> str:
    rng = np.random.default_rng(seed)
    images = np.clip(rng.normal(128 + shift, 40, size=(n, 8, 8, 3)), 0, 255).astype(np.uint8)
    np.savez(path, images=images)
    return str(path)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("evaldata")
    paths = {
        "train": _npz(root / "train.npz", 0, 240),
        "val": _npz(root / "val.npz", 1, 200),
        "gen": _npz(root / "gen.npz", 2, 200, shift=30),
    }
    for role in ("train", "val"):
        extract_features(
            open_dataset(paths[role]), ENC, root / f"{role}_feats", progress=False, device="cpu"
        )
        paths[f"{role}_dir"] = str(root / f"{role}_feats")
    return paths


def _feats(path: str) -> dict[str, torch.Tensor]:
    return FeatureStore(path).read()


def _floors_cli(stores: dict[str, str], out: Path, *flags: str) -> int:
    """``repmatch floors`` on the test stores, written to ``out``."""
    return main(
        ["floors", "--train", stores["train_dir"], "--val", stores["val_dir"],
         "--encoders", ENC, "--out", str(out), *flags]
    )


def test_floors_verb_stores_floors_with_fingerprints(
    stores: dict[str, str], tmp_path: Path, capsys
) -> None:
    out = tmp_path / "floors.json"
    assert _floors_cli(stores, out, *SW) == 0
    saved = json.loads(out.read_text())
    expect = sw_floors(_feats(stores["train_dir"]), _feats(stores["val_dir"]), 64, 0)
    assert saved["values"] == pytest.approx(expect, rel=1e-12)
    assert saved["fingerprints"] == FeatureStore(stores["train_dir"]).fingerprints
    assert saved["num_samples"] == 200 and saved["seed"] == 0 and saved["num_projections"] == 64
    assert "evaltest_b" in capsys.readouterr().out


def test_eval_verb_from_npz_matches_direct_metrics(
    stores: dict[str, str], tmp_path: Path, capsys
) -> None:
    floors = tmp_path / "floors.json"
    _floors_cli(stores, floors, *SW)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--gen",
                stores["gen"],
                "--train",
                stores["train_dir"],
                "--val",
                stores["val_dir"],
                "--encoders",
                ENC,
                "--out",
                str(out),
                "--floors",
                str(floors),
                *SW,
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "stored floors" in printed and "evaltest_b†" in printed
    result = json.loads((out / "eval.json").read_text())
    gen, train, val = (
        _feats(str(out / "features" / "gen")),
        _feats(stores["train_dir"]),
        _feats(stores["val_dir"]),
    )
    n = 200  # common size: train (240 rows) is subsampled by the panel's seeded choice
    direct = sw_ratio_panel(
        gen, train, val, num_projections=64, num_samples=n, held_out=["evaltest_b"]
    )
    assert result["sw"]["per_encoder"] == pytest.approx(direct["per_encoder"], rel=1e-10)
    assert result["sw"]["mean"] == pytest.approx(direct["mean"], rel=1e-10)
    assert result["sw"]["held_out_mean"] == pytest.approx(direct["held_out_mean"], rel=1e-10)
    assert result["held_out"] == ["evaltest_b"]
    mmd = mmd_ratio_panel(gen, train, val)
    assert result["mmd"]["per_encoder"] == pytest.approx(mmd["per_encoder"], rel=1e-8)
    assert min(result["sw"]["per_encoder"].values()) > 1.5  # the shifted generator is far from real
    assert (out / "sw_ratios.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| validation baseline |" in (out / "eval.md").read_text()


def test_eval_from_features_dir_without_val_uses_stored_floors(
    stores: dict[str, str], tmp_path: Path
) -> None:
    first = evaluate(
        stores["gen"],
        stores["train_dir"],
        stores["val_dir"],
        encoders=ENC,
        out_dir=tmp_path / "a",
        config=EvalConfig(num_projections=64, cross_checks=()),
        floors_path=tmp_path / "none.json",
    )
    assert "computed from val" in first["floors"]
    again = evaluate(
        str(tmp_path / "a" / "features" / "gen"),
        stores["train_dir"],
        None,
        encoders=ENC,
        out_dir=tmp_path / "b",
        config=EvalConfig(num_projections=64),
        floors_path=tmp_path / "a" / "floors.json",
    )
    assert again["sw"]["per_encoder"] == pytest.approx(first["sw"]["per_encoder"], rel=1e-12)
    assert "mmd" not in again  # cross-checks need val features


def test_real_val_scores_one_through_eval(stores: dict[str, str], tmp_path: Path) -> None:
    result = evaluate(
        stores["val_dir"],
        stores["train_dir"],
        stores["val_dir"],
        encoders=ENC,
        out_dir=tmp_path,
        config=EvalConfig(num_projections=32),
        floors_path=tmp_path / "none.json",
    )
    for key in ("sw", "mmd", "fd"):
        assert result[key]["per_encoder"] == pytest.approx(dict.fromkeys(NAMES, 1.0), rel=1e-12)


def test_stale_floors_fingerprint_is_refused(stores: dict[str, str], tmp_path: Path) -> None:
    floors = tmp_path / "floors.json"
    _floors_cli(stores, floors, *SW)
    saved = json.loads(floors.read_text())
    saved["fingerprints"]["evaltest_a"] = "evaltest_a-000000000000"
    floors.write_text(json.dumps(saved))
    with pytest.raises(FingerprintMismatchError, match="evaltest_a"):
        evaluate(
            stores["gen"],
            stores["train_dir"],
            stores["val_dir"],
            encoders=ENC,
            out_dir=tmp_path / "o",
            config=EvalConfig(num_projections=64),
            floors_path=floors,
        )


def test_mismatched_feature_fingerprints_are_refused(
    stores: dict[str, str], tmp_path: Path
) -> None:
    import shutil

    fake = tmp_path / "val_feats"
    shutil.copytree(stores["val_dir"], fake)
    manifest = json.loads((fake / "manifest.json").read_text())
    manifest["encoders"][1]["fingerprint"] = "evaltest_b-ffffffffffff"
    (fake / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(FingerprintMismatchError, match=r"evaltest_b.*val=evaltest_b-ffff"):
        evaluate(
            stores["gen"],
            stores["train_dir"],
            str(fake),
            encoders=ENC,
            out_dir=tmp_path / "o",
            config=EvalConfig(num_projections=64),
            floors_path=tmp_path / "none.json",
        )


def test_floors_with_other_settings_are_recomputed(stores: dict[str, str], tmp_path: Path) -> None:
    floors = tmp_path / "floors.json"
    _floors_cli(stores, floors, "--num-projections", "16")
    result = evaluate(
        stores["gen"],
        stores["train_dir"],
        stores["val_dir"],
        encoders=ENC,
        out_dir=tmp_path / "o",
        config=EvalConfig(num_projections=64, cross_checks=()),
        floors_path=floors,
    )
    assert "unusable: num_projections is 16" in result["floors"]


def test_missing_encoders_are_extracted_from_the_store_data(
    stores: dict[str, str], tmp_path: Path
) -> None:
    partial = tmp_path / "train_a_only"
    extract_features(
        open_dataset(stores["train"]), "evaltest_a", partial, progress=False, device="cpu"
    )
    result = evaluate(
        stores["gen"],
        str(partial),
        stores["val_dir"],
        encoders=ENC,
        out_dir=tmp_path / "o",
        config=EvalConfig(num_projections=64, cross_checks=()),
        floors_path=tmp_path / "none.json",
    )
    full = evaluate(
        stores["gen"],
        stores["train_dir"],
        stores["val_dir"],
        encoders=ENC,
        out_dir=tmp_path / "p",
        config=EvalConfig(num_projections=64, cross_checks=()),
        floors_path=tmp_path / "none.json",
    )
    assert result["sw"]["per_encoder"] == pytest.approx(full["sw"]["per_encoder"], rel=1e-6)


def test_eval_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="cross_checks"):
        EvalConfig(cross_checks=("kid",))
    with pytest.raises(ValueError, match="num_samples"):
        EvalConfig(num_samples=0)
