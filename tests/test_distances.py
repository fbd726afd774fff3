import math

import numpy as np
import pytest
import torch
from scipy.linalg import sqrtm
from torch.utils._python_dispatch import TorchDispatchMode

import repmatch
from repmatch import NystromReference
from repmatch.compare import distances
from repmatch.compare.distances import (
    drifting_field,
    drifting_loss,
    mmd_exact_loss,
    mmd_nystrom_loss,
    random_projections,
    sliced_wasserstein_loss,
    sqrtm_psd,
)

# Small matrices: intra-op threading only adds contention on a shared 2-core CI box.
pytestmark = pytest.mark.usefixtures("one_thread")


def _data(n, d, seed, shift=0.0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64) + shift).to(dtype)


def _brute_mmd2(x, y, sigmas):
    """Biased MMD² by explicit double loops over pairs (numpy, float64)."""
    x, y = x.detach().numpy(), y.detach().numpy()

    def mean_k(a, b, s):
        return np.mean([[math.exp(-np.sum((u - v) ** 2) / (2 * s * s)) for v in b] for u in a])

    return sum(mean_k(x, x, s) - 2 * mean_k(x, y, s) + mean_k(y, y, s) for s in sigmas)


def test_mmd_exact_matches_brute_force_multiscale():
    x, y = _data(9, 3, 0), _data(7, 3, 1, shift=0.5)
    got = float(mmd_exact_loss(x, y, (0.7, 1.5)))
    assert got == pytest.approx(_brute_mmd2(x, y, (0.7, 1.5)), abs=1e-12)


def test_mmd_nystrom_with_all_landmarks_is_the_exact_mmd():
    pool, gen = _data(40, 3, 2), _data(11, 3, 3, shift=0.3)
    refs = NystromReference.build_multiscale(pool, num_landmarks=40, factors=(0.5, 1.0, 2.0))
    assert len({id(r.landmarks) for r in refs}) == 1  # scales share landmarks
    got = float(mmd_nystrom_loss(gen, refs))
    assert got == pytest.approx(_brute_mmd2(gen, pool, [r.bandwidth for r in refs]), abs=1e-8)


@pytest.mark.parametrize("fn", ["nystrom", "exact"])
def test_chunking_does_not_change_value_or_gradient(fn):
    pool = _data(64, 5, 4)
    ref = NystromReference.build(pool, num_landmarks=16)

    def loss(x, chunk):
        if fn == "nystrom":
            return mmd_nystrom_loss(x, [ref], chunk_size=chunk)
        return mmd_exact_loss(x, pool[:20], (1.0, 2.0), chunk_size=chunk)

    values, grads = [], []
    for chunk in (None, 7, 1):
        x = _data(23, 5, 5).requires_grad_()
        v = loss(x, chunk)
        v.backward()
        values.append(v.item())
        grads.append(x.grad)
    for v, g in zip(values[1:], grads[1:]):
        assert v == pytest.approx(values[0], abs=1e-13)
        torch.testing.assert_close(g, grads[0], rtol=1e-12, atol=1e-14)


def _fitted(name, ref, **kw):
    return distances.create(name, **kw).fit(ref)


GRADCHECK_CASES = {
    "mmd_nystrom": {"num_landmarks": 12, "scales": (0.5, 1.0, 2.0), "chunk_size": 4},
    "mmd_exact": {"sample_size": 15, "scales": (1.0, 3.0)},
    "mmd_rff": {"num_features": 32, "scales": (0.5, 1.0)},
    "frechet": {},
    "sliced_wasserstein": {"num_projections": 16},
}


@pytest.mark.parametrize("name", sorted(GRADCHECK_CASES))
def test_gradcheck_every_distance(name):
    ref = _data(60, 4, 6)
    dist = _fitted(name, ref, **GRADCHECK_CASES[name])
    x = _data(10, 4, 7, shift=0.2).requires_grad_()
    # Resampling distances get the same generator state at every evaluation.
    assert torch.autograd.gradcheck(lambda z: dist(z, generator=torch.Generator().manual_seed(1)), (x,))


def test_gradcheck_drifting_field_and_loss_gradient_is_minus_field():
    x = _data(6, 3, 8).requires_grad_()
    y = _data(5, 3, 9, shift=0.5)
    assert torch.autograd.gradcheck(lambda z: drifting_field(z, y, (0.3, 1.0), normalize=False, scale=1.5), (x,))
    loss = drifting_loss(x, y, (0.3, 1.0))
    loss.backward()
    v = drifting_field(x.detach(), y, (0.3, 1.0))
    torch.testing.assert_close(x.grad, -v / x.shape[0], rtol=1e-12, atol=1e-14)
    dist = _fitted("drifting", _data(30, 3, 10), bank_size=8)
    assert torch.isfinite(dist(x.detach()))


def _brute_drift(x, y, radii, normalize, floor=0.0):
    """The field by explicit loops (numpy, float64).

    floor = 0: Algorithm 2 (self pairs excluded: logit -inf). floor > 0: the released port
    written out literally: a large constant added to each self distance, row and column softmax,
    ``sqrt(max(row * col, floor))``.
    """
    x, y = x.numpy(), y.numpy()
    B, P = len(x), len(y)
    dp = np.array([[np.linalg.norm(a - b) for b in y] for a in x])
    dn = np.array([[np.linalg.norm(a - b) for b in x] for a in x])
    s = (dp.sum() + dn.sum()) / (B * P + B * (B - 1))
    V = np.zeros_like(x)
    for r in radii:
        dn_masked = dn + np.eye(B) * 1e6 if floor > 0 else dn
        logit = np.concatenate([-dp, -dn_masked], 1) / (r * s)
        if floor == 0:
            for i in range(B):
                logit[i, P + i] = -np.inf
        e = np.exp(logit)
        prod = e / e.sum(1, keepdims=True) * e / e.sum(0, keepdims=True)
        a = np.sqrt(np.maximum(prod, floor))
        v = np.zeros_like(x)
        for i in range(B):
            for j in range(P):
                v[i] += a[i, j] * a[i, P:].sum() * y[j]
            for j in range(B):
                v[i] -= a[i, P + j] * a[i, :P].sum() * x[j]
        if normalize:
            v *= s / np.sqrt(np.mean(np.sum(v * v, 1)))
        V += v
    return V


@pytest.mark.parametrize("normalize", [False, True])
def test_drifting_field_matches_loop_oracle(normalize):
    x, y = _data(7, 3, 11), _data(5, 3, 12, shift=1.0)
    got = drifting_field(x, y, (0.2, 0.5), normalize=normalize).numpy()
    np.testing.assert_allclose(got, _brute_drift(x, y, (0.2, 0.5), normalize), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("floor", [1e-6, 1e-3])
def test_floored_drifting_field_matches_the_released_port_formula(normalize, floor):
    # Radii small enough that many products fall under the floor, so the clamp is exercised.
    x, y = _data(7, 3, 11), _data(5, 3, 12, shift=1.0)
    want = _brute_drift(x, y, (0.05, 0.5), normalize, floor)
    got = drifting_field(x, y, (0.05, 0.5), normalize=normalize, affinity_floor=floor).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    # The floor changes the field here (the test would pass vacuously otherwise).
    assert not np.allclose(want, _brute_drift(x, y, (0.05, 0.5), normalize), rtol=1e-3, atol=1e-6)


def test_floored_drifting_loss_and_distance_use_the_floor():
    x, y = _data(6, 3, 8), _data(5, 3, 9, shift=0.5)
    xg = x.clone().requires_grad_()
    drifting_loss(xg, y, (0.05, 0.3), affinity_floor=1e-4).backward()
    v = drifting_field(x, y, (0.05, 0.3), affinity_floor=1e-4)
    torch.testing.assert_close(xg.grad, -v / x.shape[0], rtol=1e-12, atol=1e-14)
    # The distance with the whole reference as its bank draws every row: its loss is ½ mean |V|².
    dist = _fitted("drifting", y, bank_size=5, radii=(0.05, 0.3), affinity_floor=1e-4)
    torch.testing.assert_close(dist(x), 0.5 * v.pow(2).sum(1).mean(), rtol=1e-10, atol=1e-12)
    exact = _fitted("drifting", y, bank_size=5, radii=(0.05, 0.3))
    assert not torch.allclose(dist(x), exact(x))


def test_affinity_floor_rejects_bad_values():
    x, y = _data(4, 3, 1), _data(4, 3, 2)
    for bad in (-1e-6, 1.0, float("nan")):
        with pytest.raises(ValueError, match="affinity_floor"):
            drifting_field(x, y, affinity_floor=bad)
        with pytest.raises(ValueError, match="affinity_floor"):
            distances.create("drifting", affinity_floor=bad)
    with pytest.raises(TypeError, match="affinity_floor"):
        distances.create("drifting", affinity_floor="1e-6")


def _spiral_bank_and_tight_batch(n=128, dim=64, seed=0):
    """A 2-turn spiral bank (n rows) buried in R^dim, and n generated rows in a tight blob off
    its centroid: the generator's state at its first steps (an MLP at initialisation)."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, 2)))
    t = rng.uniform(0, 1, n)
    r = 0.5 + 2.0 * t
    plane = np.stack([r * np.cos(4 * np.pi * t), r * np.sin(4 * np.pi * t)], 1)
    bank = (plane + 0.05 * rng.standard_normal((n, 2))) @ q.T
    direction = rng.standard_normal(dim)
    gen = 0.33 * direction / np.linalg.norm(direction) + 0.012 * rng.standard_normal((n, dim))
    return torch.from_numpy(gen), torch.from_numpy(bank)


def test_floored_field_at_b128_pulls_toward_the_bank_mean_and_the_exact_field_does_not():
    gen, bank = _spiral_bank_and_tight_batch()

    def cosine_to_bank_mean(floor):
        v = drifting_field(gen, bank, (0.06, 0.2), affinity_floor=floor)
        d = bank.mean(0) - gen  # per row: the direction to the bank's mean
        return float((v * d).sum() / (v.norm() * d.norm()))

    assert cosine_to_bank_mean(1e-6) > 0.9
    assert cosine_to_bank_mean(0.0) < 0.6


def test_frechet_matches_scipy_sqrtm():
    ref, gen = _data(200, 5, 13), _data(50, 5, 14, shift=0.4) * 1.3
    dist = _fitted("frechet", ref)
    r, g = ref.numpy(), gen.numpy()
    cr, cg = np.cov(r, rowvar=False), np.cov(g, rowvar=False)
    expected = np.sum((g.mean(0) - r.mean(0)) ** 2) + np.trace(cg + cr - 2 * sqrtm(cg @ cr).real)
    assert float(dist(gen)) == pytest.approx(expected, rel=1e-9)
    assert float(_fitted("frechet", ref, chunk_size=7)(gen)) == pytest.approx(expected, rel=1e-9)
    m = torch.from_numpy(cg)
    np.testing.assert_allclose(sqrtm_psd(m).numpy(), sqrtm(cg).real, rtol=1e-9, atol=1e-12)


def test_frechet_small_batch_matches_scipy_sqrtm():
    # B < D: the B x B Gram path against the D x D formula (symmetric form, scipy's sqrtm).
    ref, gen = _data(200, 9, 13), _data(5, 9, 14, shift=0.4) * 1.3
    r, g = ref.numpy(), gen.numpy()
    cr, cg = np.cov(r, rowvar=False), np.cov(g, rowvar=False)
    root = sqrtm(cr).real
    expected = np.sum((g.mean(0) - r.mean(0)) ** 2) + np.trace(cg + cr) - 2 * np.trace(sqrtm(root @ cg @ root).real)
    assert float(_fitted("frechet", ref)(gen)) == pytest.approx(expected, rel=1e-7)


def test_frechet_gradient_finite_when_batch_smaller_than_dim():
    dist = _fitted("frechet", _data(100, 8, 15))
    x = _data(4, 8, 16).requires_grad_()
    dist(x).backward()
    assert torch.isfinite(x.grad).all()


def test_sliced_wasserstein_matches_pot():
    ot = pytest.importorskip("ot")
    x, y = _data(30, 4, 17), _data(30, 4, 18, shift=0.7)
    theta = random_projections(4, 25, torch.Generator().manual_seed(0))
    ours = float(sliced_wasserstein_loss(x, y, theta))
    pot = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), p=2, projections=theta.numpy())
    assert ours == pytest.approx(float(pot) ** 2, rel=1e-10)


def test_rff_is_the_feature_space_mmd_and_approaches_the_kernel_mmd():
    ref, gen = _data(200, 3, 19), _data(40, 3, 20, shift=0.8)
    dist = _fitted("mmd_rff", ref, num_features=20000, bandwidth=1.5)
    w, b = dist.weights.numpy(), dist.offsets.numpy()
    phi = lambda a: np.sqrt(2 / 20000) * np.cos(a.numpy() @ w + b)
    expected = np.sum((phi(gen).mean(0) - phi(ref).mean(0)) ** 2)
    assert float(dist(gen)) == pytest.approx(expected, rel=1e-9)
    assert float(dist(gen)) == pytest.approx(float(mmd_exact_loss(gen, ref, 1.5)), rel=0.05)


def test_float64_in_float64_out_and_float32_close():
    ref = _data(80, 4, 21)
    for name in distances.NAMES:
        kw = {"mmd_nystrom": {"num_landmarks": 8}, "drifting": {"bank_size": 16}}.get(name, {})
        dist = _fitted(name, ref, **kw)
        x = _data(12, 4, 22)
        v64 = dist(x, generator=torch.Generator().manual_seed(0))
        v32 = dist(x.float(), generator=torch.Generator().manual_seed(0))
        assert v64.dtype == torch.float64 and v32.dtype == torch.float32, name
        assert float(v32) == pytest.approx(float(v64), rel=1e-4, abs=1e-6), name


def test_float32_nystrom_gradient_close_to_float64():
    g = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(8, 32, generator=g, dtype=torch.float64)
    pool = centres[torch.randint(8, (2000,), generator=g)] + torch.randn(2000, 32, generator=g, dtype=torch.float64)
    gen = centres[torch.randint(8, (256,), generator=g)] + 1.2 * torch.randn(256, 32, generator=g, dtype=torch.float64)
    ref = NystromReference.build(pool.float(), num_landmarks=128)
    grads = []
    for dtype in (torch.float64, torch.float32):
        x = gen.to(dtype).detach().requires_grad_()
        mmd_nystrom_loss(x, ref, chunk_size=64).backward()
        grads.append(x.grad.double())
    assert float((grads[1] - grads[0]).norm() / grads[0].norm()) < 1e-3


def test_generator_makes_resampling_reproducible():
    ref = _data(100, 4, 23)
    x = _data(10, 4, 24)
    for name in ("mmd_exact", "sliced_wasserstein", "drifting"):
        dist = _fitted(name, ref, **({"bank_size": 16} if name == "drifting" else {}))
        a = dist(x, generator=torch.Generator().manual_seed(5))
        b = dist(x, generator=torch.Generator().manual_seed(5))
        assert torch.equal(a, b), name


def test_interface_errors():
    with pytest.raises(ValueError, match="name must be one of"):
        distances.create("wasserstein")
    with pytest.raises(RuntimeError, match="not fitted"):
        distances.create("frechet")(torch.zeros(3, 2))
    dist = _fitted("mmd_exact", _data(20, 4, 25))
    with pytest.raises(ValueError, match="gen_features has feature dimension 3, expected 4"):
        dist(torch.zeros(5, 3, dtype=torch.float64))
    bad = torch.zeros(5, 4)
    bad[1, 1] = float("nan")
    with pytest.raises(ValueError, match="gen_features contains NaN"):
        dist(bad)
    with pytest.raises(ValueError, match="must have shape"):
        dist(torch.zeros(4))
    with pytest.raises(ValueError, match="sample_size=30 exceeds"):
        _fitted("mmd_exact", _data(20, 4, 25), sample_size=30)(torch.zeros(5, 4))
    with pytest.raises(TypeError, match="reference must be a NystromReference"):
        mmd_nystrom_loss(torch.zeros(3, 4), [1, 2])


def test_top_level_exports():
    for name in ("median_bandwidth", "NystromReference", "mmd_nystrom_loss", "MMDExact", "MMDRFF",
                 "Frechet", "SlicedWasserstein", "Drifting"):
        assert hasattr(repmatch, name)


@pytest.mark.gpu
def test_cuda_nystrom_tf32_gradient_close_to_float64():
    pool = _data(4000, 64, 30, dtype=torch.float32).cuda()
    ref = NystromReference.build(pool, num_landmarks=256, precision="tf32")
    x = _data(512, 64, 31, shift=0.2, dtype=torch.float32).cuda().requires_grad_()
    mmd_nystrom_loss(x, ref, precision="tf32", chunk_size=128).backward()
    x64 = x.detach().double().requires_grad_()
    ref64 = NystromReference(landmarks=ref.landmarks.double(), alpha=ref.alpha, bandwidth=ref.bandwidth,
                             data_term=ref.data_term, pool_size=ref.pool_size)
    mmd_nystrom_loss(x64, ref64).backward()
    assert float((x.grad.double() - x64.grad).norm() / x64.grad.norm()) < 1e-2


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces (an oracle for peak intermediates)."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_chunking_bounds_the_largest_intermediate():
    B, m, D, chunk = 96, 40, 5, 8
    pool = _data(600, D, 40)
    with _LargestTensor() as build_mode:
        ref = NystromReference.build(
            pool, num_landmarks=m, chunk_size=50, kmeans_sample=120, kmeans_iters=2, bandwidth=2.0
        )
    # Nothing pool-sized times landmarks (600 x 40): only chunk x m blocks, m x m, the pool itself.
    assert build_mode.largest <= max(50 * m, 120 * (D + 8), pool.numel()) < pool.shape[0] * m
    x = _data(B, D, 41).requires_grad_()
    with _LargestTensor() as mode:
        mmd_nystrom_loss(x, ref, chunk_size=chunk).backward()
    assert mode.largest <= chunk * max(B, m + 8) < B * B


def test_exact_mmd_chunking_bounds_the_largest_intermediate():
    B, n, chunk = 64, 200, 8
    x, y = _data(B, 3, 42).requires_grad_(), _data(n, 3, 43)
    with _LargestTensor() as mode:
        mmd_exact_loss(x, y, (1.0, 2.0), chunk_size=chunk).backward()
    assert mode.largest <= chunk * (n + 8) < n * n
