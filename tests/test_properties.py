"""Property-based tests of the public comparison and metric functions' input surface.

Each example draws shapes (B, N, D from 1 up), a dtype (float16, bfloat16, float32, float64, or
int64), a feature scale (the bandwidth scales with it), a kind of data (Gaussian, all rows
identical, one zero-variance column) and at most one fault (NaN, ±Inf, an integer tensor, a
feature dimension off by one) in one argument. A small model of the documented contract
(``repmatch.validate``: a non-floating tensor is a ``TypeError``, a non-finite value or a
wrong shape a ``ValueError``, each naming the parameter) predicts the violations; the example
must then either raise one of them, with a message naming that parameter, or, when there is
none, return the independent float64 oracle's value (:mod:`_oracles`) within a tolerance set
by the compute dtype (float64 for float64 inputs, float32 otherwise).

Examples are derandomised (a fixed, reproducible set per run) and kept small: the whole file
runs in seconds.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import _oracles as oracle
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from repmatch import metrics
from repmatch.compare import NystromReference, distances, gaussian_kernel, median_bandwidth
from repmatch.compare.distances import (
    drifting_loss,
    mmd_exact_loss,
    mmd_nystrom_loss,
    sliced_wasserstein_loss,
)

pytestmark = pytest.mark.usefixtures("one_thread")

PROPERTY = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# Feature scales each dtype can hold with room for squares of sums (float16 stops at 65504).
SCALES = {
    torch.float16: (1e-2, 1.0, 100.0),
    torch.bfloat16: (1e-6, 1.0, 1e6),
    torch.float32: (1e-6, 1.0, 1e6),
    torch.float64: (1e-6, 1.0, 1e6),
    torch.int64: (1.0, 100.0),
}
FAULTS = ("none",) * 7 + ("nan", "inf", "-inf", "int", "dim")

Violation = tuple[type, str]


# ---------------------------------------------------------------- strategies


@st.composite
def matrix(draw, rows: int, dim: int, dtype: torch.dtype, scale: float) -> torch.Tensor:
    """``(rows, dim)`` of ``dtype``: Gaussian, all rows identical, or one zero-variance column."""
    kind = draw(st.sampled_from(("gaussian", "gaussian", "identical", "zero_var")))
    seed = draw(st.integers(0, 2**16))
    offset = draw(st.sampled_from((0.0, 3.0)))
    gen = torch.Generator().manual_seed(seed)
    x = (torch.randn(rows, dim, generator=gen, dtype=torch.float64) + offset) * scale
    if kind == "identical":
        x = x[:1].repeat(rows, 1)
    elif kind == "zero_var":
        x[:, 0] = x[0, 0]
    return x.round().to(dtype) if dtype == torch.int64 else x.to(dtype)


def inject(x: torch.Tensor, fault: str) -> torch.Tensor:
    """``x`` with ``fault`` applied (a non-finite entry, integer dtype, or one extra column)."""
    x = x.clone()
    if fault in ("nan", "inf", "-inf") and x.is_floating_point():
        x[x.shape[0] // 2, x.shape[1] - 1] = float(fault)
    elif fault == "int":
        x = x.double().round().to(torch.int64)
    elif fault == "dim":
        x = torch.cat([x, x[:, :1]], 1)
    return x


@st.composite
def two_sets(draw, min_rows: int = 1, max_rows: int = 6, same_rows: bool | None = False):
    """(gen, ref, scale): two matrices of one dtype (an integer one time in nine) and one
    scale, at most one of them faulted; ``same_rows=None`` draws equal row counts 3 times in 4.
    """
    dtype = draw(st.sampled_from(FLOATS + FLOATS + (torch.int64,)))
    if same_rows is None:
        same_rows = draw(st.sampled_from((True, True, True, False)))
    scale = draw(st.sampled_from(SCALES[dtype]))
    dim = draw(st.integers(1, 4))
    b = draw(st.integers(min_rows, max_rows))
    n = b if same_rows else draw(st.integers(min_rows, max_rows))
    gen = draw(matrix(b, dim, dtype, scale))
    ref = draw(matrix(n, dim, dtype, scale))
    fault, target = draw(st.sampled_from(FAULTS)), draw(st.integers(0, 1))
    if target == 0:
        gen = inject(gen, fault)
    else:
        ref = inject(ref, fault)
    return gen, ref, scale


# ---------------------------------------------------------------- the contract model


def tensor_violations(name: str, x: torch.Tensor, dim: int | None = None) -> list[Violation]:
    """What ``check_features(name, x, dim=dim)`` must refuse."""
    out: list[Violation] = []
    if not x.is_floating_point():
        out.append((TypeError, name))
    elif not bool(torch.isfinite(x).all()):
        out.append((ValueError, name))
    if dim is not None and x.shape[1] != dim:
        out.append((ValueError, name))
    return out


def pair_violations(a: str, x: torch.Tensor, b: str, y: torch.Tensor) -> list[Violation]:
    """Both tensors checked; a dimension mismatch may be reported against either name."""
    out = tensor_violations(a, x) + tensor_violations(b, y)
    if x.shape[1] != y.shape[1]:
        out += [(ValueError, a), (ValueError, b)]
    return out


def names_in(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


def check_outcome(call: Callable[[], object], violations: list[Violation], verify: Callable[[object], None]) -> None:
    """Either one predicted violation is raised, naming its parameter, or ``verify(call())``."""
    if violations:
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        message = str(info.value)
        assert any(isinstance(info.value, kind) and names_in(message, name) for kind, name in violations), (
            f"{type(info.value).__name__}: {message!r} is none of {violations}"
        )
    else:
        verify(call())


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    return torch.float64 if all(t.dtype == torch.float64 for t in tensors) else torch.float32


def close(
    got, expected: float, *, dtype: torch.dtype, rtol: float, atol: float = 0.0, atol64: float | None = None,
    rtol64: float = 1e-9,
) -> None:
    """``got``, a finite scalar (a tensor of ``dtype``, or a float), is within
    ``rtol·|expected| + atol`` of ``expected``, for a value computed in ``dtype``: the given
    tolerances are float32's; float64 gets ``rtol64`` and ``atol64`` (default ``atol × 1e-6``).

    ``atol`` covers values that are differences of larger terms (MMD², FD near 0): it is set
    from the magnitude of those terms, never from the value's own scale.
    """
    if isinstance(got, torch.Tensor):
        assert got.dtype == dtype, (got.dtype, dtype)
        got = got.item()
    assert math.isfinite(got), got
    if dtype == torch.float64:
        rtol, atol = rtol64, atol * 1e-6 if atol64 is None else atol64
    assert abs(got - expected) <= rtol * abs(expected) + atol, (got, expected)


def bandwidth_for(scale: float, dim: int) -> float:
    return scale * math.sqrt(2.0 * dim)


# ---------------------------------------------------------------- comparison: kernels


@PROPERTY
@given(two_sets())
def test_gaussian_kernel(case):
    x, y, scale = case
    sigma = bandwidth_for(scale, x.shape[1])

    def verify(k):
        assert k.dtype == compute_dtype(x, y) and k.shape == (x.shape[0], y.shape[0])
        expected = oracle.gauss(x.double(), y.double(), sigma)
        rtol = 1e-12 if k.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(k.double(), expected, rtol=rtol, atol=rtol)

    check_outcome(lambda: gaussian_kernel(x, y, sigma), pair_violations("x", x, "y", y), verify)


@PROPERTY
@given(two_sets(min_rows=1, max_rows=8))
def test_median_bandwidth(case):
    x, _, _ = case
    violations = tensor_violations("features", x)
    if not violations:
        median = oracle.median_distance(x) if x.shape[0] >= 2 else 0.0
        if x.shape[0] < 2 or median == 0.0:
            violations = [(ValueError, "features")]

    def verify(sigma):
        close(sigma, oracle.median_distance(x), dtype=compute_dtype(x), rtol=1e-5)

    check_outcome(lambda: median_bandwidth(x), violations, verify)


# ---------------------------------------------------------------- comparison: the losses


@PROPERTY
@given(two_sets(), st.sampled_from([(1.0,), (0.5, 2.0)]))
def test_mmd_exact_loss(case, factors):
    gen, ref, scale = case
    sigmas = [bandwidth_for(scale, gen.shape[1]) * f for f in factors]
    violations = pair_violations("gen_features", gen, "ref_features", ref)

    def verify(loss):
        close(loss, float(oracle.mmd_exact(gen.double(), ref.double(), sigmas)), dtype=compute_dtype(gen),
              rtol=1e-5, atol=1e-5 * len(sigmas))

    check_outcome(lambda: mmd_exact_loss(gen, ref, sigmas), violations, verify)


@PROPERTY
@given(two_sets(max_rows=6), st.integers(1, 3), st.sampled_from(["median", 1.0]))
def test_nystrom_reference_and_loss(case, num_landmarks, bandwidth):
    gen, pool, scale = case
    bw = bandwidth if bandwidth == "median" else bandwidth_for(scale, pool.shape[1])
    violations = tensor_violations("features", pool)
    if not violations:
        # Half-precision pools are computed in float32, so distinctness is judged there.
        rows = pool.to(compute_dtype(pool))
        distinct = torch.unique(rows, dim=0).shape[0]
        if num_landmarks > pool.shape[0]:
            violations = [(ValueError, "num_landmarks")]
        elif num_landmarks > distinct:
            violations = [(ValueError, "num_landmarks"), (ValueError, "features")]
        elif bw == "median" and (pool.shape[0] < 2 or oracle.median_distance(rows) == 0.0):
            violations = [(ValueError, "features")]

    def build():
        return NystromReference.build(pool, num_landmarks=num_landmarks, bandwidth=bw, kmeans_iters=2)

    refs: list[NystromReference] = []

    def verify_reference(ref):
        assert ref.landmarks.dtype == compute_dtype(pool) and ref.num_landmarks == num_landmarks
        expected, _ = oracle.nystrom_data_term(pool, ref.landmarks, ref.bandwidth)
        assert ref.data_term == pytest.approx(expected, rel=1e-6, abs=1e-9)
        refs.append(ref)

    check_outcome(build, violations, verify_reference)
    if not refs:
        return
    (ref,) = refs
    violations = tensor_violations("gen_features", gen, dim=ref.dim)

    def verify_loss(loss):
        weight = 2.0 + float(ref.alpha.abs().sum())  # float32 error grows with |alpha|_1
        close(loss, float(oracle.mmd_nystrom(gen.double(), [ref])), dtype=compute_dtype(gen), rtol=1e-5,
              atol=5e-6 * weight)

    check_outcome(lambda: mmd_nystrom_loss(gen, ref), violations, verify_loss)


@PROPERTY
@given(two_sets(same_rows=None), st.integers(1, 4), st.sampled_from((False, False, False, True)))
def test_sliced_wasserstein_loss(case, num_projections, bad_projections):
    gen, ref, scale = case
    theta = metrics.random_projections(gen.shape[1] + int(bad_projections), num_projections, seed=0)
    violations = pair_violations("gen_features", gen, "ref_features", ref)
    if ref.shape[0] != gen.shape[0]:
        violations.append((ValueError, "ref_features"))
    if bad_projections:
        violations.append((ValueError, "projections"))

    def verify(loss):
        expected = float(oracle.sliced_w2_squared(gen.double(), ref, theta))
        close(loss, expected, dtype=compute_dtype(gen), rtol=1e-5, atol=1e-9 * scale * scale)

    check_outcome(lambda: sliced_wasserstein_loss(gen, ref, theta), violations, verify)


@PROPERTY
@given(two_sets(min_rows=1, max_rows=5), st.booleans())
def test_drifting_loss(case, normalize):
    gen, positives, scale = case
    violations = pair_violations("gen_features", gen, "positives", positives)
    if gen.shape[0] < 2:
        violations.append((ValueError, "gen_features"))
    radii = (0.05, 0.2)

    def verify(loss):
        field = oracle.drift_field(gen.double(), positives.double(), radii, normalize)
        expected = 0.5 * float((field**2).sum(1).mean())
        # The value is ½ mean |V|²; |V| is about the mean pairwise distance s when normalised.
        s = float(torch.cdist(gen.double(), torch.cat([gen, positives]).double()).mean())
        # Coincident pairs' distances carry the expansion's ~sqrt(eps) · spread of rounding.
        close(loss, expected, dtype=compute_dtype(gen), rtol=1e-3, atol=1e-9 * s * s, rtol64=1e-7)

    check_outcome(lambda: drifting_loss(gen, positives, radii, normalize=normalize), violations, verify)


@PROPERTY
@given(two_sets())
def test_frechet_distance(case):
    gen, ref, _ = case
    violations = tensor_violations("reference", ref)
    if not violations and ref.shape[0] < 2:
        violations = [(ValueError, "reference")]
    fitted: list[distances.Distance] = []
    check_outcome(lambda: distances.create("frechet").fit(ref), violations, fitted.append)
    if not fitted:
        return
    violations = tensor_violations("gen_features", gen, dim=ref.shape[1])
    if gen.shape[0] < 2:
        violations.append((ValueError, "gen_features"))
    x = gen.detach().clone().requires_grad_(gen.is_floating_point())

    def verify(fd):
        g64, r64 = gen.double(), ref.double()
        # The cross term's square roots of near-zero eigenvalues carry ~sqrt(eps) of the size.
        size = float((g64**2).sum(1).mean() + (r64**2).sum(1).mean())
        close(fd, float(oracle.frechet(g64, r64)), dtype=compute_dtype(gen), rtol=1e-6, atol=1e-6 * size,
              atol64=1e-7 * size)
        fd.backward()
        assert x.grad is not None and x.grad.dtype == gen.dtype and bool(torch.isfinite(x.grad).all())

    check_outcome(lambda: fitted[0](x), violations, verify)


# ---------------------------------------------------------------- comparison: the Distance interface

SMALL = {
    "mmd_nystrom": {"num_landmarks": 2},
    "mmd_exact": {},
    "mmd_rff": {"num_features": 16},
    "frechet": {},
    "sliced_wasserstein": {"num_projections": 4},
    "drifting": {"bank_size": 2},
}
BANDWIDTH = ("mmd_nystrom", "mmd_exact", "mmd_rff")


@PROPERTY
@given(st.sampled_from(distances.NAMES), two_sets(min_rows=2))
def test_every_distance_validates_its_batch(name, case):
    """Fitted on a clean reference of 5 rows, every distance refuses a bad batch naming
    ``gen_features`` (or the option to change) and scores a good one with a finite loss in the
    compute dtype and a finite gradient in the input's dtype."""
    gen, ref, scale = case
    dim = min(gen.shape[1], ref.shape[1])  # the "dim" fault widened one of them
    clean = scale * torch.randn(5, dim, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    options = dict(SMALL[name], **({"bandwidth": bandwidth_for(scale, dim)} if name in BANDWIDTH else {}))
    dist = distances.create(name, **options).fit(clean)
    violations = tensor_violations("gen_features", gen, dim=dim)
    if name == "sliced_wasserstein" and gen.shape[0] > 5:
        violations.append((ValueError, "gen_features"))
    if name == "mmd_exact" and gen.shape[0] > 5:
        violations.append((ValueError, "sample_size"))
    x = gen.detach().clone().requires_grad_(gen.is_floating_point())

    def verify(loss):
        assert loss.dtype == compute_dtype(gen) and loss.ndim == 0 and math.isfinite(loss.item())
        loss.backward()
        assert x.grad is not None and x.grad.dtype == gen.dtype and bool(torch.isfinite(x.grad).all())

    check_outcome(lambda: dist(x, generator=torch.Generator().manual_seed(0)), violations, verify)


# ---------------------------------------------------------------- metrics


@PROPERTY
@given(two_sets(same_rows=None), st.integers(1, 4))
def test_metric_sliced_wasserstein(case, num_projections):
    x, y, scale = case
    violations = pair_violations("x", x, "y", y)
    if x.shape[0] != y.shape[0]:
        violations.append((ValueError, "y"))

    def verify(sw):
        theta = metrics.random_projections(x.shape[1], num_projections, seed=0)
        expected = math.sqrt(float(oracle.sliced_w2_squared(x.double(), y, theta)))
        close(sw, expected, dtype=torch.float64, rtol=0.0, atol=1e-3 * scale)

    check_outcome(lambda: metrics.sliced_wasserstein(x, y, num_projections, seed=0), violations, verify)


@PROPERTY
@given(two_sets(), st.booleans())
def test_metric_rff_mmd2(case, median):
    x, y, scale = case
    violations = pair_violations("x", x, "y", y)
    if median and not violations:
        if y.shape[0] < 2 or oracle.median_distance(y, lower=True) == 0.0:
            violations = [(ValueError, "y")]
    bandwidth = None if median else bandwidth_for(scale, x.shape[1])

    def verify(value):
        sigma = oracle.median_distance(y, lower=True) if median else bandwidth
        w, b = metrics.mmd.rff_weights(x.shape[1], sigma, 64, 0)  # the feature map is the definition
        close(value, float(oracle.rff(x.double(), y, w, b, 64)), dtype=torch.float64, rtol=0.0, atol=1e-6)

    check_outcome(lambda: metrics.rff_mmd2(x, y, num_features=64, seed=0, bandwidth=bandwidth), violations, verify)


@PROPERTY
@given(two_sets())
def test_metric_frechet_distance(case):
    x, y, _ = case
    violations = pair_violations("x", x, "y", y)
    for name, t in (("x", x), ("y", y)):
        if t.shape[0] < 2:
            violations.append((ValueError, name))

    def verify(fd):
        x64, y64 = x.double(), y.double()
        size = float((x64**2).sum(1).mean() + (y64**2).sum(1).mean())
        close(fd, float(oracle.frechet(x64, y64)), dtype=torch.float64, rtol=0.0, atol64=1e-7 * size)

    check_outcome(lambda: metrics.frechet_distance(x, y), violations, verify)


@PROPERTY
@given(two_sets(max_rows=8))
def test_metric_lower_median_bandwidth(case):
    x, _, _ = case
    violations = tensor_violations("x", x)
    if not violations and (x.shape[0] < 2 or oracle.median_distance(x, lower=True) == 0.0):
        violations = [(ValueError, "x")]

    def verify(sigma):
        close(sigma, oracle.median_distance(x, lower=True), dtype=torch.float64, rtol=0.0)

    check_outcome(lambda: metrics.lower_median_bandwidth(x), violations, verify)


@PROPERTY
@given(two_sets(same_rows=True, min_rows=2), st.integers(0, 2**16))
def test_metric_sw_ratio_panel(case, seed):
    gen, train, scale = case
    val = train.double() + scale * torch.randn(train.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    # The panel checks train first, then each set against its width.
    violations = tensor_violations("train features", train) + tensor_violations("features", gen)
    if gen.shape[1] != train.shape[1]:
        violations.append((ValueError, "features"))
    if not train.is_floating_point() or not bool(torch.isfinite(train).all()):
        violations.append((ValueError, "features"))  # val, derived from train, is bad too

    def verify(panel):
        theta = metrics.random_projections(gen.shape[1], 8, seed=0)
        num = math.sqrt(float(oracle.sliced_w2_squared(gen.double(), train, theta)))
        den = math.sqrt(float(oracle.sliced_w2_squared(val, train, theta)))
        assert panel["per_encoder"]["e"] == pytest.approx(num / den, rel=1e-9)

    check_outcome(
        lambda: metrics.sw_ratio_panel({"e": gen}, {"e": train}, {"e": val}, num_projections=8, seed=0),
        violations,
        verify,
    )
