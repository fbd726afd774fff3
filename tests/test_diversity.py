"""Within-class diversity against a brute-force pairwise oracle (scipy's pdist) and identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist

from repmatch.metrics import class_spreads, mean_pairwise_distance, within_class_diversity


def _data(seed: int, n: int = 60, d: int = 5, classes: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * (1 + labels[:, None].double())
    return x, labels


def test_mean_pairwise_distance_matches_scipy_pdist():
    x, _ = _data(0)
    assert mean_pairwise_distance(x.float()) == pytest.approx(pdist(x.numpy()).mean(), rel=1e-6)


def test_class_spreads_match_a_per_class_oracle_and_subsample():
    x, y = _data(1)
    spreads = class_spreads(x, y)
    for c in range(3):
        assert spreads[c] == pytest.approx(pdist(x[y == c].numpy()).mean(), rel=1e-12)
    capped = class_spreads(x, y, max_per_class=7, seed=3)
    assert all(capped[c] != spreads[c] for c in range(3))  # a subsample, not the whole class


def test_relative_diversity_identities():
    x, y = _data(2)
    same = within_class_diversity(x, y, x, y)
    assert same["diversity"] == pytest.approx(1.0, rel=1e-12)
    doubled = within_class_diversity(2 * x, y, x, y)
    assert doubled["diversity"] == pytest.approx(2.0, rel=1e-12)
    # One image per class (a mode-collapsed conditional generator): zero spread.
    collapsed = torch.stack([x[y == c][0] for c in y.tolist()])
    assert within_class_diversity(collapsed, y, x, y)["diversity"] == 0.0


def test_only_shared_classes_count_and_ratio_is_the_mean_of_per_class_ratios():
    x, y = _data(3)
    gx, gy = x[y != 2] * torch.tensor([1.0, 0.5, 1.0, 1.0, 1.0], dtype=torch.float64), y[y != 2]
    out = within_class_diversity(gx, gy, x, y)
    assert sorted(out["per_class"]) == [0, 1]
    expected = np.mean([pdist(gx[gy == c].numpy()).mean() / pdist(x[y == c].numpy()).mean() for c in (0, 1)])
    assert out["diversity"] == pytest.approx(expected, rel=1e-12)


def test_bad_inputs_name_the_argument():
    x, y = _data(4)
    with pytest.raises(ValueError, match="gen labels"):
        within_class_diversity(x, y[:-1], x, y)
    with pytest.raises(TypeError, match="real labels"):
        within_class_diversity(x, y, x, y.double())
    with pytest.raises(ValueError, match="gen contains NaN"):
        within_class_diversity(x * float("nan"), y, x, y)
    with pytest.raises(ValueError, match="same feature dim"):
        within_class_diversity(x[:, :3], y, x, y)
    with pytest.raises(ValueError, match="all identical"):
        within_class_diversity(x, y, torch.zeros_like(x), y)
    with pytest.raises(ValueError, match="share no class"):
        within_class_diversity(x[y == 0], y[y == 0], x[y == 1], y[y == 1])
