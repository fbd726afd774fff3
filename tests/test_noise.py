"""The SW_r,k noise level (``repmatch.metrics.noise``): disjoint draws sized and placed as
documented, and the spread |r(A) − r(B)| against POT's sliced Wasserstein on the same rows and
projections; identities: the floors' own validation draw scores exactly 1, a draw against
itself has zero spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repmatch.metrics import (
    disjoint_draws,
    random_projections,
    subsample_indices,
    sw_floors,
    sw_noise_level,
)


@pytest.mark.parametrize(("num_rows", "size", "extra"), [(10, 5, 0), (10, 3, 0), (7, 5, 3), (4, 4, 4), (1, 1, 1)])
def test_draws_are_disjoint_sized_and_a_is_the_floor_rows(num_rows, size, extra):
    a, b = disjoint_draws(num_rows, size, seed=3, extra_rows=extra)
    assert a.shape == (size,) and b.shape == (size,)
    assert len(set(a.tolist()) | set(b.tolist())) == 2 * size  # disjoint, no repeats
    assert all(0 <= i < num_rows + extra for i in [*a.tolist(), *b.tolist()])
    # A: exactly the rows floors and scores read from a store of num_rows rows.
    assert torch.equal(a, subsample_indices(num_rows, size, 3))
    # B: the store's remaining rows first; extra rows only where the store runs out.
    from_store = [i for i in b.tolist() if i < num_rows]
    assert len(from_store) == min(size, num_rows - size)
    assert sorted(i for i in b.tolist() if i >= num_rows) == list(range(num_rows, num_rows + size - len(from_store)))


def test_draws_refuse_a_pool_too_small():
    with pytest.raises(ValueError, match="need 10 rows"):
        disjoint_draws(6, 5, 0, extra_rows=3)
    with pytest.raises(ValueError, match="extra_rows"):
        disjoint_draws(6, 2, 0, extra_rows=-1)


def _pot_ratio(x: torch.Tensor, train: torch.Tensor, floor: float, num_projections: int, seed: int) -> float:
    ot = pytest.importorskip("ot")
    theta = random_projections(x.shape[1], num_projections, seed).numpy()
    sw = ot.sliced_wasserstein_distance(x.double().numpy(), train.double().numpy(), projections=theta, p=2)
    return float(sw) / floor


def test_noise_is_the_spread_of_two_real_draws_against_pot():
    g = torch.Generator().manual_seed(0)
    pool = {"a": torch.randn(90, 6, generator=g), "b": torch.randn(90, 3, generator=g) * 4 + 1}
    train = {k: torch.randn(120, v.shape[1], generator=g) * 1.1 for k, v in pool.items()}
    n, seed, projections = 40, 5, 64
    ia, ib = disjoint_draws(90, n, seed)
    draw_a = {k: v[ia] for k, v in pool.items()}
    draw_b = {k: v[ib] for k, v in pool.items()}
    # Floors from the first draw, the way the floors stage computes them (val = draw A).
    floors = sw_floors(train, {k: v[subsample_indices(90, n, seed)] for k, v in pool.items()},
                       projections, seed, num_samples=n)
    out = sw_noise_level(draw_a, draw_b, train, floors, num_projections=projections, seed=seed, held_out=["b"])
    assert out["draw_size"] == n
    # train is cut to n rows by the same seeded rule as every score
    cut = {k: v[subsample_indices(120, n, seed)] for k, v in train.items()}
    ra = {k: _pot_ratio(draw_a[k], cut[k], floors[k], projections, seed) for k in pool}
    rb = {k: _pot_ratio(draw_b[k], cut[k], floors[k], projections, seed) for k in pool}
    for k in pool:
        assert out["a"]["per_encoder"][k] == pytest.approx(ra[k], rel=1e-9)
        assert out["b"]["per_encoder"][k] == pytest.approx(rb[k], rel=1e-9)
        assert out["per_encoder"][k] == pytest.approx(abs(ra[k] - rb[k]), rel=1e-9, abs=1e-12)
        # A is the floors' own validation set: exactly 1 by construction
        assert out["a"]["per_encoder"][k] == 1.0
    assert out["mean"] == pytest.approx(abs(np.mean(list(ra.values())) - np.mean(list(rb.values()))), rel=1e-9)
    assert out["held_out_mean"] == pytest.approx(abs(ra["b"] - rb["b"]), rel=1e-9)
    assert 0 < out["mean"] < 1  # real draws: a spread, not a separation


def test_a_draw_against_itself_has_no_spread_and_inputs_are_checked():
    g = torch.Generator().manual_seed(1)
    x, t = {"e": torch.randn(30, 4, generator=g)}, {"e": torch.randn(30, 4, generator=g)}
    out = sw_noise_level(x, x, t, {"e": 0.5}, num_projections=16)
    assert out["per_encoder"] == {"e": 0.0} and out["mean"] == 0.0 and out["held_out_mean"] is None
    with pytest.raises(ValueError, match="one number of rows"):
        sw_noise_level(x, {"e": x["e"][:20]}, t, {"e": 0.5})
    with pytest.raises(ValueError, match="same encoders"):
        sw_noise_level(x, {"f": x["e"]}, t, {"e": 0.5})
