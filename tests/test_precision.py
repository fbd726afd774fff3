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

import _oracles as oracle
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
        value, expected = mmd_nystrom_loss(x, refs), oracle.mmd_nystrom(o, refs)
    elif name == "mmd_exact":
        sigmas = (0.5 * sigma, sigma, 2.0 * sigma)
        value, expected = mmd_exact_loss(x, y, sigmas), oracle.mmd_exact(o, y.double(), sigmas)
    elif name == "mmd_rff":
        dist = distances.create("mmd_rff", num_features=128, bandwidth=sigma, scales=(0.5, 1.0)).fit(ref)
        value = dist(x)
        expected = oracle.rff(o, ref, dist.weights, dist.offsets, 128)
    elif name == "sliced_wasserstein":
        theta = random_projections(D, 32, torch.Generator().manual_seed(1))
        value, expected = sliced_wasserstein_loss(x, y, theta), oracle.sliced_w2_squared(o, y, theta)
    elif name == "frechet":
        value, expected = distances.create("frechet").fit(ref)(x), oracle.frechet(o, ref)
    elif name == "drifting":
        field = oracle.drift_field(o.detach(), y[:32], RADII)
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
    data_term, alpha = oracle.nystrom_data_term(pool, lm, s)
    assert ref.data_term == pytest.approx(data_term, rel=1e-6)
    x = torch.randn(32, D, generator=g, dtype=torch.float64) + 30.0
    k = oracle.gauss(x, lm, s)
    torch.testing.assert_close(k @ ref.alpha.double(), k @ alpha, rtol=1e-6, atol=1e-9)
