import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist, pdist

from repmatch import gaussian_kernel, median_bandwidth, multiscale_bandwidths
from repmatch.compare.kernels import exp_floored_, sq_distances

# Small matrices: intra-op threading only adds contention on a shared 2-core CI box.
pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n, d, seed=0, offset=0.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) + offset).to(dtype)


def test_sq_distances_matches_scipy():
    x, y = _data(7, 5, 0), _data(9, 5, 1)
    expected = cdist(x.numpy(), y.numpy(), "sqeuclidean")
    np.testing.assert_allclose(sq_distances(x, y).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_sq_distances_float32_far_from_origin_is_accurate():
    # Without centring, ||x||² ~ 1e8 would swamp the O(10) distances in float32.
    x, y = _data(50, 16, 0, offset=1e4), _data(60, 16, 1, offset=1e4)
    expected = cdist(x.numpy(), y.numpy(), "sqeuclidean")
    got = sq_distances(x.float(), y.float()).double().numpy()
    assert np.abs(got - expected).max() / expected.mean() < 1e-2
    assert (sq_distances(x.float(), x.float()) >= 0).all()


def test_gaussian_kernel_matches_formula():
    x, y = _data(6, 3, 0), _data(4, 3, 1)
    sigma = 1.7
    expected = np.exp(-cdist(x.numpy(), y.numpy(), "sqeuclidean") / (2 * sigma**2))
    np.testing.assert_allclose(gaussian_kernel(x, y, sigma).numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("dtype, floor", [(torch.float32, -87.0), (torch.float64, -708.0)])
def test_exp_floored_is_exp_up_to_the_smallest_normal(dtype, floor):
    # Oracle: numpy's exp in float64; entries whose exponent is below the floor may only move
    # up to exp(floor), just above the dtype's smallest normal number.
    x = np.concatenate([np.linspace(-2000.0, 0.0, 4001), [-87.3365, -708.5, -np.inf]])
    got = exp_floored_(torch.tensor(x, dtype=dtype)).double().numpy()
    want = np.exp(x.astype(np.float64))
    np.testing.assert_allclose(got[x >= floor], want[x >= floor], rtol=1e-6 if dtype == torch.float32 else 1e-14)
    low = x < floor
    assert np.all(got[low] >= want[low]) and np.all(got[low] <= np.exp(floor) * (1 + 1e-6))
    assert np.exp(floor) > torch.finfo(dtype).tiny


def test_median_bandwidth_matches_scipy_and_is_seeded():
    x = _data(300, 4, 2)
    assert median_bandwidth(x) == pytest.approx(float(np.median(pdist(x.numpy()))), rel=1e-12)
    big = _data(3000, 4, 3)
    a = median_bandwidth(big, max_samples=500, seed=1)
    assert a == median_bandwidth(big, max_samples=500, seed=1)
    idx = torch.randperm(3000, generator=torch.Generator().manual_seed(1))[:500]
    assert a == pytest.approx(float(np.median(pdist(big[idx].numpy()))), rel=1e-12)


def test_multiscale_bandwidths():
    assert multiscale_bandwidths(2.0, (0.5, 1.0, 4.0)) == (1.0, 2.0, 8.0)
    with pytest.raises(ValueError, match="factors"):
        multiscale_bandwidths(1.0, ())


def test_bad_inputs_name_the_parameter():
    x = _data(5, 3)
    with pytest.raises(ValueError, match="bandwidth"):
        gaussian_kernel(x, x, 0.0)
    with pytest.raises(ValueError, match="y has feature dimension"):
        sq_distances(x, _data(5, 4))
    with pytest.raises(ValueError, match="features"):
        median_bandwidth(x[0])
    bad = x.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="features contains NaN"):
        median_bandwidth(bad)
    with pytest.raises(ValueError, match="median"):
        median_bandwidth(torch.zeros(10, 3, dtype=torch.float64))
