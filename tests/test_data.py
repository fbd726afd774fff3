"""Dataset readers: idx parsing against torchvision's reader, npz layouts, image folders, open_dataset."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from repmatch.data import (
    FashionMNIST,
    ImageFolder,
    NpzImages,
    default_fmnist_root,
    open_dataset,
    read_idx,
)

FMNIST = default_fmnist_root()
needs_fmnist = pytest.mark.skipif(
    not (FMNIST / "t10k-images-idx3-ubyte.gz").is_file(), reason="Fashion-MNIST idx files not installed"
)


def _write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    # An independent writer: the format as documented (big-endian header, then raw bytes).
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    blob = header + array.tobytes()
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(blob)


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_roundtrip(tmp_path: Path, gz: bool) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    ints = rng.integers(-1000, 1000, size=(7,)).astype(">i4")
    _write_idx(tmp_path / ("a.gz" if gz else "a"), images, gz)
    _write_idx(tmp_path / ("b.gz" if gz else "b"), ints, gz)
    np.testing.assert_array_equal(read_idx(tmp_path / ("a.gz" if gz else "a")), images)
    got = read_idx(tmp_path / ("b.gz" if gz else "b"))
    np.testing.assert_array_equal(got, ints.astype(np.int32))
    assert got.dtype.isnative


def test_read_idx_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="path"):
        read_idx(tmp_path / "missing.gz")
    (tmp_path / "junk").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "junk")
    _write_idx(tmp_path / "ok", np.zeros((2, 3), np.uint8), gz=False)
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-1])
    with pytest.raises(ValueError, match="bytes"):
        read_idx(tmp_path / "short")


@needs_fmnist
def test_fmnist_matches_torchvision_reader(tmp_path: Path) -> None:
    # Peer oracle: torchvision's own idx (SN3) parser on the decompressed test split.
    from torchvision.datasets.mnist import read_image_file, read_label_file

    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(FMNIST / f"{name}.gz") as f:
            (tmp_path / name).write_bytes(f.read())
    ds = FashionMNIST("test")
    ref_images = read_image_file(str(tmp_path / "t10k-images-idx3-ubyte"))
    ref_labels = read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte"))
    assert len(ds) == 10000 and ds.num_classes == 10 and ds.spec == "fmnist:test"
    assert torch.equal(torch.from_numpy(ds.images[:, 0]), ref_images)
    for i in (0, 1234, 9999):
        image, label = ds[i]
        assert image.shape == (1, 28, 28) and image.dtype == torch.float32
        assert torch.equal(image[0], ref_images[i].float() / 255)
        assert label == int(ref_labels[i])


@needs_fmnist
def test_fmnist_train_split_and_errors(tmp_path: Path) -> None:
    ds = open_dataset("fmnist:train")
    assert isinstance(ds, FashionMNIST) and len(ds) == 60000
    assert np.bincount(ds.labels).tolist() == [6000] * 10  # the published class balance
    with pytest.raises(ValueError, match="split"):
        FashionMNIST("val")
    with pytest.raises(FileNotFoundError, match="root"):
        FashionMNIST("test", root=tmp_path)


@pytest.mark.parametrize("layout", ["nhw", "nhwc", "nchw", "nhwc1"])
def test_npz_layouts(tmp_path: Path, layout: str) -> None:
    rng = np.random.default_rng(1)
    channels = 1 if layout in ("nhw", "nhwc1") else 3
    ref = rng.integers(0, 256, size=(6, channels, 5, 4), dtype=np.uint8)  # (N, C, H, W)
    stored = {
        "nhw": ref[:, 0],
        "nhwc": ref.transpose(0, 2, 3, 1),
        "nhwc1": ref.transpose(0, 2, 3, 1),
        "nchw": ref,
    }[layout]
    np.savez(tmp_path / "x.npz", images=stored, labels=np.arange(6), extra=np.zeros(2))
    ds = open_dataset(str(tmp_path / "x.npz"))
    assert isinstance(ds, NpzImages) and len(ds) == 6 and ds.num_classes == 6
    for i in range(6):
        image, label = ds[i]
        assert torch.equal(image, torch.from_numpy(ref[i]).float() / 255)
        assert label == i


def test_recorded_identity_reopens_and_refuses_changed_data(tmp_path: Path) -> None:
    path = tmp_path / "x.npz"
    np.savez(path, images=np.zeros((2, 4, 4), dtype=np.uint8))
    recorded = open_dataset(str(path)).spec
    assert open_dataset(recorded).spec == recorded
    np.savez(path, images=np.ones((2, 4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="changed since it was recorded"):
        open_dataset(recorded)


def test_npz_single_array_without_labels(tmp_path: Path) -> None:
    arr = np.random.default_rng(2).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    np.savez_compressed(tmp_path / "y.npz", samples=arr)
    ds = NpzImages(tmp_path / "y.npz")
    assert ds[2][1] == -1 and ds.num_classes == 0
    assert torch.equal(ds[2][0], torch.from_numpy(arr[2]).permute(2, 0, 1).float() / 255)


def test_npz_errors(tmp_path: Path) -> None:
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4), np.uint8), b=np.zeros(2))
    with pytest.raises(ValueError, match="'images'"):
        NpzImages(tmp_path / "two.npz")
    np.savez(tmp_path / "float.npz", images=np.zeros((2, 4, 4), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        NpzImages(tmp_path / "float.npz")
    np.savez(tmp_path / "shape.npz", images=np.zeros((2, 5, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        NpzImages(tmp_path / "shape.npz")
    np.savez(tmp_path / "labels.npz", images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="labels"):
        NpzImages(tmp_path / "labels.npz")
    with pytest.raises(FileNotFoundError, match="path"):
        NpzImages(tmp_path / "nope.npz")


def _write_folder(root: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    rng = np.random.default_rng(3)
    files = {"b/2.png": (6, 5), "a/10.png": (4, 4), "a/x/9.png": (4, 4), "b/1.jpg": (8, 8)}
    arrays = {}
    for rel, (h, w) in files.items():
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / rel)
        # JPEG is lossy: the oracle is what Pillow decodes, not what we encoded.
        arrays[rel] = np.array(Image.open(root / rel).convert("RGB"))
    (root / "notes.txt").write_text("not an image")
    return arrays


def test_image_folder(tmp_path: Path) -> None:
    arrays = _write_folder(tmp_path)
    ds = open_dataset(str(tmp_path), labels="subfolder")
    assert isinstance(ds, ImageFolder)
    order = sorted(arrays)  # ["a/10.png", "a/x/9.png", "b/1.jpg", "b/2.png"]
    assert [p.relative_to(tmp_path).as_posix() for p in ds.files] == order
    assert ds.classes == ("a", "b") and ds.num_classes == 2
    for i, rel in enumerate(order):
        image, label = ds[i]
        assert torch.equal(image, torch.from_numpy(arrays[rel]).permute(2, 0, 1).float() / 255)
        assert label == ("ab".index(rel[0]))
    gray = ImageFolder(tmp_path, mode="L")
    from PIL import Image

    ref = np.array(Image.open(tmp_path / "b/2.png").convert("L"))
    assert gray[3][0].shape == (1, 6, 5) and gray[3][1] == -1
    assert torch.equal(gray[3][0][0], torch.from_numpy(ref).float() / 255)


def test_image_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="root"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        ImageFolder(tmp_path / "empty")
    _write_folder(tmp_path / "f")
    from PIL import Image

    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "f" / "loose.png")
    with pytest.raises(ValueError, match="subfolder"):
        ImageFolder(tmp_path / "f", labels="subfolder")
    with pytest.raises(ValueError, match="mode"):
        ImageFolder(tmp_path / "f", mode="CMYK")


def test_open_dataset_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="spec"):
        open_dataset(str(tmp_path / "nothing"))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="unknown dataset format"):
        open_dataset(str(tmp_path / "x.csv"))
    with pytest.raises(ValueError, match="split"):
        open_dataset("fmnist:valid")
    with pytest.raises(TypeError, match="spec"):
        open_dataset(3)  # type: ignore[arg-type]


def test_spec_tracks_content(tmp_path: Path) -> None:
    images = np.zeros((2, 4, 4), np.uint8)
    np.savez(tmp_path / "s.npz", images=images)
    first = NpzImages(tmp_path / "s.npz").spec
    assert first.startswith(str((tmp_path / "s.npz").resolve()) + "@sha256:")
    assert NpzImages(tmp_path / "s.npz").spec == first
    images[0, 0, 0] = 1
    np.savez(tmp_path / "s.npz", images=images)  # same path, new content
    assert NpzImages(tmp_path / "s.npz").spec != first
    _write_folder(tmp_path / "f")
    before = ImageFolder(tmp_path / "f").spec
    assert ImageFolder(tmp_path / "f").spec == before
    from PIL import Image

    Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(tmp_path / "f" / "a" / "new.png")
    assert ImageFolder(tmp_path / "f").spec != before
