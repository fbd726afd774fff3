"""The spiral study: data, scorer, stacked training harness, outputs and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from repmatch.apps.spiral import runner
from repmatch.apps.spiral import grid as sp
from repmatch.apps.spiral.data import (
    SpiralScorer,
    SpiralSpec,
    distance_to_polyline,
    orthonormal_embedding,
    sample_spiral,
    spiral_curve,
)
from repmatch.apps.spiral.stacked_mlp import StackedMLP, clip_grad_norm_per_cell

# --- data and scorer -------------------------------------------------------------------------

def test_real_data_scores_the_floor() -> None:
    scorer = SpiralScorer()
    real = sample_spiral(4000, generator=torch.Generator().manual_seed(3))
    recall, med = scorer.score(real)
    assert recall == 1.0
    assert abs(med - 0.033) <= 0.005
    # Independent oracle: the normal offset is |N(0, σ²)|, whose median is Φ⁻¹(3/4) σ.
    assert med == pytest.approx(0.6744897501960817 * 0.05, rel=0.1)


def test_collapsed_sampler_scores_badly() -> None:
    scorer = SpiralScorer()
    # Collapsed at the centre: every curve point has radius >= 0.5, the nearest being c(0).
    blob = 0.01 * torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    recall, med = scorer.score(blob)
    assert recall == 0.0
    assert med == pytest.approx(0.5, abs=0.02)
    # A sampler collapsed onto one point of the curve: medDist ~ 0 but recall exposes it.
    on_curve = spiral_curve(torch.full((4000,), 0.5)).float()
    recall, med = scorer.score(on_curve)
    assert med < 1e-3 and recall <= 2 / 60


def test_polyline_distance_matches_dense_brute_force() -> None:
    pts = 3.0 * torch.rand(300, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) - 1.5
    scorer = SpiralScorer()
    dense = spiral_curve(torch.linspace(0, 1, 400_001, dtype=torch.float64))
    brute = torch.cat([torch.cdist(pts[i : i + 50], dense).min(1).values for i in range(0, 300, 50)])
    assert torch.allclose(distance_to_polyline(pts, scorer.curve), brute, atol=1e-4)
    assert torch.allclose(distance_to_polyline(pts.float(), scorer.curve).double(), brute, atol=1e-4)


def test_anchors_evenly_spaced_in_arc_length() -> None:
    scorer = SpiralScorer(num_anchors=60)
    assert scorer.anchors.shape == (60, 2)
    assert distance_to_polyline(scorer.anchors, scorer.curve).max() < 1e-9
    # Oracle: each anchor's curve parameter (nearest point of a dense sampling), then the arc
    # length of r(θ) = 0.5 + bθ up to it by quadrature; the stations must be k·L/59.
    t = torch.linspace(0, 1, 400_001, dtype=torch.float64)
    t_anchor = t[torch.cdist(scorer.anchors, spiral_curve(t)).argmin(dim=1)]
    b = 2.0 / (4 * math.pi)

    def arc(t_end: float) -> float:
        theta = torch.linspace(0, 4 * math.pi * t_end, 20_001, dtype=torch.float64)
        return float(torch.trapezoid(torch.sqrt((0.5 + b * theta) ** 2 + b**2), theta))

    stations = torch.tensor([arc(float(x)) for x in t_anchor], dtype=torch.float64)
    total = arc(1.0)
    assert torch.allclose(stations, torch.linspace(0, total, 60, dtype=torch.float64), atol=1e-3 * total)


def test_orthonormal_embedding() -> None:
    q = orthonormal_embedding(64, seed=5)
    assert torch.allclose(q.T @ q, torch.eye(2), atol=1e-6)
    assert torch.equal(q, orthonormal_embedding(64, seed=5))
    assert not torch.allclose(q, orthonormal_embedding(64, seed=6))
    x = sample_spiral(100, generator=torch.Generator().manual_seed(0))
    assert torch.allclose((x @ q.T) @ q, x, atol=1e-5)


def test_bad_inputs_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="noise_std"):
        SpiralSpec(noise_std=-1.0)
    with pytest.raises(ValueError, match="points"):
        SpiralScorer().med_dist(torch.zeros(10, 3))
    with pytest.raises(ValueError, match="arms"):
        sp.SpiralConfig(arms=("nope",))
    with pytest.raises(ValueError, match="batch_sizes"):
        sp.SpiralConfig(batch_sizes=(8, 8))
    with pytest.raises(TypeError, match="iterations"):
        sp.SpiralConfig(iterations=1.5)


# --- stacked generator: identities against per-cell modules ----------------------------------

def _per_cell(mlp: StackedMLP, c: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(mlp.weights, mlp.biases)):
        lin = nn.Linear(w.shape[1], w.shape[2])
        with torch.no_grad():
            lin.weight.copy_(w[c].T)
            lin.bias.copy_(b[c, 0])
        layers += [lin, nn.ReLU()] if i < len(mlp.weights) - 1 else [lin]
    return nn.Sequential(*layers)


def test_stacked_mlp_equals_per_cell_modules_and_gradients() -> None:
    mlp = StackedMLP([2, 16, 16, 5], seeds=[1, 2, 3])
    z = torch.randn(3, 7, 2, generator=torch.Generator().manual_seed(0))
    out = mlp(z)
    losses = [(out[c] ** 2).sum() * (c + 1) for c in range(3)]
    sum(losses).backward()
    for c in range(3):
        ref = _per_cell(mlp, c)
        y = ref(z[c])
        assert torch.allclose(out[c], y, atol=1e-6)
        ((y**2).sum() * (c + 1)).backward()
        assert torch.allclose(mlp.weights[0].grad[c], ref[0].weight.grad.T, atol=1e-5)
        assert torch.allclose(mlp.biases[-1].grad[c, 0], ref[-1].bias.grad, atol=1e-5)
    # A cell's initial weights depend only on its seed.
    other = StackedMLP([2, 16, 16, 5], seeds=[9, 2])
    assert torch.equal(other.weights[1][1], mlp.weights[1][1])


def test_per_cell_clip_equals_torch_clip() -> None:
    mlp = StackedMLP([2, 8, 3], seeds=[0, 1, 2])
    z = torch.randn(3, 4, 2)
    scales = torch.tensor([1e-3, 1.0, 1e3])
    (mlp(z).sum(dim=(1, 2)) * scales).sum().backward()
    expected = []
    for c in range(3):
        gs = [p.grad[c].clone().requires_grad_() for p in mlp.parameters()]
        for g in gs:
            g.grad = g.detach().clone()
        norm = torch.nn.utils.clip_grad_norm_(gs, 2.0)
        expected.append((float(norm), [g.grad for g in gs]))
    norms = clip_grad_norm_per_cell(list(mlp.parameters()), 2.0)
    for c in range(3):
        assert float(norms[c]) == pytest.approx(expected[c][0], rel=1e-5)
        for p, g in zip(mlp.parameters(), expected[c][1]):
            assert torch.allclose(p.grad[c], g, rtol=1e-5, atol=1e-8)


def test_stacked_fused_adam_equals_per_cell_adam() -> None:
    torch.manual_seed(0)
    stacked = nn.Parameter(torch.randn(3, 4, 5))
    cells = [nn.Parameter(stacked.detach()[c].clone()) for c in range(3)]
    opt = torch.optim.Adam([stacked], lr=1e-2, fused=True)
    opts = [torch.optim.Adam([p], lr=1e-2) for p in cells]
    for step in range(4):
        grads = torch.randn(3, 4, 5)
        stacked.grad = grads.clone()
        opt.step()
        for c in range(3):
            cells[c].grad = grads[c].clone()
            opts[c].step()
    for c in range(3):
        assert torch.allclose(stacked.detach()[c], cells[c].detach(), atol=1e-6)


# --- harness -------------------------------------------------------------------------------

def test_cells_are_independent_of_grouping() -> None:
    cfg = sp.SpiralConfig(iterations=3, num_eval=50, arms=("drifting", "mmd_rff"), batch_sizes=(8, 16))
    alone = sp.train_cells(cfg, [("mmd_rff", 8)])
    grid = sp.train_cells(cfg, cfg.cells)
    assert set(grid) == set(cfg.cells)
    assert torch.allclose(alone[("mmd_rff", 8)], grid[("mmd_rff", 8)], atol=1e-5)


def test_partition_covers_the_grid_and_balances_cost() -> None:
    cells = sp.SpiralConfig().cells
    parts = sp._partition(cells, 2)
    assert sorted(c for p in parts for c in p) == sorted(cells)
    loads = [sum(sp._cell_cost(c) for c in p) for p in parts]
    assert max(loads) - min(loads) <= max(sp._cell_cost(c) for c in cells)
    assert len(sp._partition(cells[:1], 4)) == 1


def test_nan_loss_never_reaches_the_optimizer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sp, "make_arm_distance", lambda arm, ref, cfg: lambda g, generator=None: g.sum() * math.nan)
    with pytest.raises(FloatingPointError, match="frechet"):
        sp.train_cells(sp.SpiralConfig(iterations=2, arms=("frechet",), batch_sizes=(8,)), [("frechet", 8)])


def test_cosine_schedule_endpoints() -> None:
    cfg = sp.SpiralConfig(iterations=101)
    assert sp._cosine_lr(cfg, 0) == pytest.approx(1e-3)
    assert sp._cosine_lr(cfg, 50) == pytest.approx(0.5 * (1e-3 + 1e-4))
    assert sp._cosine_lr(cfg, 100) == pytest.approx(1e-4)


# --- end to end ----------------------------------------------------------------------------

def test_cli_quick_end_to_end(tmp_path) -> None:
    from repmatch.cli import main

    assert main(["spiral", "--out", str(tmp_path), "--quick", "--no-progress"]) == 0
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"study", "seeds", "real_floor", "wall_time_s", "cells", "runs"} <= set(results)
    assert results["seeds"] == [0] and results["study"] == "spiral"
    assert abs(results["real_floor"] - 0.033) <= 0.005
    cells = {(c["batch_size"], c["arm"]) for c in results["cells"]}
    assert cells == {(b, a) for b in (8, 32, 128) for a in sp.ARMS}
    for c in results["cells"]:
        assert 0.0 <= c["recall"] <= 1.0 and c["med_dist"] >= 0.0
        assert c["sw_ratio"] > 0 and c["mmd_ratio"] > 0
    assert (tmp_path / "spiral.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "spiral.md").read_text()
    by_cell = {(c["batch_size"], c["arm"]): c for c in results["cells"]}
    for b in (8, 32, 128):  # each row carries that row's results.json values, in ARMS order
        row = " | ".join(f"{by_cell[(b, a)]['recall']:.2f} / {by_cell[(b, a)]['med_dist']:.3f}" for a in sp.ARMS)
        assert f"| {b} | {row} |" in table
    assert "1 worker process(es)" in table
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["iterations"] == 40 and config["seeds"] == [0]
    # `repmatch study spiral` is the same study: same cells, same numbers.
    assert main(["study", "spiral", "--out", str(tmp_path / "study"), "--quick", "--no-progress"]) == 0
    again = json.loads((tmp_path / "study" / "results.json").read_text())
    assert [(c["arm"], c["batch_size"], c["med_dist"], c["sw_ratio"]) for c in again["cells"]] == [
        (c["arm"], c["batch_size"], c["med_dist"], c["sw_ratio"]) for c in results["cells"]]


def test_study_quick_spiral_batch(tmp_path) -> None:
    from repmatch.cli import main

    assert main(["study", "spiral-batch", "--out", str(tmp_path), "--quick", "--no-progress"]) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    points = {(p["curve"], p["batch_size"]): p for p in doc["points"]}
    assert set(points) == {(c, b) for c in ("matched", "fixed") for b in (8, 32, 128)}
    ref_b, ref_t, lr = doc["reference"]["batch_size"], doc["reference"]["iterations"], doc["reference"]["lr"]
    for b in (8, 32, 128):
        m, f = points[("matched", b)], points[("fixed", b)]
        assert m["batch_size"] * m["iterations"] == doc["budget"] == ref_b * ref_t
        assert m["lr"] == pytest.approx(lr * math.sqrt(b / ref_b))
        assert f["iterations"] == ref_t and f["lr"] == pytest.approx(lr)
    # The shared reference cell is trained once: both curves carry the same numbers there.
    assert points[("matched", ref_b)]["med_dist"] == points[("fixed", ref_b)]["med_dist"]
    assert (tmp_path / "spiral-batch.png").read_bytes()[:4] == b"\x89PNG"
    assert "Matched budget" in (tmp_path / "spiral-batch.md").read_text()
    assert json.loads((tmp_path / "config.json").read_text())["arm"] == "mmd_nystrom"


def test_study_quick_spiral_distances_and_from_a_spiral_run(tmp_path) -> None:
    from repmatch.cli import main

    out = tmp_path / "d"
    assert main(["study", "spiral-distances", "--out", str(out), "--quick", "--no-progress",
                 "--arms", "frechet,drifting,drifting_floor,mmd_nystrom"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert {(c["batch_size"], c["arm"]) for c in doc["cells"]} == {
        (b, a) for b in (32, 128) for a in ("frechet", "drifting", "drifting_floor", "mmd_nystrom")}
    for b in ("32", "128"):
        for label in ("SW_r", "MMD_r"):
            order = doc["ranking"][b][label]["order"]
            means = doc["ranking"][b][label]["means"]
            assert [means[a] for a in order] == sorted(means.values())
    assert (out / "spiral-distances.png").read_bytes()[:4] == b"\x89PNG"
    # --from ranks an earlier grid's cells without training.
    grid = tmp_path / "grid"
    assert main(["spiral", "--out", str(grid), "--quick", "--no-progress", "--arms", "frechet,mmd_nystrom",
                 "--batch-sizes", "32,128"]) == 0
    ranked = tmp_path / "ranked"
    assert main(["study", "spiral-distances", "--out", str(ranked), "--from", str(grid), "--no-progress"]) == 0
    grid_cells = {(c["arm"], c["batch_size"]): c for c in json.loads((grid / "results.json").read_text())["cells"]}
    for c in json.loads((ranked / "results.json").read_text())["cells"]:
        assert c["sw_ratio"] == grid_cells[(c["arm"], c["batch_size"])]["sw_ratio"]


def test_study_names_match_the_registry_and_bad_names_are_refused(tmp_path, capsys) -> None:
    from repmatch.apps.spiral.studies import STUDIES
    from repmatch.studies import STUDIES as ENTRIES

    assert all(ENTRIES.get(name).name == name for name in STUDIES)
    from repmatch.apps.spiral.studies import run_study
    with pytest.raises(ValueError, match="name must be one of"):
        run_study("spiral-bogus", tmp_path)
    with pytest.raises(ValueError, match="source"):
        run_study("spiral", tmp_path, quick=True, source=tmp_path)


def test_cli_rejects_bad_arm(tmp_path, capsys) -> None:
    from repmatch.cli import main

    assert main(["spiral", "--out", str(tmp_path), "--arms", "frechet,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
    assert main(["study", "spiral-batch", "--out", str(tmp_path), "--batch-sizes", "8,8", "--dry-run"]) == 2
    assert "batch_sizes" in capsys.readouterr().err
    assert main(["study", "spiral-batch", "--out", str(tmp_path), "--arms", "frechet,mmd_exact", "--dry-run"]) == 2
    assert "exactly one arm" in capsys.readouterr().err
    assert main(["study", "spiral-batch", "--out", str(tmp_path), "--arms", "mmd_exact", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["arm"] == "mmd_exact"


def test_default_workers_follow_the_usable_cpus() -> None:
    assert sp.SpiralConfig().workers == sp.usable_cpus() >= 1
    assert len(sp._partition(sp.SpiralConfig().cells, 64)) == 21  # at most one worker per cell


def test_worker_processes_match_in_process_training() -> None:
    # The spawn path (split, queue, result transfer) against one in-process group; a few steps
    # keep the grouping's float rounding below the tolerance.
    cfg = sp.SpiralConfig(iterations=3, num_eval=50, arms=("frechet", "mmd_nystrom"), batch_sizes=(8,),
                          num_features=32, workers=2)
    spawned = sp.run_spiral(cfg, progress=False)
    alone = sp.train_cells(cfg, cfg.cells)
    for cell in spawned.cells:
        assert torch.allclose(cell.samples, alone[(cell.arm, cell.batch_size)], atol=1e-5)


def test_a_worker_that_dies_silently_raises_instead_of_hanging() -> None:
    import queue
    from types import SimpleNamespace

    killed = SimpleNamespace(is_alive=lambda: False, exitcode=-9)
    with pytest.raises(RuntimeError, match="exited with code -9"):
        runner._collect(queue.Queue(), [killed], bar=None, poll_s=0.01)
    failed = queue.Queue()
    failed.put(("error", "Traceback: boom"))
    with pytest.raises(RuntimeError, match="boom"):
        runner._collect(failed, [SimpleNamespace(is_alive=lambda: True, exitcode=None)], bar=None, poll_s=0.01)


def test_table_counts_the_processes_started_not_the_requested_workers() -> None:
    from repmatch.apps.spiral.report import format_table

    cfg = sp.SpiralConfig(arms=("frechet",), batch_sizes=(8, 32), workers=64)
    cells = [sp.SpiralCell(batch_size=b, arm="frechet", recall=0.5, med_dist=0.25, samples=torch.zeros(1, 2))
             for b in (8, 32)]
    result = sp.SpiralResult(config=cfg, cells=cells, real_floor=0.033, real_recall=1.0, wall_time_s=1.0,
                             load_avg=(0.0, 0.0, 0.0))
    assert "2 worker process(es)" in format_table(result)  # one per cell: the split's cap


# --- studies: neutral scores, ranking, seeds ---------------------------------------------------

def test_neutral_ratios_match_a_numpy_formula() -> None:
    import numpy as np

    from repmatch.apps.spiral.neutral import NeutralScorer

    q = orthonormal_embedding(6, seed=3)
    scorer = NeutralScorer(q, seed=3, num_samples=300, num_projections=40, num_features=64, num_floor_draws=2)
    gen = sample_spiral(300, generator=torch.Generator().manual_seed(9)) @ q.T * 1.1 + 0.05
    theta = scorer.projections.numpy()
    w, b = (t.numpy() for t in scorer.rff)
    h = scorer.held_out.numpy()

    def sw2(x):  # mean over projections of the mean squared gap of sorted projections
        return np.mean([np.mean((np.sort(x @ theta[:, k]) - np.sort(h @ theta[:, k])) ** 2)
                        for k in range(theta.shape[1])])

    def mmd2(x):  # ‖mean φ(x) − mean φ(h)‖², φ(x) = sqrt(2/F) cos(xW + b)
        def phi(z):
            return np.sqrt(2.0 / w.shape[1]) * np.cos(z @ w + b)

        return np.sum((phi(x).mean(0) - phi(h).mean(0)) ** 2)

    reals = [scorer._draw(1 + i).numpy() for i in range(2)]
    sw_floor = np.mean([np.sqrt(sw2(r)) for r in reals])
    mmd_floor = np.mean([mmd2(r) for r in reals])
    ((sw_r, mmd_r),) = scorer.score([gen])
    g = gen.double().numpy()
    assert sw_r == pytest.approx(np.sqrt(sw2(g)) / sw_floor, rel=1e-9)
    assert mmd_r == pytest.approx(mmd2(g) / mmd_floor, rel=1e-9)
    assert sw_r > 1.5 and mmd_r > 1.5  # a scaled, shifted spiral is far from real
    assert np.mean([r[0] for r in scorer.real_ratios]) == pytest.approx(1.0)


def test_kendall_tau_and_ranking_against_scipy() -> None:
    from scipy.stats import kendalltau

    from repmatch.apps.spiral.distance_ranking import kendall_tau, rank_arms, ranking_summary

    a, b = ["p", "q", "r", "s", "t"], ["q", "p", "t", "r", "s"]
    want = kendalltau([a.index(x) for x in a], [b.index(x) for x in a]).statistic
    assert kendall_tau(a, b) == pytest.approx(want)
    assert kendall_tau(a, a) == 1.0 and kendall_tau(a, a[::-1]) == -1.0
    assert rank_arms({"x": 2.0, "y": 1.0, "z": 3.0}) == ["y", "x", "z"]
    scores = [{(arm, 32): {"recall": 1.0, "med_dist": 0.1, "sw_ratio": v, "mmd_ratio": v * 2}
               for arm, v in zip(("frechet", "drifting"), vals)} for vals in ((1.0, 2.0), (3.0, 1.5))]
    r = ranking_summary(scores, ["frechet", "drifting"], [32])["32"]
    assert r["SW_r"]["order"] == ["drifting", "frechet"]  # means 1.75 < 2.0
    assert r["SW_r"]["seeds_matching_mean_order"] == 1
    assert r["tau_sw_vs_mmd"] == 1.0


def test_mean_sd_is_the_sample_standard_deviation() -> None:
    import statistics

    from repmatch.apps.spiral.report import mean_sd

    values = [0.031, 0.028, 0.044]
    assert mean_sd(values) == pytest.approx((statistics.mean(values), statistics.stdev(values)))
    assert mean_sd([0.5]) == (0.5, 0.0)


def test_drifting_floor_arm_shares_the_drifting_streams_and_differs_only_by_the_floor() -> None:
    for stream in range(4):
        assert sp._cell_seed(0, "drifting_floor", 128, stream) == sp._cell_seed(0, "drifting", 128, stream)
    assert sp._cell_seed(0, "mmd_nystrom", 128, 0) != sp._cell_seed(0, "drifting", 128, 0)
    ref, _ = sp.spiral_reference(sp.SpiralConfig())
    cfg = sp.SpiralConfig()
    assert sp.make_arm_distance("drifting", ref, cfg).affinity_floor == 0.0
    assert sp.make_arm_distance("drifting_floor", ref, cfg).affinity_floor == cfg.drift_floor == 1e-6


def test_seeds_run_together_equal_seeds_run_alone() -> None:
    cfg = sp.SpiralConfig(iterations=3, num_eval=200, arms=("frechet",), batch_sizes=(8,), workers=1,
                          neutral_projections=16, neutral_features=32)
    both = sp.run_spiral_seeds(cfg, (0, 1), progress=False)
    alone = sp.run_spiral(sp.with_overrides(cfg, seed=1), progress=False)
    assert [r.config.seed for r in both] == [0, 1]
    assert torch.equal(both[1].cells[0].samples, alone.cells[0].samples)
    assert both[1].cells[0].sw_ratio == alone.cells[0].sw_ratio
    assert not torch.equal(both[0].cells[0].samples, both[1].cells[0].samples)


def test_runner_partition_balances_job_costs() -> None:
    jobs = [runner.Job(key=i, config=None, cells=("c",), iterations=1, cost=c)
            for i, c in enumerate((5.0, 4.0, 3.0, 3.0, 2.0, 1.0))]
    parts = runner.partition_jobs(jobs, 2)
    assert sorted(j.key for p in parts for j in p) == list(range(6))
    assert [sum(j.cost for j in p) for p in parts] == [9.0, 9.0]
    with pytest.raises(ValueError, match="workers"):
        runner.partition_jobs(jobs, 0)
