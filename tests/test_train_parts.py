"""Config validation, the √N rule, the few-step adapter, joint features, the CLI verb."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from repmatch.apps.toy import toy_conditional
from repmatch.cli import main
from repmatch.compare import joint_bandwidths
from repmatch.generators.base import FewStepGenerator
from repmatch.represent import ConditionPool, joint_features, one_hot_embedding
from repmatch.train import GeneralTask
from repmatch.train.config import IntervalConfig, JointConfig, OptimConfig, TrainConfig


def _general(run_dir: str = "runs/g") -> TrainConfig:
    return TrainConfig(
        task=GeneralTask(generator="mygen:build", generator_kwargs={"width": 8}, noise_shape=(16,),
                         sampler_steps=2, references="refs", train_encoders=("a",),
                         heldout_encoders=("b",), encoder_weights={"a": "a.safetensors"}),
        run_dir=run_dir, batch_size=32, chunk_size=16, optim=OptimConfig(lr=1e-3),
        intervals=IntervalConfig(total_nimg=64, sample_every_nimg=64),
    )


def test_config_roundtrip_and_errors():
    cfg = _general()
    with pytest.raises(ValueError, match="batch_size"):
        cfg.replace(batch_size=0)
    with pytest.raises(ValueError, match="unknown keys.*'lr'.* in config"):
        TrainConfig.from_dict({**cfg.to_dict(), "lr": 1.0})
    with pytest.raises(ValueError, match="unknown keys.*in config.optim"):
        TrainConfig.from_dict({**cfg.to_dict(), "optim": {"learning_rate": 1.0}})
    with pytest.raises(ValueError, match="intervals.total_nimg"):
        IntervalConfig(total_nimg=-1, log_every_nimg=1, checkpoint_every_nimg=1)
    with pytest.raises(ValueError, match="optim.betas"):
        OptimConfig(betas=(0.9, 1.5))
    with pytest.raises(ValueError, match="joint.beta"):
        JointConfig(beta=0.0)
    with pytest.raises(ValueError, match="not both"):
        OptimConfig(lr_at_batch_5120=1e-3, lr=1e-3)
    with pytest.raises(TypeError, match="task must be a task config"):
        cfg.replace(task="toy")
    with pytest.raises(SystemExit):  # argparse names the accepted presets
        main(["train", "--preset", "imagenet"])


def test_tasks_are_found_by_name_through_entry_points(app_tasks):
    from repmatch.apps.fmnist.study_arms import StudyArmTask
    from repmatch.apps.fmnist.task import FmnistArmTask
    from repmatch.apps.toy import ToyTask
    from repmatch.train import TASKS

    assert TASKS.names() == ["fmnist", "fmnist-study", "general", "toy"]
    found = {n: TASKS.get(n) for n in TASKS.names()}
    assert found == {"general": GeneralTask, "toy": ToyTask, "fmnist": FmnistArmTask, "fmnist-study": StudyArmTask}
    assert all(cls.name == n for n, cls in found.items())  # config.json writes the name it is found by
    assert TASKS.get("repmatch.apps.toy:ToyTask") is ToyTask
    with pytest.raises(TypeError, match="not a task config type"):
        TASKS.get("repmatch.apps.toy:toy")


@pytest.mark.parametrize("which", ["general", "toy", "toy_conditional", "fmnist"])
def test_config_json_round_trips_and_holds_each_value_once(app_tasks, which, tmp_path):
    from repmatch.apps.fmnist.task import arm_preset
    from repmatch.apps.toy import toy

    cfg = {"general": _general, "toy": toy, "toy_conditional": toy_conditional,
           "fmnist": lambda run_dir: arm_preset("fmnist-tiny", run_dir, pipeline_dir=str(tmp_path))}[which]("x")
    data = json.loads(json.dumps(cfg.to_dict()))
    assert TrainConfig.from_dict(data) == cfg
    assert data["task"]["name"] == {"toy_conditional": "toy"}.get(which, which)

    def keys(d, out):
        for k, v in d.items():
            out.append(k)
            if isinstance(v, dict) and k not in ("generator_kwargs", "encoder_weights"):
                keys(v, out)
        return out

    names = keys(data, [])
    assert sorted(n for n in set(names) if names.count(n) > 1) == []  # no field twice, at any depth
    assert "recipe" not in data["task"] and "batch_size" not in data["task"]


def test_unknown_task_name_is_an_error_naming_the_known_ones(app_tasks, tmp_path, capsys):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({**toy_conditional(run_dir="x").to_dict(), "task": {"name": "custom"}}))
    assert main(["train", "--config", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "repmatch train: error: task must be one of ['fmnist', 'fmnist-study', 'general', 'toy']" in err
    with pytest.raises(ValueError, match="task must be one of"):  # --debug: the exception itself
        main(["--debug", "train", "--config", str(path), "--dry-run"])
    with pytest.raises(ValueError, match=r"unknown keys \['conditional'\] in task \(toy\)"):
        TrainConfig.from_dict({**toy_conditional(run_dir="x").to_dict(), "task": {"name": "toy", "conditional": True}})


def test_a_flat_config_of_the_previous_format_is_refused_in_one_line():
    old = {"task": "general", "generator": "mygen:build", "references": "refs", "run_dir": "x",
           "batch_size": 8, "intervals": {"total_nimg": 8}}
    with pytest.raises(ValueError, match=r"^config: this config has the earlier flat format"):
        TrainConfig.from_dict(old)
    with pytest.raises(ValueError, match="format changed"):
        TrainConfig.from_dict({**old, "task": {"name": "toy"}, "task_options": {}})
    # Any one field the flat format held beside the loop's marks it (a hand-written file may
    # hold only a few of them), not an "unknown key" error.
    section = {"run_dir": "x", "batch_size": 8, "intervals": {"total_nimg": 8}, "task": {"name": "toy"}}
    for key in ("generator", "generator_kwargs", "noise_shape", "init_checkpoint", "sampler_steps",
                "references", "train_encoders", "heldout_encoders", "encoder_weights", "joint"):
        with pytest.raises(ValueError, match="earlier flat format"):
            TrainConfig.from_dict({**section, key: None})


def test_resume_compares_an_optional_section_switched_on_or_off():
    """A section on one side and ``null`` on the other (the toy task's ``joint``) is a change:
    resuming an unconditional run as a conditional one is refused, not silently accepted."""
    from repmatch.apps.toy import toy

    plain, joint = toy(run_dir="x"), toy_conditional(run_dir="x")
    assert joint.changed_fields(plain.to_dict()) == ["task.joint"]
    assert plain.changed_fields(joint.to_dict()) == ["task.joint"]
    assert joint.changed_fields(joint.to_dict()) == []
    assert joint.changed_fields({**joint.to_dict(), "run_dir": "y"}) == []  # resumable
    other = joint.replace(task=dataclasses.replace(joint.task, joint=dataclasses.replace(joint.task.joint, beta=2.0)))
    assert other.changed_fields(joint.to_dict()) == ["task.joint.beta"]


def test_train_without_a_task_object_builds_the_config_task(tmp_path):
    """``train(config)`` builds ``config.task`` (here the toy task): the same run as handing
    the builder in."""
    from repmatch.apps.toy import build_toy_task
    from repmatch.train import TrainTask, train

    small = {"total_nimg": 64, "log_every_nimg": 32, "checkpoint_every_nimg": 64}
    config = toy_conditional(run_dir=str(tmp_path / "a")).replace(intervals=IntervalConfig(**small))
    a = train(config)
    b = train(config.replace(run_dir=str(tmp_path / "b")), build_toy_task)
    assert all(torch.equal(x, y) for x, y in zip(a["generator"].state_dict().values(), b["generator"].state_dict().values()))
    task = config.task.build(config, torch.device("cpu"))
    assert isinstance(task, TrainTask) and task.joint_beta == config.task.joint.beta


def test_task_features_join_the_condition_of_each_row():
    """TrainTask.features is eq. 4 on the pool rows that produced the images:
    [φ(x_i), β·e_{c_i}], written out here row by row."""
    from repmatch.train import TrainTask

    labels = torch.tensor([2, 0, 1, 2])
    pool = ConditionPool.from_labels(labels, 3)
    weight = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))

    def encode(x):
        return {"lin": x.flatten(1) @ weight}

    gen = torch.nn.Linear(1, 1)
    gen.noise_shape = (1,)
    task = TrainTask(generator=gen, encode=encode, distances={"lin": lambda f: f.sum()},
                     floors={"lin": 0.0}, conditions=pool, joint_beta=2.5)
    images = torch.rand(3, 1, 2, 2)
    index = torch.tensor([3, 1, 0])
    got = task.features(images, index)["lin"]
    for row, i in enumerate(index.tolist()):
        onehot = torch.zeros(3)
        onehot[int(labels[i])] = 1.0
        want = torch.cat([images[row].flatten() @ weight, 2.5 * onehot])
        assert torch.equal(got[row], want)
    plain = TrainTask(generator=gen, encode=encode, distances={"lin": lambda f: f.sum()}, floors={"lin": 0.0})
    assert torch.equal(plain.features(images, None)["lin"], images.flatten(1) @ weight)


def test_sqrt_learning_rate_rule():
    o = OptimConfig(lr_at_batch_5120=1.6e-6)
    assert o.lr_for(5120) == pytest.approx(1.6e-6)
    assert o.lr_for(4 * 5120) == pytest.approx(3.2e-6)
    assert o.lr_for(1280) == pytest.approx(0.8e-6)
    assert OptimConfig().lr_for(5120) == pytest.approx(1.6e-6)  # the paper's reference rate
    assert OptimConfig(lr=1e-3).lr_for(7) == 1e-3


class StraightVelocity(torch.nn.Module):
    """The exact rectified-flow velocity towards one data point x0: v = (x_t − x0)/t."""

    def __init__(self, x0):
        super().__init__()
        self.x0 = torch.nn.Parameter(x0.clone())

    def forward(self, x, t, condition):
        return (x - self.x0) / t.view(-1, 1, 1, 1)


@pytest.mark.parametrize("steps", [1, 3])
def test_few_step_generator_follows_straight_flow(steps):
    # Along x_t = (1−t)x0 + t·z the flow is straight, so Euler lands on x0 in any number of steps.
    x0 = torch.rand(1, 1, 2, 2, dtype=torch.float64) * 2 - 1
    g = FewStepGenerator(StraightVelocity(x0), steps, (1, 2, 2)).double()
    z = torch.randn(5, 1, 2, 2, dtype=torch.float64)
    out = g(z)
    assert torch.allclose(out, ((x0 + 1) / 2).expand_as(out), atol=1e-12)
    out.sum().backward()  # the gradient flows through every step
    assert g.velocity_model.x0.grad is not None and torch.isfinite(g.velocity_model.x0.grad).all()


class TimeScaledLinear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3).double()

    def forward(self, x, t, condition):
        return self.lin(x) * t.view(-1, 1)


def test_few_step_generator_matches_hand_euler():
    v = TimeScaledLinear()
    model = FewStepGenerator(v, 2, (3,), timesteps=[1.0, 0.3, 0.0])
    z = torch.randn(4, 3, dtype=torch.float64)
    t = lambda value: torch.full((4,), value, dtype=torch.float64)
    x = z + (0.3 - 1.0) * v(z, t(1.0), None)
    x = x + (0.0 - 0.3) * v(x, t(0.3), None)
    assert torch.allclose(model(z), (x + 1) / 2, atol=1e-12)
    with pytest.raises(ValueError, match="timesteps"):
        FewStepGenerator(v, 2, (3,), timesteps=[1.0, 0.5])
    with pytest.raises(ValueError, match="noise"):
        FewStepGenerator(v, 1, (3,))(torch.zeros(2, 4))


def test_joint_features_and_bandwidth():
    img = torch.randn(6, 4, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 2, 0, 1])
    emb = one_hot_embedding(labels, 3)
    j = joint_features(img, emb, 0.5)
    assert torch.equal(j[:, :4], img) and torch.equal(j[:, 4:], 0.5 * emb.double())
    assert j[torch.arange(6), 4 + labels].eq(0.5).all()
    median = float(np.median(pdist(j.numpy())))
    assert joint_bandwidths(j, (0.25, 1.0)) == pytest.approx((0.25 * median, median), rel=1e-12)
    assert joint_bandwidths(j, 2.0) == pytest.approx((2 * median,), rel=1e-12)
    with pytest.raises(ValueError, match="labels"):
        one_hot_embedding(torch.tensor([3]), 3)
    for bad, match in (((), "non-empty"), ((1.0, 1.0), "repeat"), ((1.0, -2.0), r"scales\[i\]"), (0.0, "scales")):
        with pytest.raises(ValueError, match=match):
            joint_bandwidths(j, bad)
    with pytest.raises(ValueError, match="joint.bandwidth_scale"):
        JointConfig(bandwidth_scale=[0.5, 0.5])
    assert JointConfig(bandwidth_scale=[0.5, 1]).bandwidth_scale == (0.5, 1.0)


def test_condition_pool_mirrors_reference():
    labels = torch.tensor([0] * 30 + [1] * 10)  # the reference's condition distribution: 75/25
    pool = ConditionPool.from_labels(labels, 2)
    idx = pool.sample(20000, torch.Generator().manual_seed(0))
    frac = pool.condition(idx).float().mean().item()
    assert abs(frac - 0.25) < 4 * math.sqrt(0.25 * 0.75 / 20000)
    assert torch.equal(pool.embedding(idx), one_hot_embedding(pool.condition(idx), 2))
    text = ConditionPool.from_prompts(["a cat", "a dog"], lambda p: torch.tensor([[len(s), 1.0] for s in p]))
    assert text.condition(torch.tensor([1, 0])) == ["a dog", "a cat"]


def test_cli_dry_run_and_tiny_toy_run(app_tasks, tmp_path, capsys):
    assert main(["train", "--preset", "toy", "--run-dir", str(tmp_path / "dry"), "--dry-run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["task"]["name"] == "toy" and printed["run_dir"] == str(tmp_path / "dry")
    assert not (tmp_path / "dry").exists()

    cfg = toy_conditional(run_dir=str(tmp_path / "run")).to_dict()
    cfg["task"].update(num_real=256, num_val=64, num_landmarks=16)
    cfg.update(batch_size=32, chunk_size=16, heldout_num_samples=64, num_samples=4)
    cfg["intervals"] = {"total_nimg": 96, "log_every_nimg": 32, "checkpoint_every_nimg": 64,
                        "sample_every_nimg": 64, "heldout_every_nimg": 64}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    assert main(["train", "--config", str(path)]) == 0
    run = tmp_path / "run"
    assert json.loads((run / "config.json").read_text()) == TrainConfig.from_dict(cfg).to_dict()
    rows = [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["nimg"] for r in rows if "loss" in r] == [32, 64, 96]
    assert all(math.isfinite(v) for r in rows if "score" in r for v in r["score"].values())
    assert (run / "samples" / "samples-000000000064.png").exists()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-000000000064.pt", "ckpt-000000000096.pt"]


def test_nonnegative_integers_are_checked_by_name():
    from repmatch.apps.fmnist.conv_generator import ConvGeneratorConfig
    from repmatch.apps.fmnist.teacher import TeacherConfig
    from repmatch.compare.nystrom import kmeans
    from repmatch.evaluation import EvalConfig

    assert TeacherConfig(warmup_steps=0).warmup_steps == 0  # 0 is allowed
    for make, name in (
        (lambda v: TeacherConfig(warmup_steps=v), "warmup_steps"),
        (lambda v: ConvGeneratorConfig(num_classes=v), "num_classes"),
        (lambda v: EvalConfig(seed=v), "seed"),
        (lambda v: kmeans(torch.randn(8, 2), 2, iters=v), "iters"),
    ):
        with pytest.raises(ValueError, match=f"{name} must be a non-negative integer, got -1"):
            make(-1)
        for bad in (1.5, True):
            with pytest.raises(TypeError, match=f"{name} must be a non-negative integer"):
                make(bad)
