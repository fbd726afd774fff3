"""The training loop: exact resume, NaN guard, satisfied stop, stats, monitor."""

from __future__ import annotations

import json
import re
import warnings

import pytest
import torch
from _train_toys import InjectedTask, ToyEncoders, brute_mmd_loss, make_generator

from repmatch.train.config import IntervalConfig, OptimConfig, TrainConfig
from repmatch.train.controller import ControllerConfig
from repmatch.train.loop import AntiGamingMonitor, train
from repmatch.references import training_floors
from repmatch.train.task import TrainTask

B = 16


def make_task(floors=None, distance_hook=None, heldout=False):
    """A float64 task with a dropout generator and brute-force eq.-3 distances (oracle)."""
    gen = make_generator(dropout=0.2)
    enc = ToyEncoders(6)
    g = torch.Generator().manual_seed(3)
    refs = {"lin": torch.randn(30, 5, generator=g, dtype=torch.float64),
            "tanh": torch.rand(30, 3, generator=g, dtype=torch.float64) - 0.5}
    bws = {"lin": 2.0, "tanh": 0.5}

    def dist(name):
        def d(x):
            value = brute_mmd_loss(x, refs[name], bws[name])
            return distance_hook(value) if distance_hook else value
        return d

    dists = {k: dist(k) for k in refs}
    if floors is None:
        floors = training_floors(dists, {k: r + 0.3 for k, r in refs.items()}, B).values
    kw = {}
    if heldout:
        held = {"held": lambda x: brute_mmd_loss(x, refs["lin"][:, :3], 1.0)}
        kw = dict(heldout_encode=lambda im: {"held": enc(im)["lin"][:, :3]}, heldout_distances=held,
                  heldout_floors={"held": -0.5})
    return TrainTask(generator=gen, encode=enc, distances=dists, floors=floors, **kw)


def make_config(run_dir, total_steps=6, **kw):
    return TrainConfig(
        task=InjectedTask(), run_dir=str(run_dir), seed=4, batch_size=B, chunk_size=5, device="cpu",
        optim=OptimConfig(lr_at_batch_5120=1e-2, grad_clip_norm=10.0),
        controller=ControllerConfig(score_ema=0.5),
        intervals=IntervalConfig(total_nimg=B * total_steps, log_every_nimg=B, checkpoint_every_nimg=2 * B,
                                 heldout_every_nimg=B),
        ema_halflife_nimg=64, progress=False, heldout_num_samples=8, **kw,
    )


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path):
    full = train(make_config(tmp_path / "a"), task=make_task())
    # Interrupted after 3 steps (checkpoint written at the stop), resumed by a fresh process-like call.
    first = train(make_config(tmp_path / "b"), task=make_task(), session_nimg=3 * B)
    assert first["nimg"] == 3 * B and not first["resumed"]
    second = train(make_config(tmp_path / "b"), task=make_task())
    assert second["resumed"] and second["resumed_from_nimg"] == 3 * B and second["nimg"] == 6 * B
    for (n, p), q in zip(full["generator"].named_parameters(), second["generator"].parameters()):
        assert torch.equal(p, q), n
    ema_a = torch.load(sorted((tmp_path / "a" / "checkpoints").iterdir())[-1], weights_only=False)["ema"]
    ema_b = torch.load(sorted((tmp_path / "b" / "checkpoints").iterdir())[-1], weights_only=False)["ema"]
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    stats_a = [json.loads(x) for x in (tmp_path / "a" / "stats.jsonl").read_text().splitlines()]
    stats_b = [json.loads(x) for x in (tmp_path / "b" / "stats.jsonl").read_text().splitlines()]
    strip = lambda rows: [{k: v for k, v in r.items() if k != "img_per_s"} for r in rows]
    assert strip(stats_a) == strip(stats_b)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["batch_size"] == B
    assert len(list((tmp_path / "a" / "checkpoints").iterdir())) == 2  # keep_checkpoints


def test_resume_without_rng_restore_diverges(tmp_path, monkeypatch):
    """The test above can fail: skipping the RNG restore changes the resumed run."""
    from repmatch.train import loop

    full = train(make_config(tmp_path / "a", total_steps=4), task=make_task())
    train(make_config(tmp_path / "b", total_steps=4), task=make_task(), session_nimg=2 * B)
    monkeypatch.setattr(loop, "restore_rng", lambda state, gen: None)
    second = train(make_config(tmp_path / "b", total_steps=4), task=make_task())
    assert any(not torch.equal(p, q) for p, q in zip(full["generator"].parameters(), second["generator"].parameters()))


def test_nonfinite_step_is_skipped_and_logged(tmp_path):
    poison = {"on": False}
    hook = lambda value: value * float("nan") if poison["on"] else value
    first = train(make_config(tmp_path, total_steps=2), task=make_task(distance_hook=hook))
    snapshot = [p.detach().clone() for p in first["generator"].parameters()]
    task = make_task(distance_hook=hook)  # floors estimated before the poison is switched on
    poison["on"] = True
    with pytest.warns(RuntimeWarning, match="non-finite"):
        out = train(make_config(tmp_path, total_steps=3), task=task)  # resumes; step 3 is NaN
    assert out["skipped"] == 1 and out["last"]["status"] == "nonfinite"
    assert all(torch.equal(p, q) for p, q in zip(out["generator"].parameters(), snapshot))
    events = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert any(e.get("event") == "nonfinite_skip" for e in events)


def test_all_encoders_satisfied_means_no_update(tmp_path):
    task = make_task(floors={"lin": 10.0, "tanh": 10.0})
    before = [p.detach().clone() for p in task.generator.parameters()]
    with pytest.warns(RuntimeWarning, match="floors are too high") as caught:
        out = train(make_config(tmp_path, total_steps=2), task=task)
    assert sum("floors are too high" in str(w.message) for w in caught) == 1  # once, not per step
    assert out["last"]["status"] == "satisfied" and out["last"]["weight"] == {"lin": 0.0, "tanh": 0.0}
    assert all(torch.equal(p, q) for p, q in zip(out["generator"].parameters(), before))


def test_heldout_scores_are_logged(tmp_path):
    train(make_config(tmp_path, total_steps=2), task=make_task(heldout=True))
    rows = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    held = [r for r in rows if "heldout_excess" in r]
    assert len(held) == 2 and set(held[0]["heldout_excess"]) == {"held"}
    # excess = biased MMD² (≥ 0) − floor (−0.5): a sign or floor slip breaks the bound.
    values = [r["heldout_excess"]["held"] for r in held]
    assert all(v >= 0.5 for v in values) and values[0] != values[1]


def test_anti_gaming_monitor():
    m = AntiGamingMonitor(patience=2)
    assert m.update({"h": 1.0}, {"a": -0.1}) is None
    assert m.update({"h": 0.5}, {"a": -0.1}) is None
    assert m.update({"h": 0.6}, {"a": -0.1}) is None   # only 1 of 2 recent stalled so far
    msg = m.update({"h": 0.55}, {"a": -0.1, "b": 0.3})  # best recent 0.55 >= best before 0.5
    assert msg is not None and "['a']" in msg
    assert m.update({"h": 0.7}, {"a": 0.2}) is None     # no training encoder below its floor
    m2 = AntiGamingMonitor(patience=2)
    for h in (1.0, 0.9, 0.8, 0.7):                    # still improving
        assert m2.update({"h": h}, {"a": -1.0}) is None


class _Poisonable(torch.nn.Module):
    """Wraps a generator; while ``poison`` is set every output is NaN."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.noise_shape, self.poison = inner, inner.noise_shape, False

    def forward(self, noise, condition=None):
        out = self.inner(noise, condition)
        return out * float("nan") if self.poison else out


def test_a_generator_emitting_nan_is_skipped_not_fatal(tmp_path):
    """The library's eq.-3 loss refuses non-finite features; the loop must skip the step (with
    a record naming where the value appeared), keep the weights, and go on."""
    from repmatch import NystromReference, mmd_nystrom_loss

    base = make_task()
    g = torch.Generator().manual_seed(5)
    refs = {k: NystromReference.build(torch.randn(40, d, generator=g, dtype=torch.float64),
                                      num_landmarks=8, bandwidth=1.5, seed=0)
            for k, d in (("lin", 5), ("tanh", 3))}
    dists = {k: (lambda x, r=r: mmd_nystrom_loss(x, r)) for k, r in refs.items()}
    gen = _Poisonable(base.generator)

    def task():
        return TrainTask(generator=gen, encode=base.encode, distances=dists,
                         floors={"lin": -1.0, "tanh": -1.0})

    train(make_config(tmp_path, total_steps=2), task=task())
    snapshot = [p.detach().clone() for p in gen.parameters()]
    gen.poison = True
    with pytest.warns(RuntimeWarning, match=r"non-finite value .*generator output"):
        out = train(make_config(tmp_path, total_steps=3), task=task())
    assert out["skipped"] == 1 and out["last"]["status"] == "nonfinite"
    assert all(torch.equal(p, q) for p, q in zip(gen.parameters(), snapshot))
    gen.poison = False
    after = train(make_config(tmp_path, total_steps=4), task=task())
    assert after["last"]["status"] == "ok" and after["step"] == 4

    def strict(token):
        raise ValueError(f"stats.jsonl holds the bare token {token}")

    records = [json.loads(line, parse_constant=strict)
               for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    skips = [r for r in records if r.get("event") == "nonfinite_skip"]
    assert len(skips) == 1 and skips[0]["loss"] is None
    assert skips[0]["where"] == ["generator output", "features[lin]", "features[tanh]"]
    logged = [r for r in records if r.get("nimg") == 3 * B and "lr" in r]
    assert logged and logged[0]["loss"] is None  # the window's only step was skipped


def test_consecutive_nonfinite_steps_stop_the_run_with_a_clear_error(tmp_path):
    """A generator that stays NaN stops after max_consecutive_skips skips in a row (not silently
    to the end of the budget); isolated skips reset the count."""
    from repmatch.train import NonFiniteTrainingError

    base = make_task()
    gen = _Poisonable(base.generator)

    def task():
        return TrainTask(generator=gen, encode=base.encode, distances=base.distances, floors=base.floors)

    train(make_config(tmp_path, total_steps=1, max_consecutive_skips=3), task=task())
    gen.poison = True
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteTrainingError, match=r"3 consecutive steps"):
        train(make_config(tmp_path, total_steps=20, max_consecutive_skips=3), task=task())
    records = [json.loads(line) for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r.get("event") == "nonfinite_skip"] == [2, 3, 4]

    # A finite step resets the count, and the count survives a resume.
    run = tmp_path / "reset"
    gen.poison = False
    train(make_config(run, total_steps=1, max_consecutive_skips=3), task=task())
    for total, poison in ((3, True), (4, False), (6, True)):
        gen.poison = poison
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            out = train(make_config(run, total_steps=total, max_consecutive_skips=3), task=task())
    assert out["step"] == 6 and out["skipped"] == 4
    with pytest.warns(RuntimeWarning), pytest.raises(NonFiniteTrainingError):
        train(make_config(run, total_steps=7, max_consecutive_skips=3), task=task())


def test_resume_refuses_a_changed_config_and_names_the_fields(tmp_path):
    train(make_config(tmp_path, total_steps=2), task=make_task())
    before = (tmp_path / "config.json").read_text()
    changed = make_config(tmp_path, total_steps=3).replace(seed=5, batch_size=2 * B)
    with pytest.raises(ValueError, match=r"\(batch_size, seed differ\)"):
        train(changed, task=make_task())
    assert (tmp_path / "config.json").read_text() == before  # the refused run wrote nothing
    with pytest.raises(ValueError, match=r"\(task.label differ\)"):  # the task section is compared too
        train(make_config(tmp_path, total_steps=3).replace(task=InjectedTask(label="other")), task=make_task())
    out = train(make_config(tmp_path, total_steps=3), task=make_task())  # total_nimg may change
    assert out["resumed"] and out["step"] == 3


def test_resume_refuses_a_checkpoint_of_the_flat_config_format_in_one_line(tmp_path):
    """A run written before the task became a section (``"task": "toy"``, ``task_options`` and
    the general fields beside the loop's) is refused with one line saying the format changed."""
    from repmatch.train.checkpoint import load_checkpoint, save_checkpoint

    train(make_config(tmp_path, total_steps=2), task=make_task())
    path = tmp_path / "checkpoints" / "ckpt-000000000032.pt"
    state = load_checkpoint(path)
    flat = {k: v for k, v in state["config"].items() if k != "task"}
    state["config"] = {**flat, "task": "toy", "task_options": {}, "generator": None, "joint": None}
    save_checkpoint(tmp_path, 32, state, keep=2)
    with pytest.raises(ValueError, match=r"^config: this config has the earlier flat format .*; the format changed") as err:
        train(make_config(tmp_path, total_steps=3), task=make_task())
    assert "\n" not in str(err.value)


def test_resume_drops_a_torn_last_log_line(tmp_path):
    train(make_config(tmp_path, total_steps=2), task=make_task())
    stats = tmp_path / "stats.jsonl"
    stats.write_text(stats.read_text() + '{"nimg": 48, "step": 3, "lo')  # killed mid-append
    with pytest.warns(RuntimeWarning, match="torn last line"):
        train(make_config(tmp_path, total_steps=3), task=make_task())
    records = [json.loads(line) for line in stats.read_text().splitlines()]
    assert [r["nimg"] for r in records if "lr" in r] == [B, 2 * B, 3 * B]


def test_resume_falls_back_from_a_corrupt_newest_checkpoint(tmp_path):
    from repmatch.train.checkpoint import list_checkpoints

    straight = train(make_config(tmp_path / "a", total_steps=4), task=make_task())
    train(make_config(tmp_path / "b", total_steps=4), task=make_task(), session_nimg=4 * B)
    older, newest = list_checkpoints(tmp_path / "b")
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    with pytest.warns(RuntimeWarning, match=rf"checkpoint {re.escape(str(newest))} does not load"):
        again = train(make_config(tmp_path / "b", total_steps=4), task=make_task())
    assert again["resumed_from_nimg"] == int(older.name[5:17])
    for p, q in zip(straight["generator"].parameters(), again["generator"].parameters()):
        assert torch.equal(p, q)  # replaying from the older state ends where the straight run did


def test_a_second_writer_of_a_run_directory_is_refused_naming_the_holder(tmp_path):
    """Another process holding the run's lock (here: a child that takes it and waits)."""
    import multiprocessing as mp

    from repmatch.train.checkpoint import run_lock

    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(ValueError, match=rf"another process \(pid {holder.pid} on "):
            train(make_config(tmp_path, total_steps=1), task=make_task())
        assert not (tmp_path / "stats.jsonl").exists()
    finally:
        done.set()
        holder.join(60)
    with run_lock(tmp_path):  # released with its holder: the next writer takes it
        pass
    assert train(make_config(tmp_path, total_steps=1), task=make_task())["step"] == 1
    assert not (tmp_path / "lock.owner").exists()


def _hold_lock(run_dir, ready, done):
    from repmatch.train.checkpoint import run_lock

    with run_lock(run_dir):
        ready.set()
        done.wait(60)


def test_log_records_the_weighted_raw_objective(tmp_path):
    """The logged loss Σλ·D/|D| only counts active weights; "objective" is Σλ·D, what the
    report plots beside each encoder's raw distance."""
    from repmatch.report.curves import curve_panels, read_stats

    train(make_config(tmp_path, total_steps=3), task=make_task())
    rows = [json.loads(x) for x in (tmp_path / "stats.jsonl").read_text().splitlines()]
    logged = [r for r in rows if "objective" in r]
    assert len(logged) == 3
    for r in logged:
        assert r["objective"] == pytest.approx(sum(r["weight"][k] * r["score"][k] for k in r["score"]), rel=1e-12)
    panels, _ = curve_panels([("run", read_stats(tmp_path / "stats.jsonl").records)])
    keys = [p.key for p in panels]
    assert keys[:2] == ["objective", "score"] and "loss" not in keys
