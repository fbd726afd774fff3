"""Feature extraction and the feature store: exactness, batch-size independence, resume after a kill."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from repmatch.apps.fmnist.encoders import _MODELS, FMNIST_ENCODERS, FmnistTrainConfig
from repmatch.data import ImageFolder, NpzImages
from repmatch.features import FeatureStore, extract_features
from repmatch.features import extract as extract_mod
from repmatch.represent import EncoderBattery

SRC = str(Path(__file__).resolve().parents[1] / "src")
N = 45


@pytest.fixture
def npz(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    # 32x32: exercises the encoders' resize to 28x28.
    np.savez(path, images=rng.integers(0, 256, (N, 32, 32), dtype=np.uint8), labels=rng.integers(0, 10, N))
    return path


@pytest.fixture(scope="module")
def battery() -> EncoderBattery:
    torch.manual_seed(0)
    return EncoderBattery(list(FMNIST_ENCODERS), pretrained=False)


def _direct(battery: EncoderBattery, ds: NpzImages) -> dict[str, torch.Tensor]:
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    with torch.no_grad():
        return battery(images)


def test_store_matches_direct_encoding(npz: Path, tmp_path: Path, battery: EncoderBattery) -> None:
    ds = NpzImages(npz)
    store = extract_features(ds, battery, tmp_path / "s", batch_size=8, shard_size=16, progress=False)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "manifest.json", "shard-00000.safetensors", "shard-00001.safetensors", "shard-00002.safetensors",
    ]
    ref = _direct(battery, ds)
    feats = store.read()
    assert store.names == tuple(FMNIST_ENCODERS) and store.fingerprints == battery.fingerprints
    assert store.dims == {"fmnist_classifier": 128, "fmnist_autoencoder": 64} and len(store) == N
    for name in FMNIST_ENCODERS:
        assert feats[name].dtype == torch.float32 and feats[name].shape == (N, store.dims[name])
        torch.testing.assert_close(feats[name], ref[name], rtol=1e-5, atol=1e-5)
    assert torch.equal(store.labels, torch.from_numpy(ds.labels))
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["completed_shards"] == [0, 1, 2] and manifest["data"] == ds.spec
    # Row selection equals indexing the full read (exactly: same stored values).
    full = feats["fmnist_autoencoder"]
    for rows in (slice(3, 40, 5), range(30, 17, -2), [44, 0, 16, 15, -1], torch.tensor([31, 32]), []):
        idx = np.arange(N)[rows] if isinstance(rows, (slice, range)) else np.asarray(rows, dtype=np.int64)
        got = store.read("fmnist_autoencoder", rows=rows)
        assert torch.equal(got, full[torch.from_numpy(idx % N)])
    with pytest.raises(ValueError, match="name"):
        store.read("nope")
    with pytest.raises(ValueError, match="rows"):
        store.read(rows=[N])


def test_features_do_not_depend_on_batch_size(npz: Path, tmp_path: Path, battery: EncoderBattery) -> None:
    ds = NpzImages(npz)
    a = extract_features(ds, battery, tmp_path / "a", batch_size=3, shard_size=20, progress=False).read()
    b = extract_features(ds, battery, tmp_path / "b", batch_size=45, shard_size=20, progress=False).read()
    for name in FMNIST_ENCODERS:
        torch.testing.assert_close(a[name], b[name], rtol=1e-5, atol=1e-5)


def test_resume_after_failure_is_bit_exact(npz: Path, tmp_path: Path, battery: EncoderBattery,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ds = NpzImages(npz)
    whole = extract_features(ds, battery, tmp_path / "whole", batch_size=4, shard_size=10, progress=False).read()
    real, calls = extract_mod._encode, []

    def failing(b, images):  # dies inside the third shard (batches 0-2: shard 0, 3-5: shard 1)
        calls.append(1)
        if len(calls) == 8:
            raise RuntimeError("injected failure")
        return real(b, images)

    monkeypatch.setattr(extract_mod, "_encode", failing)
    out = tmp_path / "resumed"
    with pytest.raises(RuntimeError, match="injected"):
        extract_features(ds, battery, out, batch_size=4, shard_size=10, progress=False)
    partial = tmp_path / "resumed.partial"  # built there, swapped into place when complete
    manifest = json.loads((partial / "manifest.json").read_text())
    assert manifest["completed_shards"] == [0, 1] and not manifest["complete"] and not out.exists()
    with pytest.raises(ValueError, match="incomplete"):
        FeatureStore(out).read()
    (partial / ".shard-00002.safetensors.x1.tmp").write_bytes(b"partial")  # as left by a kill mid-write
    calls.clear()
    monkeypatch.setattr(extract_mod, "_encode", lambda b, images: (calls.append(1), real(b, images))[1])
    resumed = extract_features(ds, battery, out, batch_size=4, shard_size=10, progress=False).read()
    assert len(calls) == 3 + 3 + 2  # only shards 2, 3 (10 rows) and 4 (5 rows) were recomputed
    assert not list(out.glob(".*.tmp")) and not partial.exists()
    for name in FMNIST_ENCODERS:
        assert torch.equal(resumed[name], whole[name])
    # A finished store is returned as is.
    calls.clear()
    extract_features(ds, battery, out, batch_size=4, shard_size=10, progress=False)
    assert calls == []


def test_refuses_to_resume_a_different_extraction(npz: Path, tmp_path: Path, battery: EncoderBattery) -> None:
    ds = NpzImages(npz)
    out = tmp_path / "s"
    extract_features(ds, battery, out, batch_size=16, shard_size=16, progress=False)
    other = EncoderBattery(["fmnist_classifier"], pretrained=False)
    with pytest.raises(ValueError, match="encoders"):
        extract_features(ds, other, out, shard_size=16, progress=False)
    with pytest.raises(ValueError, match="rows_per_shard"):
        extract_features(ds, battery, out, shard_size=8, progress=False)
    with pytest.raises(ValueError, match="data"):
        extract_features(ds, battery, out, shard_size=16, limit=20, progress=False)
    with pytest.raises(ValueError, match="data"):
        extract_features(ds, battery, out, shard_size=16, data="something-else", progress=False)
    # New content at the same path (e.g. fresh samples) never reuses the finished store.
    rewritten = ds.images.copy()
    rewritten[0] ^= 1
    np.savez(npz, images=rewritten[:, 0], labels=ds.labels)
    with pytest.raises(ValueError, match="sha256"):
        extract_features(NpzImages(npz), battery, out, shard_size=16, progress=False)


def test_argument_errors(npz: Path, tmp_path: Path, battery: EncoderBattery) -> None:
    ds = NpzImages(npz)
    with pytest.raises(ValueError, match="batch_size"):
        extract_features(ds, battery, tmp_path / "x", batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        extract_features(ds, battery, tmp_path / "x", num_workers=-1)
    with pytest.raises(TypeError, match="encoders"):
        extract_features(ds, 3, tmp_path / "x")
    with pytest.raises(ValueError, match="data"):
        extract_features(torch.utils.data.TensorDataset(torch.zeros(2, 1, 4, 4), torch.zeros(2)), battery, tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="feature store"):
        FeatureStore(tmp_path / "x")


def test_folder_of_mixed_sizes_and_workers(tmp_path: Path, battery: EncoderBattery) -> None:
    from PIL import Image

    rng = np.random.default_rng(5)
    for i, size in enumerate([(28, 28), (28, 28), (40, 30), (20, 20), (28, 28)]):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    ds = ImageFolder(tmp_path)
    store = extract_features(ds, battery, tmp_path / "s", batch_size=4, shard_size=3, num_workers=1, progress=False)
    feats = store.read()
    with torch.no_grad():
        for i in range(len(ds)):
            one = battery(ds[i][0][None])
            for name in FMNIST_ENCODERS:
                torch.testing.assert_close(feats[name][i : i + 1], one[name], rtol=1e-5, atol=1e-5)
    assert store.labels.tolist() == [-1] * 5 and store.num_classes == 0


def _fake_cached_weights(cache: Path) -> None:
    """Untrained weights labelled with the registered recipe: enough to drive the CLI by name."""
    from safetensors.torch import save_file

    (cache / "fmnist").mkdir(parents=True)
    torch.manual_seed(1)
    for name in FMNIST_ENCODERS:
        model = _MODELS[name]()
        save_file(model.state_dict(), str(cache / "fmnist" / f"{name}.safetensors"),
                  metadata={"recipe": json.dumps(FmnistTrainConfig().recipe())})


@pytest.mark.usefixtures("one_thread")
def test_cli_resume_after_sigkill_is_bit_exact(npz: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    _fake_cached_weights(cache)
    # Bit-exact needs one thread count in all three runs (float sums split per thread differ):
    # one_thread here, OMP_NUM_THREADS=1 in the subprocesses.
    env = {**os.environ, "PYTHONPATH": SRC, "REPMATCH_CACHE": str(cache), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "killed"
    args = ["features", "--data", str(npz), "--encoders", "fmnist", "--out", str(out), "--batch-size", "5",
            "--shard-size", "10", "--num-workers", "0", "--device", "cpu", "--no-progress"]
    # The killed run is the real CLI, SIGKILLed (no cleanup of any kind) on its 5th batch.
    killer = textwrap.dedent(f"""
        import os, signal, sys
        from repmatch.features import extract
        real, n = extract._encode, [0]
        def encode(b, x):
            n[0] += 1
            if n[0] == 5:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(b, x)
        extract._encode = encode
        from repmatch.cli import main
        sys.exit(main({args!r}))
    """)
    proc = subprocess.run([sys.executable, "-c", killer], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -9, proc.stderr
    assert json.loads((tmp_path / "killed.partial" / "manifest.json").read_text())["completed_shards"] == [0, 1]
    proc = subprocess.run([sys.executable, "-m", "repmatch", *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    # The uninterrupted reference run: same command, in this process.
    from repmatch.cli import main

    monkeypatch.setenv("REPMATCH_CACHE", str(cache))
    whole = tmp_path / "whole"
    args[args.index(str(out))] = str(whole)
    assert main(args) == 0
    a, b = FeatureStore(out), FeatureStore(whole)
    assert a.complete and a.fingerprints == b.fingerprints
    for name in FMNIST_ENCODERS:
        assert torch.equal(a.read(name), b.read(name))
    assert torch.equal(a.labels, b.labels)


def test_cli_dry_run(npz: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from repmatch.cli import main

    assert main(["features", "--data", str(npz), "--encoders", "fmnist", "--out", "x", "--limit", "7", "--dry-run"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["encoders"] == list(FMNIST_ENCODERS) and resolved["rows"] == 7


@pytest.mark.gpu
def test_cuda_extraction_matches_cpu(npz: Path, tmp_path: Path, battery: EncoderBattery) -> None:
    ds = NpzImages(npz)
    cpu = extract_features(ds, battery, tmp_path / "cpu", batch_size=16, shard_size=20, device="cpu", progress=False)
    gpu = extract_features(ds, battery, tmp_path / "gpu", batch_size=16, shard_size=20, num_workers=1,
                           device="cuda", progress=False)
    battery.to("cpu")
    for name in FMNIST_ENCODERS:
        torch.testing.assert_close(gpu.read(name), cpu.read(name), rtol=1e-4, atol=1e-4)
