"""The spiral study: data, scorer, stacked training harness, outputs and the CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from repmatch.apps.spiral import study as sp
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
    assert set(results) == {"real_floor", "wall_time_s", "cells"}
    assert abs(results["real_floor"] - 0.033) <= 0.005
    cells = {(c["batch_size"], c["arm"]) for c in results["cells"]}
    assert cells == {(b, a) for b in (8, 32, 128) for a in sp.ARMS}
    for c in results["cells"]:
        assert 0.0 <= c["recall"] <= 1.0 and c["med_dist"] >= 0.0
    assert (tmp_path / "spiral.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "spiral.md").read_text()
    by_cell = {(c["batch_size"], c["arm"]): c for c in results["cells"]}
    for b in (8, 32, 128):  # each row carries that row's results.json values, in ARMS order
        row = " | ".join(f"{by_cell[(b, a)]['recall']:.2f} / {by_cell[(b, a)]['med_dist']:.3f}" for a in sp.ARMS)
        assert f"| {b} | {row} |" in table
    assert "1 worker process(es)" in table
    assert json.loads((tmp_path / "config.json").read_text())["iterations"] == 40


def test_cli_rejects_bad_arm(tmp_path, capsys) -> None:
    from repmatch.cli import main

    assert main(["spiral", "--out", str(tmp_path), "--arms", "frechet,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_default_workers_follow_the_usable_cpus() -> None:
    assert sp.SpiralConfig().workers == sp.usable_cpus() >= 1
    assert len(sp._partition(sp.SpiralConfig().cells, 64)) == 18  # at most one worker per cell


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
        sp._collect(queue.Queue(), [killed], bar=None, poll_s=0.01)
    failed = queue.Queue()
    failed.put(("error", "Traceback: boom"))
    with pytest.raises(RuntimeError, match="boom"):
        sp._collect(failed, [SimpleNamespace(is_alive=lambda: True, exitcode=None)], bar=None, poll_s=0.01)


def test_table_counts_the_processes_started_not_the_requested_workers() -> None:
    from repmatch.apps.spiral.report import format_table

    cfg = sp.SpiralConfig(arms=("frechet",), batch_sizes=(8, 32), workers=64)
    cells = [sp.SpiralCell(batch_size=b, arm="frechet", recall=0.5, med_dist=0.25, samples=torch.zeros(1, 2))
             for b in (8, 32)]
    result = sp.SpiralResult(config=cfg, cells=cells, real_floor=0.033, real_recall=1.0, wall_time_s=1.0,
                             load_avg=(0.0, 0.0, 0.0))
    assert "2 worker process(es)" in format_table(result)  # one per cell: the split's cap
