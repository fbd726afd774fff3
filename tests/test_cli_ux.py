"""The command line's user experience: progress bars (only on a terminal, never with
``--no-progress``), each verb's closing lines naming its outputs (once, rank 0 only under
torchrun), and one-line errors that name the flag at fault.

Long work is replaced by recorders where the wiring is what is tested (the pipeline, the
teacher, the training loop, the studies); extraction, evaluation, floors, references and
sampling run for real on a tiny in-test encoder and 8x8 images.
"""

from __future__ import annotations

import argparse

import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from repmatch.cli import build_parser, main
from repmatch.data import NpzImages, open_dataset
from repmatch.features import extract_features
from _train_toys import register_linear_encoder

pytestmark = pytest.mark.usefixtures("one_thread")
ENCODER = "uxtest_lin"
BAR = "%|"  # tqdm's bar: "  40%|████      | 4/10 [00:01<00:02, 3.1img/s]"


register_linear_encoder(ENCODER, dim=4, seed=5)


def _npz(path: Path, seed: int, n: int = 64, labels: bool = False) -> str:
    rng = np.random.default_rng(seed)
    arrays = {"images": rng.integers(0, 256, size=(n, 8, 8, 3), dtype=np.uint8)}
    if labels:
        arrays["labels"] = np.arange(n) % 2
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture(autouse=True)
def _single_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)


def _tty(monkeypatch: pytest.MonkeyPatch) -> None:
    """stderr (pytest's capture, in the test's body) claims to be a terminal."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("uxdata")
    paths = {"train": _npz(root / "train.npz", 0, labels=True), "val": _npz(root / "val.npz", 1, labels=True),
             "gen": _npz(root / "gen.npz", 2)}
    for role in ("train", "val"):
        extract_features(open_dataset(paths[role]), ENCODER, root / role, progress=False, device="cpu")
        paths[f"{role}_dir"] = str(root / role)
    return paths


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ---------------------------------------------------------------------------------- the helper
class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_progress_needs_the_flag_a_terminal_and_rank_0(monkeypatch: pytest.MonkeyPatch) -> None:
    from repmatch.progress import is_main_process, progress_enabled

    assert progress_enabled(True, stream=_Stream(tty=True))
    assert not progress_enabled(False, stream=_Stream(tty=True))  # --no-progress
    assert not progress_enabled(True, stream=_Stream(tty=False))  # a pipe, a log file, CI
    assert not progress_enabled(True, stream=object())  # no isatty at all
    monkeypatch.setenv("RANK", "1")  # torchrun: the other ranks stay quiet
    assert not progress_enabled(True, stream=_Stream(tty=True)) and not is_main_process()
    monkeypatch.setenv("RANK", "0")
    assert progress_enabled(True, stream=_Stream(tty=True)) and is_main_process()


def test_a_disabled_bar_writes_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    from repmatch.progress import bar

    for _ in bar(range(3), desc="quiet", enabled=False):
        pass
    assert capsys.readouterr().err == ""


def _verb_args(tmp: Path) -> dict[str, list[str]]:
    """The least each verb parses with (nothing is run)."""
    return {
        "fmnist-encoders": [], "features": ["--data", "x.npz", "--encoders", "a", "--out", "o"],
        "references": ["--features", "f", "--out", "o"], "floors": ["--train", "t", "--val", "v"],
        "train": ["--preset", "toy"], "sample": ["--run-dir", "r", "--num", "1", "--out", "o.npz"],
        "teacher": [], "eval": ["--gen", "g", "--train", "t", "--out", "o"], "report": [str(tmp)],
        "study": ["spiral", "--out", "o"], "fmnist": [],
    }


def _subparsers() -> dict[str, Any]:
    return build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]


def _flag(parser: Any, flag: str) -> Any:
    """The action of ``flag`` in ``parser``, or None."""
    return next((a for a in parser._actions if flag in a.option_strings), None)


def test_every_verb_accepts_dry_run_no_progress_and_debug(tmp_path: Path) -> None:
    args = _verb_args(tmp_path)
    assert set(_subparsers()) == set(args)
    for verb, rest in args.items():
        parsed = build_parser().parse_args([verb, *rest, "--no-progress", "--dry-run", "--debug"])
        assert parsed.no_progress and parsed.dry_run and parsed.debug, verb
        assert not build_parser().parse_args([verb, *rest]).debug, verb
        assert build_parser().parse_args(["--debug", verb, *rest]).debug, verb  # not reset by the verb


def test_the_shared_options_are_one_declaration() -> None:
    """--device, --threads, --seed, --dry-run, --no-progress and --debug: the same type, action and
    help on every verb that takes them (the help may differ in its default only)."""
    from repmatch.cli._args import nonnegative_int, threads_arg

    for flag, kind in (("--device", None), ("--threads", threads_arg), ("--seed", nonnegative_int),
                       ("--dry-run", None), ("--no-progress", None), ("--debug", None)):
        actions = {v: _flag(p, flag) for v, p in _subparsers().items() if _flag(p, flag) is not None}
        assert len({type(a) for a in actions.values()}) == 1 and {a.type for a in actions.values()} == {kind}, flag
        if flag not in ("--seed", "--dry-run"):  # what a seed seeds, what a plan holds: the verb's
            assert len({a.help.split("(default")[0] for a in actions.values()}) == 1, flag


# --------------------------------------------------------------------- bars where work runs
def test_features_bar_only_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    data = _npz(tmp_path / "a.npz", 0)
    cmd = ["features", "--data", data, "--encoders", ENCODER, "--num-workers", "0", "--device", "cpu"]
    assert main([*cmd, "--out", str(tmp_path / "s1")]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # not a terminal: no bar
    assert _lines(captured.out)[-1] == f"features: {tmp_path / 's1'}"
    _tty(monkeypatch)
    assert main([*cmd, "--out", str(tmp_path / "s2"), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""
    assert main([*cmd, "--out", str(tmp_path / "s3")]) == 0
    err = capsys.readouterr().err
    assert BAR in err and "img/s" in err  # a rate; the ETA sits in the same brackets


def test_floors_and_eval_show_bars_and_name_their_outputs(
    stores: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _tty(monkeypatch)
    sw = ["--num-projections", "16", "--device", "cpu"]
    floors = tmp_path / "floors.json"
    assert main(["floors", "--train", stores["train_dir"], "--val", stores["val_dir"], "--out", str(floors), *sw]) == 0
    captured = capsys.readouterr()
    assert BAR in captured.err and "floors" in captured.err
    assert _lines(captured.out)[-1] == f"floors: {floors}"
    out = tmp_path / "eval"
    assert main(["eval", "--gen", stores["gen"], "--train", stores["train_dir"], "--val", stores["val_dir"],
                 "--out", str(out), "--floors", str(floors), *sw]) == 0
    captured = capsys.readouterr()
    assert BAR in captured.err and "img/s" in captured.err  # the gen images' extraction
    assert "encoder" in captured.err  # the per-encoder scoring
    assert _lines(captured.out)[-3:] == [f"eval: {out / 'eval.json'}", f"table: {out / 'eval.md'}",
                                         f"figure: {out / 'sw_ratios.png'}"]
    assert main(["eval", "--gen", stores["gen"], "--train", stores["train_dir"], "--val", stores["val_dir"],
                 "--out", str(out), "--floors", str(floors), *sw, "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


class _Gen(nn.Module):
    noise_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, noise: torch.Tensor, condition: Any = None) -> torch.Tensor:
        return torch.sigmoid(noise + self.shift)


@pytest.mark.parametrize("out_name", ["s.npz", "pngs"])
def test_sample_bar_and_its_output(out_name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _tty(monkeypatch)
    run = SimpleNamespace(generator=_Gen(), num_classes=0, conditions=None, captions=None)
    monkeypatch.setattr("repmatch.cli.sample.load_generator", lambda *a: run)
    out = tmp_path / out_name
    assert main(["sample", "--run-dir", str(tmp_path), "--num", "6", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert BAR in captured.err and "6/6" in captured.err
    assert _lines(captured.out)[-1] == f"samples: {out}"
    assert main(["sample", "--run-dir", str(tmp_path), "--num", "6", "--out", str(out), "--no-progress"]) == 0
    assert capsys.readouterr().err == ""


def test_sample_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    run = SimpleNamespace(generator=_Gen(), num_classes=10, conditions=None, captions=None)
    monkeypatch.setattr("repmatch.cli.sample.load_generator", lambda *a: run)
    ckpt = tmp_path / "checkpoints" / "ckpt-000000000064.pt"
    ckpt.parent.mkdir()
    ckpt.write_bytes(b"")
    out = tmp_path / "s.npz"
    assert main(["sample", "--run-dir", str(tmp_path), "--num", "6", "--out", str(out), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["checkpoint"] == str(ckpt) and plan["num_classes"] == 10 and plan["format"] == "npz"
    assert not out.exists()


def test_references_name_their_output_once(stores: dict[str, str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "refs"
    assert main(["references", "--features", stores["train_dir"], "--out", str(out), "--num-landmarks", "8",
                 "--kmeans-iters", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert _lines(printed)[-1] == f"references: {out}" and printed.count(str(out)) == 1


def test_references_bar_only_on_a_terminal(stores: dict[str, str], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    cmd = ["references", "--features", stores["train_dir"], "--val", stores["val_dir"],
           "--num-landmarks", "8", "--kmeans-iters", "2", "--floor-batch-size", "8"]
    assert main([*cmd, "--out", str(tmp_path / "r1")]) == 0
    assert BAR not in capsys.readouterr().err  # not a terminal
    _tty(monkeypatch)
    assert main([*cmd, "--out", str(tmp_path / "r2"), "--no-progress"]) == 0
    assert BAR not in capsys.readouterr().err
    assert main([*cmd, "--out", str(tmp_path / "r3")]) == 0
    err = capsys.readouterr().err
    assert BAR in err and "2/2" in err and "step/s" in err  # one encoder, then the floors


def _recorder(result: Any) -> tuple[list[dict[str, Any]], Any]:
    calls: list[dict[str, Any]] = []

    def record(*args: Any, **kwargs: Any) -> Any:
        calls.append({"args": args, **kwargs})
        return result(*args, **kwargs) if callable(result) else result

    return calls, record


def test_fmnist_passes_progress_to_the_pipeline_and_names_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake(recipe: Any, out: str, **kw: Any) -> dict[str, Any]:
        (Path(out) / "results.md").write_text("# results\n")
        (Path(out) / "report.html").write_text("<html></html>")
        return {}

    calls, record = _recorder(fake)
    monkeypatch.setattr("repmatch.apps.fmnist.pipeline.run_pipeline", record)
    out = tmp_path / "job"
    out.mkdir()
    cmd = ["fmnist", "--out", str(out), "--threads", str(torch.get_num_threads())]
    assert main(cmd) == 0
    printed = capsys.readouterr().out
    assert _lines(printed)[-2:] == [f"results: {out / 'results.md'}", f"report: {out / 'report.html'}"]
    assert printed.count("report.html") == 1
    _tty(monkeypatch)
    assert main(cmd) == 0
    assert main([*cmd, "--no-progress"]) == 0
    assert [c["progress"] for c in calls] == [False, True, False]


def test_the_pipeline_hands_progress_to_every_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from repmatch.apps.fmnist import pipeline
    from repmatch.apps.fmnist.recipe import get_recipe

    seen: dict[str, bool] = {}
    for stage in pipeline.STAGES:
        monkeypatch.setitem(pipeline.STAGE_FUNCS, stage,
                            lambda r, layout, device, progress=False, s=stage: seen.update({s: progress}) or {})
    monkeypatch.setattr(pipeline, "write_results_md", lambda *a: None)
    pipeline.run_pipeline(get_recipe("fmnist-tiny"), tmp_path, progress=True, log=lambda _: None)
    assert seen == dict.fromkeys(pipeline.STAGES, True)


def test_pipeline_stages_forward_progress_to_their_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from repmatch.apps.fmnist import pipeline
    from repmatch.apps.fmnist.parts import Layout
    from repmatch.apps.fmnist.recipe import get_recipe

    recipe, layout, cpu = get_recipe("fmnist-tiny"), Layout.of(tmp_path), torch.device("cpu")
    teacher, record = _recorder(SimpleNamespace(step=1, last_loss=0.0))
    monkeypatch.setattr(pipeline, "train_teacher", record)
    pipeline.stage_teacher(recipe, layout, cpu, True)
    encoders, record = _recorder({"name": "x", "path": "p"})
    monkeypatch.setattr(pipeline, "train_fmnist_encoder", record)
    pipeline.stage_encoders(recipe, layout, cpu, True)
    arms, record = _recorder({"nimg": 1, "step": 1, "skipped": 0})
    monkeypatch.setattr(pipeline, "train", record)
    monkeypatch.setattr(pipeline, "fmnist_task", lambda *a: None)
    pipeline.STAGE_FUNCS["post"](recipe, layout, cpu, True)
    pipeline.STAGE_FUNCS["scratch"](recipe, layout, cpu, False)
    assert [c["progress"] for c in teacher] == [True]
    assert [c["progress"] for c in encoders] == [True] * len(encoders) and encoders
    assert [c["args"][0].progress for c in arms] == [True, False]


def test_teacher_progress_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    calls, record = _recorder(SimpleNamespace(finished=True, step=2, last_loss=0.5))
    monkeypatch.setattr("repmatch.apps.fmnist.teacher.train_teacher", record)
    cmd = ["teacher", "--out", str(tmp_path), "--steps", "2"]
    assert main(cmd) == 0
    assert _lines(capsys.readouterr().out)[-2] == f"weights: {tmp_path / 'teacher.safetensors'}"
    _tty(monkeypatch)
    assert main(cmd) == 0 and main([*cmd, "--no-progress"]) == 0
    assert [c["progress"] for c in calls] == [False, True, False]


def test_fmnist_encoders_progress_and_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    calls, record = _recorder(lambda name, config, **kw: {"name": name, "path": f"{kw['out_dir']}/{name}.st"})
    monkeypatch.setattr("repmatch.apps.fmnist.encoders.train_fmnist_encoder", record)
    cmd = ["fmnist-encoders", "--out", str(tmp_path)]
    assert main(cmd) == 0
    assert _lines(capsys.readouterr().out)[-2:] == [f"weights: {tmp_path}/fmnist_classifier.st",
                                                    f"weights: {tmp_path}/fmnist_autoencoder.st"]
    _tty(monkeypatch)
    assert main(cmd) == 0
    assert [c["progress"] for c in calls] == [False, False, True, True]


def _train_config(tmp_path: Path, **changes: Any) -> str:
    from repmatch.apps.toy import toy

    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(toy(run_dir=str(tmp_path / "run")).replace(progress=True, **changes).to_dict()))
    return str(path)


def test_train_progress_and_rank_0_alone_names_the_run(
    app_tasks: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls, record = _recorder({"nimg": 128, "step": 1, "skipped": 0})
    monkeypatch.setattr("repmatch.train.train", record)
    cmd = ["train", "--config", _train_config(tmp_path)]
    assert main(cmd) == 0
    assert _lines(capsys.readouterr().out)[-1] == f"run directory: {tmp_path / 'run'}"
    monkeypatch.setenv("RANK", "1")  # what torchrun sets on the second process
    assert main(cmd) == 0
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("RANK", "0")
    _tty(monkeypatch)
    assert main(cmd) == 0 and main([*cmd, "--no-progress"]) == 0
    assert [c["args"][0].progress for c in calls] == [False, False, True, False]


def test_study_progress_only_on_a_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    table = tmp_path / "spiral.md"
    table.write_text("| table |\n")
    paths = {"figure": tmp_path / "spiral.png", "table": table, "results": tmp_path / "results.json"}
    calls, record = _recorder(paths)
    monkeypatch.setattr("repmatch.apps.spiral.studies.run_study", record)
    assert main(["spiral", "--out", str(tmp_path), "--quick"]) == 0
    assert _lines(capsys.readouterr().out)[-3:] == [f"{k}: {v}" for k, v in paths.items()]
    _tty(monkeypatch)
    assert main(["study", "spiral", "--out", str(tmp_path), "--quick"]) == 0
    assert [c["progress"] for c in calls] == [False, True]


# ------------------------------------------------------------------------------------ errors
def _no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def _device_cases(tmp: Path) -> dict[str, list[str]]:
    return {
        "features": ["--data", "x.npz", "--encoders", ENCODER, "--out", str(tmp / "o")],
        "eval": ["--gen", "g", "--train", "t", "--out", str(tmp / "o")],
        "floors": ["--train", "t", "--val", "v"],
        "sample": ["--run-dir", str(tmp), "--num", "1", "--out", str(tmp / "o.npz")],
        "teacher": ["--out", str(tmp / "t"), "--steps", "1"],
        "references": ["--features", "f", "--out", str(tmp / "o")],
        "fmnist": ["--out", str(tmp / "job")],
        "train": ["--preset", "toy", "--run-dir", str(tmp / "t")],
    }


def test_every_device_flag_is_checked(tmp_path: Path) -> None:
    with_device = {v for v, p in _subparsers().items() if _flag(p, "--device") is not None}
    assert with_device == set(_device_cases(tmp_path))


@pytest.mark.parametrize("verb", ["fmnist", "sample", "teacher", "train"])
def test_a_dry_run_prints_the_device_given_and_checks_none(verb: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan may be meant for another machine: --dry-run shows --device cuda without CUDA."""
    _no_cuda(monkeypatch)
    run = SimpleNamespace(generator=_Gen(), num_classes=0, conditions=None, captions=None)
    monkeypatch.setattr("repmatch.cli.sample.load_generator", lambda *a: run)
    assert main([verb, *_device_cases(tmp_path)[verb], "--device", "cuda", "--dry-run"]) == 0
    assert '"cuda"' in capsys.readouterr().out
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("verb", sorted(_device_cases(Path("."))))
def test_device_cuda_without_cuda_is_one_line(verb: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _no_cuda(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert main([verb, *_device_cases(tmp_path)[verb], "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"repmatch {verb}: error: --device cuda: CUDA is not available on this machine "
                          "(accepted: cpu"), err
    assert len(_lines(err)) == 1
    assert not (tmp_path / "job").exists() and not (tmp_path / "t").exists()  # refused before any work


def test_a_device_torch_does_not_know_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["features", *_device_cases(tmp_path)["features"], "--device", "gpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repmatch features: error: --device gpu: not a torch device (accepted: cpu"), err


def test_a_cuda_recipe_or_config_without_cuda_says_what_to_pass(
    app_tasks: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_cuda(monkeypatch)
    monkeypatch.setattr("repmatch.apps.fmnist.pipeline.run_pipeline", lambda *a, **k: pytest.fail("ran"))
    assert main(["fmnist", "--preset", "fmnist", "--out", str(tmp_path / "job")]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available on this machine" in err and "--device cpu" in err, err
    assert main(["train", "--config", _train_config(tmp_path, device="cuda")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repmatch train: error: device cuda (in ") and "CUDA is not available" in err, err


@pytest.mark.parametrize("verb", sorted(set(_verb_args(Path("."))) - {"report"}))
@pytest.mark.parametrize(("value", "shown"), [("0", "0"), ("-2", "-2"), ("two", "'two'")])
def test_threads_below_one_names_the_flag(verb: str, value: str, shown: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # A study's options, the shared ones included, are parsed once its NAME is read.
    words = [verb, "spiral"] if verb == "study" else [verb]
    with pytest.raises(SystemExit) as exc:
        main([*words, "--threads", value, "--dry-run"])
    assert exc.value.code == 2
    last = _lines(capsys.readouterr().err)[-1]
    assert last == f"repmatch {' '.join(words)}: error: argument --threads: must be 'auto' or an integer ≥ 1, got {shown}"


def test_every_verb_but_report_takes_threads() -> None:
    """A report computes nothing in torch; every other verb does."""
    from repmatch.cli.study import add_study_options

    parsers = dict(_subparsers())
    parsers["study"] = argparse.ArgumentParser()
    add_study_options(parsers["study"])  # what `repmatch study NAME` adds to every study
    with_threads = {v for v, p in parsers.items() if _flag(p, "--threads") is not None}
    assert with_threads == set(parsers) - {"report"}


@pytest.mark.parametrize("verb", ["sample", "teacher", "references", "train", "fmnist"])
def test_a_negative_seed_names_the_flag(verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([verb, "--seed", "-1", "--dry-run"])
    assert _lines(capsys.readouterr().err)[-1] == (
        f"repmatch {verb}: error: argument --seed: must be an integer ≥ 0, got -1")


def test_seed_only_where_a_verb_draws_randomness() -> None:
    with_seed = {v for v, p in _subparsers().items() if _flag(p, "--seed") is not None}
    # features and report draw nothing; study takes --seeds
    assert with_seed == set(_subparsers()) - {"features", "report", "study"}


@pytest.mark.parametrize("argv", [
    ["train", "--preset", "toy", "--run-dir", "", "--dry-run"],
    ["sample", "--run-dir", "", "--num", "1", "--out", "o.npz"],
    ["fmnist", "--out", "", "--dry-run"],
    ["teacher", "--out", "", "--dry-run"],
    ["features", "--data", "", "--encoders", "a", "--out", "o"],
    ["eval", "--gen", "g", "--train", "t", "--out", ""],
    ["report", ""],
])
def test_an_empty_path_is_refused_naming_the_flag(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    flag = argv[argv.index("") - 1] if argv[argv.index("") - 1].startswith("--") else "run_dir"
    assert _lines(capsys.readouterr().err)[-1] == (
        f"repmatch {argv[0]}: error: argument {flag}: must not be empty (give a path)"
    )


def test_an_invalid_npz_is_named_and_never_unpickled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("these are notes, not arrays\n")
    with pytest.raises(ValueError, match=r"is not a valid \.npz archive") as err:
        NpzImages(text)
    assert str(text) in str(err.value) and "allow_pickle" not in str(err.value)
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.zeros((2, 8, 8), np.uint8))  # a .npy file under an .npz name
    with pytest.raises(ValueError, match=r"is not a valid \.npz archive"):
        open_dataset(str(npy))
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04" + b"\0" * 64)  # a zip signature, then nothing
    with pytest.raises(ValueError, match=r"is not a valid \.npz archive"):
        NpzImages(broken)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, images=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):  # refused, not loaded
        NpzImages(pickled)
    assert main(["features", "--data", str(text), "--encoders", ENCODER, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"repmatch features: error: path: {str(text)!r} is not a valid .npz archive")
    assert "allow_pickle" not in err and len(_lines(err)) == 1


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_labels_subfolder_is_refused_for_an_npz(dry_run: list[str], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    data = _npz(tmp_path / "a.npz", 0, labels=True)
    assert main(["features", "--data", data, "--labels", "subfolder", "--encoders", ENCODER,
                 "--out", str(tmp_path / "o"), *dry_run]) == 2
    err = capsys.readouterr().err
    assert err.startswith("repmatch features: error: --labels subfolder: only for an image folder") and data in err
    with pytest.raises(ValueError, match="labels"):
        open_dataset(data, labels="subfolder")


@pytest.mark.parametrize(
    "error",
    [
        OSError(28, "could not write runs/x/report.html: No space left on device; any previous version of it is unchanged"),
        FloatingPointError("training stopped at nimg=64: 20 consecutive steps were non-finite"),
    ],
    ids=["disk-full", "non-finite-run"],
)
def test_a_full_disk_or_a_diverged_run_is_one_line(error: Exception, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import repmatch.report.html as html

    def fail(*args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(html, "write_report", fail)
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"repmatch report: error: {error}" and "Traceback" not in err
    with pytest.raises(type(error)):
        main(["--debug", "report", str(tmp_path)])
    with pytest.raises(type(error)):  # --debug among the verb's options
        main(["report", str(tmp_path), "--debug"])


def test_report_dry_run_prints_its_plan_and_writes_nothing(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    run.mkdir()
    assert main(["report", str(run), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out) == {"run_dir": str(run), "output": str(run / "report.html"),
                                                   "title": "run"}
    assert not any(run.iterdir())


def test_device_and_seed_override_the_config_and_the_dry_run_shows_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for verb, key in (("train", None), ("fmnist", "recipe")):
        rest = ["--preset", "toy"] if verb == "train" else ["--out", str(tmp_path / "job")]
        assert main([verb, *rest, "--dry-run"]) == 0
        before = json.loads(capsys.readouterr().out)
        before = before[key] if key else before
        assert main([verb, *rest, "--device", "cpu", "--seed", "7", "--dry-run"]) == 0
        after = json.loads(capsys.readouterr().out)
        after = after[key] if key else after
        assert before["seed"] != 7 and after == {**before, "device": "cpu", "seed": 7}, verb
        assert not (tmp_path / "job").exists()


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """`repmatch train ... --dry-run | head -1`: the reader has gone; no 'error: [Errno 32]
    Broken pipe', no traceback, exit status 1."""
    import os
    import subprocess

    read, write = os.pipe()
    os.close(read)  # the reader closed before the first write: every write fails with EPIPE
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src"), "OMP_NUM_THREADS": "1"}
    try:
        argv = ["train", "--preset", "toy", "--dry-run"]
        done = subprocess.run([sys.executable, "-m", "repmatch", *argv], stdout=write, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=tmp_path, timeout=120)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (1, "")


def test_nonfinite_training_error_is_a_floating_point_error() -> None:
    from repmatch.train import NonFiniteTrainingError

    assert issubclass(NonFiniteTrainingError, FloatingPointError)


def test_a_cpu_preset_moved_to_cuda_scores_in_torch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """onnxruntime runs on the CPU: --device cuda on a CPU preset switches its inference backend
    to torch instead of refusing the recipe."""
    assert main(["fmnist", "--preset", "fmnist-tiny", "--device", "cuda", "--out", str(tmp_path), "--dry-run"]) == 0
    recipe = json.loads(capsys.readouterr().out)["recipe"]
    assert (recipe["device"], recipe["inference_backend"]) == ("cuda", "torch")
    assert main(["fmnist", "--preset", "fmnist-tiny", "--device", "cpu", "--out", str(tmp_path), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe"]["inference_backend"] == "onnxruntime"


def test_idle_cpus_counts_idle_and_iowait_and_treats_steal_as_busy() -> None:
    from repmatch.threads import idle_cpus

    # fields: user nice system idle iowait irq softirq steal
    before = [100, 0, 50, 400, 10, 0, 0, 0]
    # 1000 ticks pass on 2 CPUs: 500 busy, 400 idle + 100 iowait -> 2 * 500/1000 = 1.0 idle
    assert idle_cpus(before, [500, 0, 150, 800, 110, 0, 0, 0], 2) == pytest.approx(1.0)
    # the same 1000 ticks with 300 of the busy ones stolen by the hypervisor: still 1.0 idle
    assert idle_cpus(before, [200, 0, 150, 800, 110, 0, 0, 300], 2) == pytest.approx(1.0)
    assert idle_cpus(before, [100, 0, 50, 1400, 10, 0, 0, 0], 4) == pytest.approx(4.0)
    assert idle_cpus(before, before, 2) == 2.0  # no ticks: nothing known to be busy


@pytest.mark.parametrize(("idle_ticks", "mine", "threads"), [(990, 2, 2), (500, 2, 1), (20, 2, 1), (1000, 1, 1)])
def test_threads_auto_are_the_idle_cpus(idle_ticks: int, mine: int, threads: int,
                                        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """--threads auto: the CPUs idle at start (2 CPUs, 1000 ticks in the window), at least one
    and at most the process's own; --threads N sets N; without it torch's count stays."""
    from repmatch import threads as module

    snaps = iter([([0] * 8, 2), ([1000 - idle_ticks, 0, 0, idle_ticks, 0, 0, 0, 0], 2)])
    monkeypatch.setattr(module, "_proc_stat", lambda: next(snaps))
    monkeypatch.setattr(module.time, "sleep", lambda s: None)
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda pid: set(range(mine)), raising=False)
    # The real thread count (one_thread restores it after the test): 3 first, so that a verb
    # that left it alone fails the check.
    monkeypatch.setattr("repmatch.apps.fmnist.pipeline.run_pipeline", lambda *a, **kw: {})
    torch.set_num_threads(3)
    cmd = ["fmnist", "--out", str(tmp_path / "job"), "--no-progress"]
    assert main([*cmd, "--threads", "auto"]) == 0
    assert torch.get_num_threads() == threads
    assert f"[threads] {threads} torch CPU threads" in capsys.readouterr().out
    assert main([*cmd, "--threads", "3"]) == 0
    assert torch.get_num_threads() == 3
    torch.set_num_threads(2)
    assert main(cmd) == 0 and main(["report", str(tmp_path), "--dry-run"]) == 0
    assert torch.get_num_threads() == 2 and "[threads]" not in capsys.readouterr().out
