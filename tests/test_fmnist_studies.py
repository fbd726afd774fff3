"""The Fashion-MNIST studies (``repmatch study fmnist-*``): every study's ``--quick`` through the
CLI on one smoke base, each checked against what it claims to vary and to read."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from repmatch.cli import main

pytestmark = pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist").is_dir()
    and "REPMATCH_FMNIST_ROOT" not in __import__("os").environ,
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)

STUDIES = ("fmnist-batch", "fmnist-distances", "fmnist-controller", "fmnist-gaming", "fmnist-joint")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every study's --quick, the first building the smoke base the others reuse (--base)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads cost more than they save
    try:
        root = tmp_path_factory.mktemp("studies")
        base = root / "base"
        out = {}
        for name in STUDIES:
            out[name] = root / name
            assert main(["study", name, "--quick", "--out", str(out[name]), "--base", str(base)]) == 0
        yield out
    finally:
        torch.set_num_threads(threads)


def _results(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _arm_runs(run: Path) -> dict[str, dict]:
    """``{arm key: its saved TrainConfig}``."""
    return {p.name: json.loads((p / "config.json").read_text()) for p in sorted((run / "arms").iterdir())}


def _stats(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]


def test_study_names_match_the_registry() -> None:
    from repmatch.apps.fmnist.studies import STUDIES as REGISTERED
    from repmatch.studies import STUDIES as ENTRIES

    assert REGISTERED == STUDIES
    assert all(ENTRIES.get(name).name == name for name in STUDIES)


def test_every_study_writes_its_outputs_and_trains_every_arm_from_the_start(runs) -> None:
    from safetensors.torch import load_file

    from repmatch.train import latest_checkpoint, load_checkpoint

    teacher = load_file(str(runs["fmnist-batch"].parent / "base" / "teacher" / "teacher.safetensors"))
    for name, run in runs.items():
        for f in ("results.json", f"{name}.md", f"{name}.png", "config.json"):
            assert (run / f).is_file(), (name, f)
        for key, config in _arm_runs(run).items():
            state = load_checkpoint(latest_checkpoint(run / "arms" / key))
            assert state["nimg"] == config["intervals"]["total_nimg"]
            weights = state["generator"]
            if name == "fmnist-gaming":  # fresh ConvGenerators, not the teacher
                assert config["task"]["generator"] == "scratch"
                assert not any(k.startswith("velocity_model.") for k in weights)
                continue
            # Fine-tuned from the teacher: the same parameters, and some of them moved unless
            # every step found the arm's training encoders at their floors (no update).
            assert {f"velocity_model.{k}" for k in teacher} == set(weights), (name, key)
            moved = any(not torch.equal(weights[f"velocity_model.{k}"], v) for k, v in teacher.items())
            statuses = {s["status"] for s in _stats(run / "arms" / key) if "status" in s}
            assert moved == (statuses != {"satisfied"}), (name, key, statuses)
        # The table reads results.json: every arm's mean SW_r,k appears in it.
        table = (run / f"{name}.md").read_text()
        for arm, entry in _results(run)["arms"].items():
            assert f"{entry['summary']['sw_mean']['mean']:.3f}" in table, (name, arm)


def test_scores_are_distance_over_the_base_floor(runs) -> None:
    run = runs["fmnist-controller"]
    floors = json.loads((run.parent / "base" / "features" / "train" / "floors.json").read_text())
    for key in ("gated-seed0", "uniform-seed0", "start"):
        ev = json.loads((run / "eval" / key / "eval.json").read_text())
        scores = json.loads((run / "eval" / key / "scores.json").read_text())
        for enc, ratio in scores["per_encoder"].items():
            assert ratio == pytest.approx(ev["sw"]["distance"][enc] / floors["values"][enc], rel=1e-12)
        trained = [scores["per_encoder"][e] for e in ("fmnist_classifier", "efficientnet_lite0")]
        assert scores["mean"] == pytest.approx(np.mean(list(scores["per_encoder"].values())), rel=1e-12)
        assert max(trained) >= min(trained)


def test_batch_arms_share_the_image_budget_at_lr_proportional_to_sqrt_n(runs) -> None:
    run = runs["fmnist-batch"]
    study = json.loads((run / "config.json").read_text())
    configs = _arm_runs(run)
    assert len(configs) == len(study["batch_sizes"]) * len(study["seeds"])
    for key, config in configs.items():
        n = config["batch_size"]
        assert key.startswith(f"N{n}-")
        assert config["optim"]["lr"] == pytest.approx(study["lr"] * math.sqrt(n / study["lr_batch"]), rel=1e-12)
        assert config["intervals"]["total_nimg"] == study["budget_nimg"]
        # One training encoder, the study's.
        assert config["task"]["train_encoders"] == [study["encoder"]]
        steps = [s["step"] for s in _stats(run / "arms" / key) if "step" in s]
        assert max(steps) == study["budget_nimg"] // n


def test_uniform_weights_are_equal_and_gated_weights_share_the_budget(runs) -> None:
    run = runs["fmnist-controller"]
    budget = json.loads((run / "arms" / "uniform-seed0" / "config.json").read_text())["controller"]["budget"]
    uniform = [s["weight"] for s in _stats(run / "arms" / "uniform-seed0") if s.get("weight")]
    gated = [s["weight"] for s in _stats(run / "arms" / "gated-seed0") if s.get("weight")]
    assert uniform and gated
    for w in uniform:
        assert set(w) == {"fmnist_classifier", "efficientnet_lite0"}
        assert all(v == pytest.approx(budget / 2) for v in w.values())
    for w in gated:  # violators share Σ; satisfied encoders get 0
        assert sum(w.values()) == pytest.approx(budget) or sum(w.values()) == 0


def test_distance_arms_train_on_their_distance_with_the_references_kernel(runs) -> None:
    from repmatch.apps.fmnist.recipe import FmnistRecipe
    from repmatch.apps.fmnist.study_arms import ARM_DISTANCES, StudyBase
    from repmatch.features import FeatureStore

    run = runs["fmnist-distances"]
    configs = _arm_runs(run).values()
    assert {c["task"]["distance"] for c in configs} == set(ARM_DISTANCES)
    assert {c["controller"]["mode"] for c in configs} == {"uniform"}  # no gating on one encoder
    results = _results(run)
    for entry in results["arms"].values():
        scores = next(iter(entry["seeds"].values()))["scores"]
        assert "mmd:fmnist_classifier" in scores  # the second neutral reading
    study = json.loads((run / "config.json").read_text())
    recipe = FmnistRecipe.from_dict(study["recipe"])
    base = StudyBase(recipe, run.parent / "base", run)
    store = FeatureStore(base.layout.reference_features(recipe))
    # The MMD family's kernel: the median pairwise distance of the joint pool (scipy) × scales.
    pool = base._pool("fmnist_classifier", store, joint=True)
    median = float(np.median(pdist(pool.double().numpy())))
    dist = base._fitted("mmd_rff", "fmnist_classifier", store, joint=True, seed=0)
    expected = tuple(median * s for s in recipe.bandwidth_scale)
    assert tuple(dist.bandwidths) == pytest.approx(expected, rel=1e-5)


def test_marginal_references_drop_the_class_and_joint_keeps_it(runs) -> None:
    from repmatch.references import load_references

    run = runs["fmnist-joint"]
    base = run.parent / "base"
    marginal = load_references(run / "references-marginal" / "fmnist_classifier")
    joint = load_references(base / "references" / "fmnist_classifier")
    assert joint[0].landmarks.shape[1] == marginal[0].landmarks.shape[1] + 10
    assert "onehot" not in marginal[0].fingerprint and marginal[0].fingerprint in joint[0].fingerprint
    configs = _arm_runs(run)
    assert configs["marginal-seed0"]["task"]["joint"] is False and configs["joint-seed0"]["task"]["joint"] is True


def test_gaming_arms_are_monitored_on_the_held_out_encoders(runs) -> None:
    run = runs["fmnist-gaming"]
    results = _results(run)
    assert set(results["arms"]) == {"single", "battery"}
    for arm, entry in results["arms"].items():
        cell = entry["seeds"]["0"]
        assert cell["spec"]["task"]["train_encoders"] == (["fmnist_classifier"] if arm == "single"
                                                  else ["fmnist_classifier", "efficientnet_lite0"])
        checks = [s for s in _stats(run / "arms" / f"{arm}-seed0") if "heldout_excess" in s]
        assert len(checks) == len(cell["monitor"]["nimg"]) >= 1
        for s in checks:
            assert set(s["heldout_excess"]) == {"fmnist_autoencoder"}
        warned = [s["nimg"] for s in checks if s["monitor"]]
        assert cell["monitor"]["first_warning_nimg"] == (warned[0] if warned else None)
    assert (run / "samples" / "single-seed0.png").is_file()


def test_a_rerun_does_not_retrain(runs) -> None:
    run = runs["fmnist-joint"]
    before = {k: (run / "arms" / k / "stats.jsonl").read_text() for k in _arm_runs(run)}
    assert main(["study", "fmnist-joint", "--quick", "--out", str(run), "--base", str(run.parent / "base")]) == 0
    assert {k: (run / "arms" / k / "stats.jsonl").read_text() for k in before} == before


def test_other_settings_in_a_finished_study_are_refused(runs, capsys) -> None:
    run = runs["fmnist-joint"]
    assert main(["study", "fmnist-joint", "--quick", "--out", str(run), "--base", str(run.parent / "base"),
                 "--lr", "0.01"]) == 2
    assert "holds another configuration" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["study", "fmnist-joint", "--quick", "--arms", "bogus"], "arms of fmnist-joint must be among"),
    ],
)
def test_bad_options_get_one_line(argv, message, tmp_path, capsys) -> None:
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["study", "fmnist-joint", "--workers", "2"], "--workers"),
        (["study", "spiral", "--base", "x"], "--base"),
        (["study", "spiral", "--lr", "0.1"], "--lr"),
        (["study", "spiral", "--generator", "post"], "--generator"),
        (["study", "spiral-batch", "--from", "x"], "--from"),
    ],
)
def test_a_study_refuses_the_options_of_another(argv, flag, tmp_path, capsys) -> None:
    """Each study parses its own options: another study's is an unknown argument."""
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--quick", "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"repmatch study {argv[1]}: error: unrecognized arguments: {flag}")


def test_an_unknown_study_is_refused_naming_the_installed_ones(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["study", "nope", "--out", "o"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("repmatch study: error: study must be one of [") and "'fmnist-joint'" in err


def test_the_generator_is_checked_and_the_scratch_start_is_a_fresh_conv_generator(runs, tmp_path) -> None:
    from repmatch.apps.fmnist.studies import resolve_config

    with pytest.raises(ValueError, match="generator must be one of"):
        resolve_config("fmnist-gaming", out=tmp_path, quick=True, generator="gan")
    assert resolve_config("fmnist-joint", out=tmp_path, quick=True).generator == "post"
    table = (runs["fmnist-gaming"] / "fmnist-gaming.md").read_text()
    assert "untrained ConvGenerator" in table and "untrained start (1 step)" not in table
