"""Evaluation metrics against independent oracles: POT, scipy, scikit-learn, closed forms."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from repmatch.metrics import (
    FingerprintMismatchError,
    check_fingerprints,
    fd_ratio_panel,
    frechet_distance,
    lower_median_bandwidth,
    mmd_ratio_panel,
    random_projections,
    rff_mmd2,
    sliced_wasserstein,
    sqrtm_psd,
    sw_floors,
    sw_ratio_panel,
)
from repmatch.metrics.mmd import rff_mean_embedding, rff_weights


def feats(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scale + shift


# ---------------------------------------------------------------- sliced Wasserstein


def test_sw_matches_pot_given_same_projections() -> None:
    ot = pytest.importorskip("ot")
    x, y = feats(300, 16, 0), feats(300, 16, 1, shift=0.3, scale=1.5)
    theta = random_projections(16, 200, seed=3)
    ours = sliced_wasserstein(x, y, projections=theta)
    theirs = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), projections=theta.numpy(), p=2)
    assert ours == pytest.approx(float(theirs), rel=1e-10, abs=1e-12)
    # the seeded default draws exactly these projections
    assert sliced_wasserstein(x, y, num_projections=200, seed=3) == pytest.approx(ours, rel=1e-12)


def test_sw_of_a_set_with_itself_is_zero() -> None:
    x = feats(257, 9, 2)
    assert sliced_wasserstein(x, x, num_projections=64) == 0.0
    assert sliced_wasserstein(x, x[torch.randperm(257)], num_projections=64) == pytest.approx(
        0.0, abs=1e-12
    )


def test_sw_mean_shift_closed_form() -> None:
    d, n = 32, 512
    x = feats(n, d, 4)
    m = torch.full((d,), 0.5, dtype=torch.float64)
    # y = x + m: every 1-D projection shifts by θᵀm, so W₂² = (θᵀm)² exactly (identity oracle)
    theta = random_projections(d, 4096, seed=0)
    exact = math.sqrt(float((theta.T @ m).square().mean()))
    assert sliced_wasserstein(x, x + m, projections=theta) == pytest.approx(exact, rel=1e-10)
    # closed form over the sphere: E_θ (θᵀm)² = ‖m‖²/D; Monte-Carlo std of the mean is √(2/L)·that
    target = float(m.square().sum()) / d
    sw2 = sliced_wasserstein(x, x + m, num_projections=4096, seed=1) ** 2
    assert abs(sw2 - target) < 4 * math.sqrt(2 / 4096) * target


def test_sw_isotropic_gaussian_shift_statistically() -> None:
    # independent samples of N(0, I) and N(m, I): SW² ≈ ‖m‖²/D plus O(1/√N) sampling bias
    d, n = 8, 4000
    m = torch.zeros(d, dtype=torch.float64)
    m[0] = 3.0
    sw2 = sliced_wasserstein(feats(n, d, 5), feats(n, d, 6) + m, num_projections=2048) ** 2
    assert sw2 == pytest.approx(9.0 / d, rel=0.1)


@pytest.mark.parametrize("chunk", [1, 7, 100, 1024])
def test_sw_independent_of_chunk_size(chunk: int) -> None:
    x, y = feats(200, 12, 7), feats(200, 12, 8, shift=0.2)
    ref = sliced_wasserstein(x, y, num_projections=300, chunk_size=300)
    assert sliced_wasserstein(x, y, num_projections=300, chunk_size=chunk) == pytest.approx(
        ref, rel=1e-6
    )


def test_sw_float32_inputs_accumulate_in_float64() -> None:
    x, y = feats(100, 5, 9), feats(100, 5, 10, shift=1.0)
    assert sliced_wasserstein(x.float(), y.float(), num_projections=50) == pytest.approx(
        sliced_wasserstein(x.float().double(), y.float().double(), num_projections=50), rel=1e-12
    )


def test_random_projections_are_seeded_unit_columns() -> None:
    a, b = random_projections(10, 20, seed=5), random_projections(10, 20, seed=5)
    assert a.dtype == torch.float64 and a.shape == (10, 20)
    assert torch.equal(a, b)
    assert not torch.equal(a, random_projections(10, 20, seed=6))
    assert torch.allclose(a.norm(dim=0), torch.ones(20, dtype=torch.float64), atol=1e-12)


def test_sw_input_errors_name_the_parameter() -> None:
    x = feats(10, 4, 0)
    with pytest.raises(ValueError, match="same number of samples"):
        sliced_wasserstein(x, feats(11, 4, 1))
    with pytest.raises(ValueError, match="dimension"):
        sliced_wasserstein(x, feats(10, 5, 1))
    with pytest.raises(ValueError, match="unit-norm"):
        sliced_wasserstein(x, x, projections=torch.ones(4, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="projections must have shape"):
        sliced_wasserstein(x, x, projections=torch.ones(5, 3))
    with pytest.raises(ValueError, match="NaN"):
        sliced_wasserstein(x, torch.full((10, 4), float("nan")))
    with pytest.raises(ValueError, match="num_projections"):
        sliced_wasserstein(x, x, num_projections=0)
    with pytest.raises(TypeError, match="seed"):
        sliced_wasserstein(x, x, seed=1.5)  # type: ignore[arg-type]


# ---------------------------------------------------------------- panels


def panel_sets(n: int = 256) -> tuple[dict, dict, dict]:
    train = {"a": feats(n, 8, 10), "b": feats(n, 4, 11), "c": feats(n, 8, 12, scale=3.0)}
    val = {"a": feats(n, 8, 20), "b": feats(n, 4, 21), "c": feats(n, 8, 22, scale=3.0)}
    gen = {
        "a": feats(n, 8, 30, shift=0.5),
        "b": feats(n, 4, 31, scale=2.0),
        "c": feats(n, 8, 32, scale=3.3),
    }
    return gen, train, val


def test_sw_panel_matches_per_encoder_ratios_and_means() -> None:
    gen, train, val = panel_sets()
    out = sw_ratio_panel(gen, train, val, num_projections=128, seed=2, held_out=("b", "c"))
    for e in gen:
        expect = sliced_wasserstein(gen[e], train[e], 128, 2) / sliced_wasserstein(
            val[e], train[e], 128, 2
        )
        assert out["per_encoder"][e] == pytest.approx(expect, rel=1e-12)
    r = out["per_encoder"]
    assert out["mean"] == pytest.approx((r["a"] + r["b"] + r["c"]) / 3, rel=1e-12)
    assert out["held_out_mean"] == pytest.approx((r["b"] + r["c"]) / 2, rel=1e-12)
    assert out["held_out"] == ["b", "c"]
    assert r["a"] > 1.5 and r["b"] > 1.5  # shifted/scaled generators sit above the real floor
    assert sw_ratio_panel(gen, train, val, num_projections=16)["held_out_mean"] is None


@pytest.mark.parametrize("panel", [sw_ratio_panel, mmd_ratio_panel, fd_ratio_panel])
def test_real_val_scores_one_by_construction(panel) -> None:
    _, train, val = panel_sets(128)
    kwargs = {"num_projections": 32} if panel is sw_ratio_panel else {}
    if panel is mmd_ratio_panel:
        kwargs = {"num_features": 256}
    out = panel(val, train, val, **kwargs)
    assert out["per_encoder"] == {e: 1.0 for e in val}
    assert out["mean"] == 1.0


def test_stored_floors_reproduce_the_val_panel() -> None:
    gen, train, val = panel_sets()
    floors = sw_floors(train, val, num_projections=64, seed=1)
    with_val = sw_ratio_panel(gen, train, val, num_projections=64, seed=1)
    with_floors = sw_ratio_panel(gen, train, floors=floors, num_projections=64, seed=1)
    assert with_floors["per_encoder"] == pytest.approx(with_val["per_encoder"], rel=1e-12)
    assert floors == pytest.approx(with_val["floor"], rel=1e-12)
    with pytest.raises(ValueError, match="exactly one of val"):
        sw_ratio_panel(gen, train, val, floors=floors)


def test_panel_subsamples_train_identically_for_floors_and_checkpoints() -> None:
    # train is larger than num_samples: its seeded subset must be the same in both calls
    big_train = {"a": feats(1000, 6, 40)}
    val, gen = {"a": feats(300, 6, 41)}, {"a": feats(300, 6, 41)}
    out = sw_ratio_panel(gen, big_train, val, num_projections=32, num_samples=200)
    assert out["per_encoder"]["a"] == 1.0
    floors = sw_floors(big_train, val, num_projections=32, num_samples=200)
    assert floors["a"] == out["floor"]["a"]


def test_panel_results_independent_of_chunk_size() -> None:
    gen, train, val = panel_sets()
    a = sw_ratio_panel(gen, train, val, num_projections=96, chunk_size=5)
    b = sw_ratio_panel(gen, train, val, num_projections=96, chunk_size=96)
    assert a["per_encoder"] == pytest.approx(b["per_encoder"], rel=1e-6)


def test_panel_input_errors() -> None:
    gen, train, val = panel_sets(32)
    with pytest.raises(ValueError, match="held_out names"):
        sw_ratio_panel(gen, train, val, num_projections=8, held_out=("zzz",))
    with pytest.raises(ValueError, match="train lacks encoders"):
        sw_ratio_panel(gen, {"a": train["a"]}, val, num_projections=8)
    with pytest.raises(ValueError, match="real floor"):
        sw_ratio_panel(gen, train, train, num_projections=8)
    with pytest.raises(TypeError, match="held_out"):
        sw_ratio_panel(gen, train, val, held_out="a")


# ---------------------------------------------------------------- fingerprints


def test_mismatched_fingerprints_raise_a_clear_error() -> None:
    gen, train, val = panel_sets(32)
    good = {role: {"a": "f-a", "b": "f-b", "c": "f-c"} for role in ("gen", "train", "val")}
    sw_ratio_panel(gen, train, val, num_projections=8, fingerprints=good)
    bad = {**good, "gen": {"a": "f-a", "b": "OTHER", "c": "f-c"}}
    with pytest.raises(FingerprintMismatchError, match=r"encoder 'b'.*gen=OTHER.*train=f-b"):
        sw_ratio_panel(gen, train, val, num_projections=8, fingerprints=bad)
    with pytest.raises(FingerprintMismatchError, match="no fingerprint recorded for the 'floors'"):
        check_fingerprints({"train": {"a": "x"}, "floors": {}}, ["a"])
    assert issubclass(FingerprintMismatchError, ValueError)


# ---------------------------------------------------------------- MMD with random Fourier features


def test_lower_median_takes_the_lower_middle_pair_for_an_even_count() -> None:
    """With 6 pairs the metric takes the 3rd smallest distance, the training kernel's rule the
    mean of the 3rd and 4th (numpy's): two rules, named apart."""
    from scipy.spatial.distance import pdist

    from repmatch.compare import median_bandwidth

    x = feats(4, 3, 51)  # 4 rows -> 6 pairs
    d = np.sort(pdist(x.numpy().astype(np.float64)))
    assert lower_median_bandwidth(x) == pytest.approx(d[2], rel=1e-12)
    assert median_bandwidth(x.double()) == pytest.approx(float(np.median(d)), rel=1e-12)
    assert d[2] < np.median(d)


def test_median_bandwidth_matches_scipy_pdist() -> None:
    from scipy.spatial.distance import pdist

    x = feats(50, 7, 50)  # 1225 pairs: an odd count, so the median is one pair's distance
    assert lower_median_bandwidth(x) == pytest.approx(float(np.median(pdist(x.numpy()))), rel=1e-12)


def test_rff_mmd2_equals_explicit_feature_gram_form() -> None:
    # brute-force oracle of the same estimator: V-statistic over the RFF Gram matrix ΦΦᵀ
    x, y = feats(90, 6, 60), feats(70, 6, 61, shift=0.4)
    w, b = rff_weights(6, 2.0, 512, seed=4)
    phi_x = math.sqrt(2 / 512) * torch.cos(x @ w + b)
    phi_y = math.sqrt(2 / 512) * torch.cos(y @ w + b)
    oracle = (phi_x @ phi_x.T).mean() + (phi_y @ phi_y.T).mean() - 2 * (phi_x @ phi_y.T).mean()
    assert rff_mmd2(x, y, num_features=512, seed=4, bandwidth=2.0) == pytest.approx(
        float(oracle), rel=1e-10
    )


def test_rff_mmd2_approximates_exact_gaussian_mmd() -> None:
    from sklearn.metrics.pairwise import rbf_kernel

    x, y = feats(400, 5, 62), feats(400, 5, 63, shift=0.6)
    sigma = lower_median_bandwidth(y)
    gamma = 1 / (2 * sigma**2)
    xn, yn = x.numpy(), y.numpy()
    exact = (
        rbf_kernel(xn, xn, gamma=gamma).mean()
        + rbf_kernel(yn, yn, gamma=gamma).mean()
        - 2 * rbf_kernel(xn, yn, gamma=gamma).mean()
    )
    approx = [rff_mmd2(x, y, num_features=4096, seed=s) for s in range(3)]
    assert float(np.mean(approx)) == pytest.approx(float(exact), rel=0.1)


def test_rff_embedding_independent_of_row_chunk() -> None:
    x = feats(300, 6, 64)
    w, b = rff_weights(6, 1.5, 128, seed=0)
    a = rff_mean_embedding(x, w, b, chunk_size=7)
    assert torch.allclose(a, rff_mean_embedding(x, w, b, chunk_size=300), rtol=1e-10, atol=1e-14)


def test_mmd_panel_ratio_uses_one_kernel_for_gen_and_val() -> None:
    gen, train, val = panel_sets(200)
    out = mmd_ratio_panel(gen, train, val, num_features=512, seed=3)
    for e in gen:
        sigma = lower_median_bandwidth(train[e], seed=3)
        expect = rff_mmd2(gen[e], train[e], 512, 3, sigma) / rff_mmd2(
            val[e], train[e], 512, 3, sigma
        )
        assert out["per_encoder"][e] == pytest.approx(expect, rel=1e-10)


# ---------------------------------------------------------------- Fréchet


def test_sqrtm_psd_matches_scipy() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    a = feats(40, 12, 70)
    cov = a.T @ a / 40
    ours = sqrtm_psd(cov)
    assert np.allclose(
        ours.numpy(), np.real(scipy_linalg.sqrtm(cov.numpy())), rtol=1e-8, atol=1e-10
    )
    assert torch.allclose(ours @ ours, cov, atol=1e-10)


def test_frechet_distance_matches_scipy_fid_formula() -> None:
    from scipy import linalg

    x, y = feats(500, 10, 71), feats(400, 10, 72, shift=0.3, scale=1.4)
    xn, yn = x.numpy(), y.numpy()
    mu1, mu2 = xn.mean(0), yn.mean(0)
    s1, s2 = np.cov(xn, rowvar=False), np.cov(yn, rowvar=False)
    covmean = np.real(linalg.sqrtm(s1 @ s2))
    oracle = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert frechet_distance(x, y) == pytest.approx(oracle, rel=1e-8)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------- independence from the training loss


def test_metrics_import_no_training_loss_module() -> None:
    forbidden = ["repmatch.compare.distances", "repmatch.compare.nystrom", "repmatch.train", "repmatch.compare.kernels"]
    code = (
        "import sys, repmatch.metrics\n"
        f"bad = [m for m in sys.modules if any(m == f or m.startswith(f + '.') for f in {forbidden!r})]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", (
        f"repmatch.metrics imported training-loss modules: {out.stdout}"
    )


# ---------------------------------------------------------------- GPU path


@pytest.mark.gpu
def test_gpu_matches_cpu() -> None:
    gen, train, val = panel_sets(512)
    cpu = sw_ratio_panel(gen, train, val, num_projections=256)
    cuda = {
        k: {e: t.cuda() for e, t in d.items()} for k, d in (("g", gen), ("t", train), ("v", val))
    }
    gpu = sw_ratio_panel(cuda["g"], cuda["t"], cuda["v"], num_projections=256)
    assert gpu["per_encoder"] == pytest.approx(cpu["per_encoder"], rel=1e-6)
    assert rff_mmd2(gen["a"].cuda(), train["a"].cuda(), 1024) == pytest.approx(
        rff_mmd2(gen["a"], train["a"], 1024), rel=1e-6
    )


def test_subsample_indices_are_seeded_prefixes_without_repeats() -> None:
    from repmatch.metrics import subsample_indices

    big, small = subsample_indices(1000, 300, seed=4), subsample_indices(1000, 120, seed=4)
    assert torch.equal(big[:120], small)  # read once at the largest size, slice for the others
    assert len(set(big.tolist())) == 300 and int(big.max()) < 1000
    assert not torch.equal(big, subsample_indices(1000, 300, seed=5))
    assert len(subsample_indices(50, 300, seed=0)) == 50


def test_fd_panel_matches_direct_frechet_ratio() -> None:
    gen, train, val = panel_sets(200)
    out = fd_ratio_panel(gen, train, val, held_out=["a"])
    for e in gen:
        expect = frechet_distance(gen[e], train[e]) / frechet_distance(val[e], train[e])
        assert out["per_encoder"][e] == pytest.approx(expect, rel=1e-10)
    assert out["held_out_mean"] == pytest.approx(out["per_encoder"]["a"], rel=1e-12)
