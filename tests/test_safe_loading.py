"""No file repmatch reads can run code: a crafted pickle planted where a checkpoint, a
generator's initial weights or an encoder's weights are expected is refused, never executed."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from repmatch.generators.load import load_state
from repmatch.train.checkpoint import load_checkpoint, load_latest_checkpoint, save_checkpoint

MARKER = "repmatch-pwned.txt"


class _Payload:
    """Unpickling this writes a marker file: proof that the loader ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "code ran"))


def _plant(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"generator": _Payload(marker), "nimg": 10**9}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    return path


def test_the_payload_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """The probe is real: a plain (unsafe) load does execute it."""
    path = _plant(tmp_path / "x.pt", tmp_path / MARKER)
    torch.load(path, weights_only=False)
    assert (tmp_path / MARKER).read_text() == "code ran"


def test_a_planted_newest_checkpoint_is_skipped_not_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    save_checkpoint(run, 64, {"nimg": 64, "w": torch.ones(2)}, keep=3)
    _plant(run / "checkpoints" / "ckpt-999999999999.pt", tmp_path / MARKER)
    with pytest.raises(Exception):
        load_checkpoint(run / "checkpoints" / "ckpt-999999999999.pt")
    with pytest.warns(RuntimeWarning, match="ckpt-999999999999.pt does not load"):
        path, state = load_latest_checkpoint(run)  # type: ignore[misc]
    assert path.name == "ckpt-000000000064.pt" and state["nimg"] == 64
    assert not (tmp_path / MARKER).exists()


def test_a_planted_initial_checkpoint_is_refused_not_run(tmp_path: Path) -> None:
    path = _plant(tmp_path / "init.pt", tmp_path / MARKER)
    with pytest.raises(ValueError, match=r"init_checkpoint: .*init.pt.* not a safetensors or weights-only"):
        load_state(path)
    assert not (tmp_path / MARKER).exists()


def test_planted_encoder_weights_are_refused_not_run(tmp_path: Path) -> None:
    from repmatch.represent import create

    path = _plant(tmp_path / "pt_inception-2015-12-05-6726825d.pth", tmp_path / MARKER)
    with pytest.raises(Exception, match="(?i)weights only|weights_only|unpickl"):
        create("inception_v3_fid", weights=path)
    assert not (tmp_path / MARKER).exists()
