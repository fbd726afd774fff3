"""Numerical robustness of the training distances against independent float64 oracles.

Every oracle below is written from the module docstrings' equations with explicit pairwise
differences (``exp(-|x - y|² / 2σ²)`` summed in float64, sorts, eigenvalues), never through
the package's own kernel code; gradients are autograd of the oracle.

Covered: float32 at feature scales 1e-6…1e6 (bandwidths scaling with the features), with the
generated batch displaced 1000σ from the reference and with both translated 1000σ from the
origin; float16/bfloat16 inputs (computed in float32, loss returned in float32, gradient in
the input dtype); double backward through the closed-form gradients raises.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch

from repmatch import NystromReference
from repmatch.compare import distances
from repmatch.compare.distances import (
    drifting_loss,
    mmd_exact_loss,
    mmd_nystrom_loss,
    random_projections,
    sliced_wasserstein_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")

B, D, N_REF = 48, 16, 600
RADII = (0.02, 0.05, 0.2)


# ---------------------------------------------------------------- float64 oracles


def _k(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(-((x[:, None, :] - y[None, :, :]) ** 2).sum(-1) / (2.0 * sigma * sigma))


def _oracle_nystrom(g, refs):
    total = 0.0
    for r in refs:
        lm, alpha = r.landmarks.double(), r.alpha.double()
        total = total + _k(g, g, r.bandwidth).mean() - 2.0 * (_k(g, lm, r.bandwidth) @ alpha).mean() + r.data_term
    return total


def _oracle_exact(g, y, sigmas):
    return sum(_k(g, g, s).mean() - 2.0 * _k(g, y, s).mean() + _k(y, y, s).mean() for s in sigmas)


def _oracle_rff(g, ref, weights, offsets, num_features):
    phi = lambda a: math.sqrt(2.0 / num_features) * torch.cos(a @ weights + offsets)  # noqa: E731
    diff = phi(g).mean(0) - phi(ref).mean(0)
    return (diff * diff).sum()


def _oracle_sw(g, y, theta):
    p = (g @ theta).T.sort(1).values
    q = (y @ theta).T.sort(1).values
    return ((p - q) ** 2).mean()


def _oracle_frechet(g, ref):
    mu_r, cov_r = ref.mean(0), torch.cov(ref.T)
    mu_g, cov_g = g.mean(0), torch.cov(g.T)
    ev, u = torch.linalg.eigh(cov_r)
    root = (u * ev.clamp_min(0).sqrt()) @ u.T
    cross = torch.linalg.eigvalsh(root @ cov_g @ root).clamp_min(0).sqrt().sum()
    return ((mu_g - mu_r) ** 2).sum() + cov_g.trace() + cov_r.trace() - 2.0 * cross


def _oracle_drift_field(x, y, radii):
    """Algorithm 2 with normalisation, by explicit differences (self pairs excluded)."""
    P, n = y.shape[0], x.shape[0]
    d = torch.cat([((x[:, None] - y[None]) ** 2).sum(-1), ((x[:, None] - x[None]) ** 2).sum(-1)], 1).sqrt()
    self_pair = torch.zeros(d.shape, dtype=torch.bool)
    self_pair[:, P:] = torch.eye(n, dtype=torch.bool)
    s = d[~self_pair].mean()
    field = torch.zeros_like(x)
    for r in radii:
        logits = (-d / (r * s)).masked_fill(self_pair, -math.inf)
        a = torch.exp(0.5 * (logits.log_softmax(1) + logits.log_softmax(0)))
        a_pos, a_neg = a[:, :P], a[:, P:]
        w_pos = a_pos * a_neg.sum(1, keepdim=True)
        w_neg = a_neg * a_pos.sum(1, keepdim=True)
        v = w_pos @ y - w_neg @ x
        field = field + v * (s / (v**2).sum(1).mean().sqrt())
    return field


# ---------------------------------------------------------------- data


@functools.lru_cache(maxsize=None)
def _setting(scale: float, shift: float, common: float):
    """Reference ``(N_REF, D)`` (float32 values), generated batch ``(B, D)`` (float64 values),
    base bandwidth σ: features ``scale · N(0, I)``; the batch is 1.2× wider, displaced
    ``shift · σ`` from the reference; both are translated ``common · σ`` from the origin."""
    gen = torch.Generator().manual_seed(0)
    ref = torch.randn(N_REF, D, generator=gen, dtype=torch.float64) * scale
    sigma = math.sqrt(2 * D) * scale  # the median pairwise distance of N(0, scale² I), about
    u = torch.randn(D, generator=gen, dtype=torch.float64)
    u /= u.norm()
    v = torch.randn(D, generator=gen, dtype=torch.float64)
    v /= v.norm()
    g = 1.2 * scale * torch.randn(B, D, generator=gen, dtype=torch.float64) + (shift * sigma) * u
    ref = (ref + (common * sigma) * v).float()
    g = g + (common * sigma) * v
    return ref, g, sigma


@functools.lru_cache(maxsize=None)
def _nystrom_refs(scale: float, shift: float, common: float):
    ref, _, _ = _setting(scale, shift, common)
    return NystromReference.build_multiscale(ref, num_landmarks=48, factors=(0.5, 1.0, 2.0), kmeans_iters=3)


def _run(name: str, x: torch.Tensor, scale: float, shift: float, common: float):
    """(loss, grad, oracle loss, oracle grad) of distance ``name`` at ``x`` (any dtype)."""
    ref, _, sigma = _setting(scale, shift, common)
    x = x.detach().clone().requires_grad_()
    o = x.detach().double().requires_grad_()  # the oracle sees the same (rounded) inputs
    y = ref[:B]
    if name == "mmd_nystrom":
        refs = _nystrom_refs(scale, shift, common)
        value, expected = mmd_nystrom_loss(x, refs), _oracle_nystrom(o, refs)
    elif name == "mmd_exact":
        sigmas = (0.5 * sigma, sigma, 2.0 * sigma)
        value, expected = mmd_exact_loss(x, y, sigmas), _oracle_exact(o, y.double(), sigmas)
    elif name == "mmd_rff":
        dist = distances.create("mmd_rff", num_features=128, bandwidth=sigma, scales=(0.5, 1.0)).fit(ref)
        value = dist(x)
        expected = _oracle_rff(o, ref.double(), dist.weights.double(), dist.offsets.double(), 128)
    elif name == "sliced_wasserstein":
        theta = random_projections(D, 32, torch.Generator().manual_seed(1))
        value, expected = sliced_wasserstein_loss(x, y, theta), _oracle_sw(o, y.double(), theta.double())
    elif name == "frechet":
        value, expected = distances.create("frechet").fit(ref)(x), _oracle_frechet(o, ref.double())
    elif name == "drifting":
        field = _oracle_drift_field(o.detach(), y[:32].double(), RADII)
        value = drifting_loss(x, y[:32], RADII)
        value.backward()
        return value, x.grad, 0.5 * float((field**2).sum(1).mean()), -field / x.shape[0]
    else:
        raise AssertionError(name)
    value.backward()
    expected.backward()
    return value, x.grad, float(expected.detach()), o.grad


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b).norm() / b.norm())


NAMES = ("mmd_nystrom", "mmd_exact", "mmd_rff", "sliced_wasserstein", "frechet", "drifting")
# (feature scale, batch displacement from the reference in σ, common translation in σ)
FLOAT32_CASES = [(s, shift, common) for s in (1e-6, 1.0, 1e6) for shift, common in ((0, 0), (1000, 0), (0, 1000))]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", FLOAT32_CASES, ids=lambda c: f"scale{c[0]:g}-shift{c[1]}-common{c[2]}")
def test_float32_loss_and_gradient_within_1e3_of_the_float64_oracle(name, case):
    scale, shift, common = case
    x = _setting(*case)[1].float()
    value, grad, expected, expected_grad = _run(name, x, *case)
    assert value.dtype == torch.float32 and grad.dtype == torch.float32
    assert abs(value.item() - expected) <= 1e-3 * abs(expected), (value.item(), expected)
    assert _rel(grad, expected_grad) <= 1e-3


HALF_CASES = [
    (torch.float16, 1.0, 0, 0),
    (torch.float16, 1.0, 1000, 0),
    (torch.float16, 1e-2, 0, 0),
    (torch.bfloat16, 1e-6, 0, 0),
    (torch.bfloat16, 1.0, 0, 0),
    (torch.bfloat16, 1.0, 1000, 0),
    (torch.bfloat16, 1e6, 0, 1000),
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("case", HALF_CASES, ids=lambda c: f"{str(c[0])[6:]}-scale{c[1]:g}-shift{c[2]}-common{c[3]}")
def test_half_precision_inputs_are_computed_in_float32(name, case):
    dtype, scale, shift, common = case
    x = _setting(scale, shift, common)[1].to(dtype)
    assert bool(torch.isfinite(x).all())
    value, grad, expected, expected_grad = _run(name, x, scale, shift, common)
    # The loss is returned in float32 (a half loss would round, or overflow past 65504); the
    # gradient is in the input's dtype, so it can differ from the oracle by its rounding.
    assert value.dtype == torch.float32 and grad.dtype == dtype
    assert abs(value.item() - expected) <= 1e-3 * abs(expected), (value.item(), expected)
    assert _rel(grad, expected_grad) <= 1e-3 + torch.finfo(dtype).eps


# ---------------------------------------------------------------- double backward


def _first_order_losses():
    ref, g, sigma = _setting(1.0, 0, 0)
    y = ref[:B].double()
    refs = _nystrom_refs(1.0, 0, 0)
    theta = random_projections(D, 8, torch.Generator().manual_seed(1)).double()
    rff = distances.create("mmd_rff", num_features=16, bandwidth=sigma).fit(ref.double())
    frechet = distances.create("frechet").fit(ref.double())
    return {
        "mmd_nystrom": lambda z: mmd_nystrom_loss(z, refs),
        "mmd_exact": lambda z: mmd_exact_loss(z, y, sigma),
        "mmd_rff": rff,
        "sliced_wasserstein": lambda z: sliced_wasserstein_loss(z, y[: z.shape[0]], theta),
        "frechet": frechet,
    }


@pytest.mark.parametrize("name", ["mmd_nystrom", "mmd_exact", "mmd_rff", "sliced_wasserstein", "frechet"])
def test_double_backward_raises_instead_of_a_silently_wrong_second_derivative(name):
    fn = _first_order_losses()[name]
    x = _setting(1.0, 0, 0)[1][:12].clone().requires_grad_()
    with pytest.raises(RuntimeError, match="second derivative"):
        torch.autograd.gradgradcheck(fn, (x,))
    # A gradient penalty through a generator: d/dθ |dL/dθ|² needs L's Hessian.
    theta = torch.ones(D, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(x.detach() * theta), theta, create_graph=True)
    with pytest.raises(RuntimeError, match="second derivative"):
        (grad**2).sum().backward()


def test_create_graph_alone_still_gives_the_first_derivative():
    fn = _first_order_losses()["mmd_nystrom"]
    x = _setting(1.0, 0, 0)[1].clone().requires_grad_()
    (with_graph,) = torch.autograd.grad(fn(x), x, create_graph=True)
    (plain,) = torch.autograd.grad(fn(x), x)
    torch.testing.assert_close(with_graph.detach(), plain, rtol=0, atol=0)


# ---------------------------------------------------------------- the reference side


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_a_half_precision_pool_builds_a_float32_reference_matching_the_float64_oracle(dtype):
    g = torch.Generator().manual_seed(3)
    pool = (torch.randn(1500, D, generator=g, dtype=torch.float64) + 30.0).to(dtype)
    ref = NystromReference.build(pool, num_landmarks=48, kmeans_iters=3)
    assert ref.landmarks.dtype == torch.float32
    # Oracle from the built landmarks and the (rounded) pool: kbar, pseudo-inverse, data term.
    lm, s = ref.landmarks.double(), ref.bandwidth
    kbar = _k(pool.double(), lm, s).mean(0)
    alpha = torch.linalg.pinv(_k(lm, lm, s), rtol=1e-7, hermitian=True) @ kbar
    assert ref.data_term == pytest.approx(float(kbar @ alpha), rel=1e-6)
    x = torch.randn(32, D, generator=g, dtype=torch.float64) + 30.0
    torch.testing.assert_close(_k(x, lm, s) @ ref.alpha.double(), _k(x, lm, s) @ alpha, rtol=1e-6, atol=1e-9)
