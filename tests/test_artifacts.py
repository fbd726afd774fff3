"""File artifacts survive crashes, full disks, bad manifests and concurrent writers.

Directory-shaped artifacts (Nyström references, a references root, feature stores) are swapped
into place whole; feature-store manifests are validated field by field and checked against
their shards; errors name the file; written files get the umask's mode.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from repmatch import io as rm_io
from repmatch.compare import NystromReference
from repmatch.compare import nystrom as nystrom_mod
from repmatch.data import ImageFolder, NpzImages
from repmatch.features import FeatureStore, extract_features
from repmatch.features import extract as extract_mod
from repmatch.metrics.fingerprints import FingerprintMismatchError, check_fingerprints
from repmatch.references import (
    References,
    build_reference_dir,
    load_references,
    save_references,
)
from repmatch.references import build_directory as build_directory_mod
from _train_toys import register_linear_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
ENCODER = "artifacttest_lin"


register_linear_encoder(ENCODER, dim=5, seed=4)


def _npz(path: Path, n: int = 60, seed: int = 0) -> NpzImages:
    rng = np.random.default_rng(seed)
    np.savez(path, images=rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8), labels=np.arange(n) % 2)
    return NpzImages(path)


def _store(tmp_path: Path, name: str = "store") -> Path:
    extract_features(_npz(tmp_path / f"{name}.npz"), ENCODER, tmp_path / name, shard_size=25, progress=False)
    return tmp_path / name


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name and p.name.startswith(f".{path.name}"))


# ---------------------------------------------------------------- single files


def test_written_files_get_the_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        rm_io.atomic_write_text(tmp_path / "a.txt", "x")
        rm_io.atomic_save_safetensors(tmp_path / "b.safetensors", {"t": torch.zeros(2)})
        with rm_io.atomic_directory(tmp_path / "d") as tmp:
            rm_io.atomic_write_text(tmp / "c.txt", "y")
        os.umask(0o077)
        rm_io.atomic_write_text(tmp_path / "e.txt", "z")
    finally:
        os.umask(old)
    mode = {p: (tmp_path / p).stat().st_mode & 0o777 for p in ("a.txt", "b.safetensors", "d", "d/c.txt", "e.txt")}
    assert mode == {"a.txt": 0o644, "b.safetensors": 0o644, "d": 0o755, "d/c.txt": 0o644, "e.txt": 0o600}


def _raise(exc: BaseException):
    def fail(*args: object, **kwargs: object) -> None:
        raise exc
    return fail


@pytest.mark.parametrize(
    ("patch", "save"),
    [
        ("save_file", lambda p: rm_io.atomic_save_safetensors(p, {"t": torch.ones(3)})),
        ("torch_save", lambda p: rm_io.atomic_torch_save(p, {"t": torch.ones(3)})),
    ],
)
def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           patch: str, save) -> None:
    path = tmp_path / "artifact.bin"
    path.write_bytes(b"the old, complete file")
    if patch == "save_file":
        monkeypatch.setattr(rm_io, "save_file", _raise(OSError(errno.ENOSPC, "No space left on device")))
    else:  # torch.save reports a full disk as a RuntimeError that names no file
        monkeypatch.setattr(torch, "save", _raise(RuntimeError("basic_ios::clear: iostream error")))
    with pytest.raises(OSError, match=f"could not write {path}") as info:
        save(path)
    if patch == "save_file":
        assert info.value.errno == errno.ENOSPC and "No space left on device" in str(info.value)
    assert path.read_bytes() == b"the old, complete file"
    assert os.listdir(tmp_path) == ["artifact.bin"]  # no temporary file left behind


@pytest.mark.parametrize("writer", ["safetensors", "torch", "text"])
def test_a_real_write_failure_names_the_file(tmp_path: Path, writer: str) -> None:
    """The writers' real failure surfaces, provoked by a file-size limit (EFBIG, like ENOSPC)."""
    path = tmp_path / "big"
    path.write_bytes(b"old")
    big = torch.zeros(1 << 19)  # 2 MiB
    write = {
        "safetensors": lambda: rm_io.atomic_save_safetensors(path, {"t": big}),
        "torch": lambda: rm_io.atomic_torch_save(path, {"t": big}),
        "text": lambda: rm_io.atomic_write_text(path, "x" * (1 << 21)),
    }[writer]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, hard))  # SIGXFSZ is ignored by Python
    try:
        with pytest.raises(OSError, match=f"could not write {path}"):
            write()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["big"]


# ---------------------------------------------------------------- directories


def test_atomic_directory_replaces_the_whole_directory_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "art"
    with rm_io.atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b").write_text("2")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["a", "sub", "sub/b"]
    with pytest.raises(RuntimeError, match="crash"), rm_io.atomic_directory(target) as tmp:
        (tmp / "c").write_text("3")
        raise RuntimeError("crash mid-build")
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == ["a", "sub", "sub/b"]
    with rm_io.atomic_directory(target) as tmp:
        (tmp / "c").write_text("3")
    assert [p.name for p in target.iterdir()] == ["c"]  # stale entries do not survive
    assert _siblings(target) == []


def test_atomic_directory_without_rename_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rm_io, "_exchange", lambda src, dst: False)  # e.g. a filesystem without it
    target = tmp_path / "art"
    for text in ("old", "new"):
        with rm_io.atomic_directory(target) as tmp:
            (tmp / "f").write_text(text)
    assert (target / "f").read_text() == "new" and _siblings(target) == []


def test_a_crash_mid_swap_is_recovered(tmp_path: Path) -> None:
    target = tmp_path / "art"
    with rm_io.atomic_directory(target) as tmp:
        (tmp / "f").write_text("old")
    # Killed between the fallback's two renames: the complete old version waits at .art.old.
    target.rename(tmp_path / ".art.old")
    rm_io.recover_directory(target)
    assert (target / "f").read_text() == "old" and _siblings(target) == []
    # Killed while deleting the replaced version, and a dead writer's temporary directory.
    (tmp_path / ".art.old").mkdir()
    dead = tmp_path / f".art.tmp.{socket.gethostname()}.{2**22 + 7}.abcd"
    dead.mkdir()
    with rm_io.atomic_directory(target) as tmp:
        (tmp / "f").write_text("new")
    assert (target / "f").read_text() == "new" and _siblings(target) == []


def test_atomic_directory_refuses_to_replace_what_it_did_not_write(tmp_path: Path) -> None:
    target = tmp_path / "mine"
    target.mkdir()
    (target / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match=rf"{target}.*manifest.json"), rm_io.atomic_directory(target, replaces="manifest.json"):
        pass
    assert (target / "precious.txt").read_text() == "keep me" and _siblings(target) == []


# ---------------------------------------------------------------- Nyström references


def _refs(seed: int) -> tuple[NystromReference, ...]:
    pool = torch.randn(40, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return tuple(NystromReference.build(pool, num_landmarks=6, bandwidth=b, seed=0, fingerprint="f")
                 for b in (0.5, 1.0))


def _same(a: NystromReference, b: NystromReference) -> bool:
    return torch.equal(a.landmarks, b.landmarks) and (a.bandwidth, a.data_term) == (b.bandwidth, b.data_term)


def _fail_on_call(n: int, real):
    calls = []

    def wrapped(*args: object, **kwargs: object):
        calls.append(1)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args, **kwargs)
    return wrapped


def test_a_reference_rewrite_that_crashes_keeps_the_old_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _refs(0)[0], _refs(1)[1]
    old.save(tmp_path / "ref")
    # Dies after the tensors, before the manifest: formerly a pair that refused to load.
    monkeypatch.setattr(nystrom_mod, "atomic_write_json", _fail_on_call(1, nystrom_mod.atomic_write_json))
    with pytest.raises(OSError, match="No space left"):
        new.save(tmp_path / "ref")
    assert _same(NystromReference.load(tmp_path / "ref"), old) and _siblings(tmp_path / "ref") == []


def test_save_references_that_crashes_keeps_the_old_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old, new = _refs(0), _refs(1)[:1]
    save_references(old, tmp_path / "enc")
    monkeypatch.setattr(nystrom_mod, "atomic_save_safetensors", _fail_on_call(1, nystrom_mod.atomic_save_safetensors))
    with pytest.raises(OSError, match="No space left"):
        save_references(new, tmp_path / "enc")
    back = load_references(tmp_path / "enc")
    assert len(back) == 2 and all(_same(a, b) for a, b in zip(back, old))
    monkeypatch.undo()
    save_references(new, tmp_path / "enc")  # fewer scales: the stale scale1 goes
    assert len(load_references(tmp_path / "enc")) == 1


def test_a_reference_is_never_saved_over_a_foreign_directory(tmp_path: Path) -> None:
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="refs"):
        _refs(0)[0].save(tmp_path / "refs")
    assert (tmp_path / "refs" / "notes.txt").read_text() == "mine"


def test_a_references_rebuild_that_crashes_keeps_the_old_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(tmp_path)
    out = tmp_path / "refs"
    build_reference_dir(store, out, num_landmarks=8)
    before = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setattr(build_directory_mod, "write_manifest", _raise(OSError(errno.ENOSPC, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        build_reference_dir(store, out, num_landmarks=12)
    after = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and _siblings(out) == []
    assert References.open(out).manifest["settings"]["num_landmarks"] == 8


# ---------------------------------------------------------------- feature stores


def _manifest(store: Path) -> dict:
    return json.loads((store / "manifest.json").read_text())


def _edit(store: Path, **fields: object) -> Path:
    manifest = _manifest(store)
    for key, value in fields.items():
        if key == "dim":
            manifest["encoders"][0]["dim"] = value
        elif key == "fingerprint":
            manifest["encoders"][0]["fingerprint"] = value
        else:
            manifest[key] = value
    (store / "manifest.json").write_text(json.dumps(manifest))
    return store / "manifest.json"


def test_a_store_manifest_records_its_shards(tmp_path: Path) -> None:
    store = _store(tmp_path)
    manifest = _manifest(store)
    assert manifest["shard_bytes"] == {str(k): (store / f"shard-{k:05d}.safetensors").stat().st_size for k in range(3)}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"num_rows": "60"}, "num_rows must be an integer >= 1, got '60'"),
        ({"num_rows": 0}, "num_rows must be an integer >= 1, got 0"),
        ({"num_rows": True}, "num_rows must be an integer >= 1, got True"),
        ({"rows_per_shard": -5}, "rows_per_shard must be an integer >= 1"),
        ({"num_shards": 4}, r"num_shards must be ceil\(num_rows / rows_per_shard\) = 3, got 4"),
        ({"num_classes": -1}, "num_classes must be an integer >= 0"),
        ({"dim": 0}, r"encoders\[0\].dim must be an integer >= 1, got 0"),
        ({"dim": 5.0}, r"encoders\[0\].dim must be an integer >= 1, got 5.0"),
        ({"fingerprint": None}, r"encoders\[0\].fingerprint must be a non-empty string"),
        ({"encoders": []}, "encoders must be a non-empty list"),
        ({"completed_shards": [0, 1, 7]}, r"completed_shards must be distinct shard indices in \[0, 3\)"),
        ({"complete": "yes"}, "complete must be true or false"),
        ({"complete": False}, "complete must be true exactly when every shard is completed"),
        ({"dtype": "float16"}, "dtype must be 'float32'"),
        ({"data": ""}, "data must be a non-empty string"),
        ({"shard_bytes": {"0": 10}}, "shard_bytes must be a map of every completed shard"),
    ],
)
def test_every_store_manifest_field_is_validated(tmp_path: Path, fields: dict, message: str) -> None:
    path = _edit(_store(tmp_path), **fields)
    with pytest.raises(ValueError, match=rf"feature store manifest {path}: {message}"):
        FeatureStore(path.parent)


def test_a_store_manifest_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store / "manifest.json").write_text('{"format": ')
    with pytest.raises(ValueError, match=rf"feature store manifest {store / 'manifest.json'}: not valid JSON"):
        FeatureStore(store)


def test_a_manifest_that_disagrees_with_its_shards_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path)
    shard = store / "shard-00000.safetensors"
    _edit(store, dim=6)
    with pytest.raises(ValueError, match=rf"{shard}: {ENCODER} has shape \(25, 5\), the manifest records \(25, 6\)"):
        FeatureStore(store)
    _edit(store, dim=5, num_rows=59)  # the last shard then holds one row too many
    with pytest.raises(ValueError, match=rf"{store / 'shard-00002.safetensors'}: {ENCODER} has shape \(10, 5\), "
                                         r"the manifest records \(9, 5\)"):
        FeatureStore(store)


def test_a_missing_shard_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path)
    (store / "shard-00001.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=str(store / "shard-00001.safetensors")):
        FeatureStore(store).read()


def test_a_truncated_shard_is_named(tmp_path: Path) -> None:
    store = _store(tmp_path)
    shard = store / "shard-00001.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-7])
    with pytest.raises(ValueError, match=rf"{shard} is {len(data) - 7} bytes, the manifest records {len(data)}"):
        FeatureStore(store).read()
    # A store without recorded sizes (written before they were) still names a truncated file.
    manifest = _manifest(store)
    del manifest["shard_bytes"]
    (store / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"{shard} is not a readable safetensors file"):
        FeatureStore(store).read()


def test_an_interrupted_extraction_waits_in_a_partial_sibling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _npz(tmp_path / "d.npz")
    out = tmp_path / "feats"
    real = extract_mod._encode
    monkeypatch.setattr(extract_mod, "_encode", _fail_on_call(3, real))
    with pytest.raises(OSError):
        extract_features(ds, ENCODER, out, shard_size=25, batch_size=25, progress=False)
    assert not out.exists()
    partial = tmp_path / "feats.partial"
    assert _manifest(partial)["completed_shards"] == [0, 1]
    with pytest.raises(ValueError, match=rf"{out}' is incomplete.*{partial}'.*2/3 shards"):
        FeatureStore(out)
    # Evaluation given the store's path says the same (not "no such dataset").
    from repmatch.evaluation.sources import open_source

    with pytest.raises(ValueError, match=rf"{out}' is incomplete"):
        open_source(str(out), [ENCODER], role="gen", cache_dir=tmp_path / "cache")
    monkeypatch.setattr(extract_mod, "_encode", real)
    store = extract_features(ds, ENCODER, out, shard_size=25, batch_size=25, progress=False)
    assert store.complete and len(store.read(ENCODER)) == 60
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("feats")) == ["feats"]


def test_extraction_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    out = tmp_path / "feats"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=rf"out_dir '{out}' .*not a feature store"):
        extract_features(_npz(tmp_path / "d.npz"), ENCODER, out, shard_size=25, progress=False)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_second_writer_of_a_store_is_refused_naming_the_holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _npz(tmp_path / "d.npz")
    out = tmp_path / "feats"
    real, started, release = extract_mod._encode, threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def blocked(battery, images):
        started.set()
        assert release.wait(60)
        return real(battery, images)

    def first() -> None:
        try:
            extract_features(ds, ENCODER, out, shard_size=25, progress=False)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    monkeypatch.setattr(extract_mod, "_encode", blocked)
    writer = threading.Thread(target=first)
    writer.start()
    try:
        assert started.wait(60)
        with pytest.raises(ValueError, match=rf"out_dir '{out}' is being written by another process \(pid {os.getpid()} on "):
            extract_features(ds, ENCODER, out, shard_size=25, progress=False)
    finally:
        release.set()
        writer.join(60)
    assert not errors and FeatureStore(out).complete


def test_a_corrupt_image_is_named(tmp_path: Path) -> None:
    from PIL import Image

    root = tmp_path / "imgs"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / f"{i}.png")
    broken = root / "1.png"
    broken.write_bytes(broken.read_bytes()[:100])  # a valid header, then half the pixel data
    with pytest.raises(ValueError, match=rf"image file '{broken}' cannot be decoded.*remove or replace it"):
        extract_features(ImageFolder(root), ENCODER, tmp_path / "feats", progress=False)


# ---------------------------------------------------------------- messages


def test_mismatched_fingerprints_are_shown_in_full() -> None:
    a, b = "fmnist_classifier-0123456789ab", "fmnist_classifier-ba9876543210"
    with pytest.raises(FingerprintMismatchError, match=f"train={a}, gen={b}\\)"):
        check_fingerprints({"train": {"e": a}, "gen": {"e": b}}, ["e"])


def test_references_store_what_they_load(tmp_path: Path) -> None:
    """Smoke check that the atomic rewrite kept the references' content loadable as before."""
    out = tmp_path / "refs"
    store = _store(tmp_path)
    refs = build_reference_dir(store, out, num_landmarks=8)
    assert refs.encoders == [ENCODER]
    assert load_file(str(out / ENCODER / "scale0" / "reference.safetensors"))["landmarks"].shape == (8, 5)


def test_a_symlinked_store_is_built_where_the_link_points(tmp_path: Path) -> None:
    (tmp_path / "scratch").mkdir()
    (tmp_path / "feats").symlink_to(tmp_path / "scratch" / "train")  # dangling until built
    extract_features(_npz(tmp_path / "d.npz"), ENCODER, tmp_path / "feats", shard_size=25, progress=False)
    assert (tmp_path / "feats").is_symlink() and FeatureStore(tmp_path / "feats").complete
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == [".train.lock", "train"]
