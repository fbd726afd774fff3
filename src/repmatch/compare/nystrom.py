"""Frozen Nyström kernel mean embedding of a reference pool (paper §3.1, eq. 3).

With landmarks ``L = (l_1..l_m)`` placed by k-means on the data features and ``K_mm = k(L, L)``,
the Nyström feature map is ``psi(x) = K_mm^{-1/2} k(x, L)`` and the frozen mean embedding is
``mu_bar = (1/n) Σ_t psi(r_t)`` over the *whole* pool of ``n`` reference features. We store the
equivalent

    kbar  = (1/n) Σ_t k(r_t, L)            (m,)   streamed over the pool in chunks
    alpha = K_mm^+ kbar                    (m,)   so psi(g)^T mu_bar = k(g, L) · alpha
    data_term = kbar · alpha = ||mu_bar||² (the Nyström estimate of E k(r, r'))

``K_mm^+`` is the pseudo-inverse from a float64 eigendecomposition with eigenvalues below
``rcond · λ_max`` dropped (a spectral cut-off instead of a jitter: it leaves the exact inverse
untouched when ``K_mm`` is well conditioned, and bounds ``|alpha|`` when landmarks crowd).

Landmarks come from seeded k-means on a uniform subsample of ``kmeans_sample`` pool rows
(default ``min(n, 32 m)``): k-means++ seeding in at most 64 rounds (each round draws
``ceil(m/64)`` centres ∝ D², exactly k-means++ when ``m <= 64``), then ``kmeans_iters`` Lloyd
iterations; a cluster that empties is reseeded with the point farthest from its centre.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from ..io import (
    atomic_directory,
    atomic_save_safetensors,
    atomic_write_json,
    file_sha256,
    recover_directory,
)
from ..validate import check_choice, check_features, check_nonnegative_int, check_positive
from .kernels import (
    PRECISIONS,
    augmented_operands,
    compute_dtype,
    matmul_precision,
    median_bandwidth,
    sq_distances,
)

__all__ = ["DEFAULT_NUM_LANDMARKS", "FeatureChunks", "NystromReference", "kmeans"]

#: Landmarks per reference unless a caller says otherwise: the paper's m = 4096 (§3.1). Every
#: signature that takes ``num_landmarks`` defaults to this one value.
DEFAULT_NUM_LANDMARKS = 4096

#: A reference pool: a tensor ``(N, D)``, a re-iterable of ``(n_i, D)`` chunks (e.g. a list),
#: or a zero-argument callable returning a fresh iterator of chunks (e.g. reading shards).
FeatureChunks = torch.Tensor | Iterable[torch.Tensor] | Callable[[], Iterable[torch.Tensor]]

_FORMAT = "repmatch.nystrom_reference"
_VERSION = 1
_TENSORS = "reference.safetensors"
_MANIFEST = "manifest.json"


def _iter_chunks(features: FeatureChunks, chunk_size: int) -> Iterator[torch.Tensor]:
    if isinstance(features, torch.Tensor):
        check_features("features", features, finite=False)
        for i in range(0, features.shape[0], chunk_size):
            yield features[i : i + chunk_size]
        return
    if callable(features):
        source = features()
    elif isinstance(features, Iterable):
        if iter(features) is features:
            raise TypeError(
                "features is a one-shot iterator; the pool is read twice (subsample, then mean "
                "embedding), so pass a tensor, a list of chunks or a callable returning chunks"
            )
        source = features
    else:
        raise TypeError(
            "features must be a tensor (N, D), a re-iterable of (n, D) chunks or a callable "
            f"returning one, got {type(features).__name__}"
        )
    yield from source


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _pairwise_min(x: torch.Tensor, xx: torch.Tensor, c: torch.Tensor, chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row of ``x`` (centred), the nearest row of ``c`` and its squared distance."""
    cc = (c * c).sum(1)
    dist, idx = [], []
    for i in range(0, x.shape[0], chunk_size):
        d = torch.addmm(cc[None, :], x[i : i + chunk_size], c.T, alpha=-2.0)
        m, j = d.min(1)
        dist.append((m + xx[i : i + chunk_size]).clamp_min_(0.0))
        idx.append(j)
    return torch.cat(dist), torch.cat(idx)


def _kmeans_pp(xc: torch.Tensor, xx: torch.Tensor, k: int, gen: torch.Generator, chunk_size: int) -> torch.Tensor:
    """k-means++ seeding in at most 64 rounds of ``ceil(k/64)`` D²-weighted draws."""
    n = xc.shape[0]
    first = torch.randint(n, (1,), generator=gen, device=xc.device)
    chosen = [first]
    d2 = (xc - xc[first]).pow(2).sum(1)
    per_round = math.ceil(k / 64)
    count = 1
    while count < k:
        r = min(per_round, k - count)
        positive = int((d2 > 0).sum())
        if positive < r:
            raise ValueError(f"x has only {count + positive} distinct rows, fewer than num_clusters={k}")
        idx = torch.multinomial(d2, r, replacement=False, generator=gen)
        chosen.append(idx)
        nd, _ = _pairwise_min(xc, xx, xc[idx], chunk_size)
        d2 = torch.minimum(d2, nd)
        count += r
    return xc[torch.cat(chosen)].clone()


def kmeans(
    x: torch.Tensor,
    num_clusters: int,
    *,
    iters: int = 10,
    seed: int = 0,
    chunk_size: int = 16384,
    init: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded k-means on ``x`` ``(N, D)``; returns ``(centers (k, D), labels (N,))``.

    ``init`` ``(k, D)`` gives the initial centres (warm start) instead of k-means++.

    k-means++ seeding (in at most 64 rounds, see the module docstring), ``iters`` Lloyd
    iterations, empty clusters reseeded with the farthest points; every returned cluster is
    non-empty. Deterministic for a given ``seed`` and input on CPU; on CUDA the cluster sums
    use atomic adds, so centres can differ in the last bits between runs.
    """
    check_features("x", x)
    check_positive("num_clusters", num_clusters, integer=True)
    check_nonnegative_int("iters", iters)
    n = x.shape[0]
    if num_clusters > n:
        raise ValueError(f"num_clusters={num_clusters} exceeds the number of points ({n})")
    gen = torch.Generator(device=x.device).manual_seed(seed)
    mean = x.mean(0)
    xc = x - mean  # centring keeps the distance expansion accurate in float32
    xx = (xc * xc).sum(1)

    if init is not None:
        check_features("init", init, dim=x.shape[1])
        if init.shape[0] != num_clusters:
            raise ValueError(f"init must have num_clusters={num_clusters} rows, got {init.shape[0]}")
        centers = init.to(xc) - mean
    else:
        centers = _kmeans_pp(xc, xx, num_clusters, gen, chunk_size)

    def assign() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        dist, labels = _pairwise_min(xc, xx, centers, chunk_size)
        counts = torch.bincount(labels, minlength=num_clusters)
        return dist, labels, counts

    def reseed_empty(dist: torch.Tensor, labels: torch.Tensor, counts: torch.Tensor) -> None:
        # Move the farthest points of clusters that can spare one into the empty clusters.
        for j in torch.nonzero(counts == 0).flatten().tolist():
            donor_ok = counts[labels] > 1
            i = int(torch.where(donor_ok, dist, torch.full_like(dist, -1.0)).argmax())
            counts[labels[i]] -= 1
            counts[j] += 1
            labels[i] = j
            dist[i] = 0.0
            centers[j] = xc[i]

    for _ in range(iters):
        dist, labels, counts = assign()
        reseed_empty(dist, labels, counts)
        sums = torch.zeros_like(centers).index_add_(0, labels, xc)
        centers = sums / counts[:, None].to(xc.dtype)
    dist, labels, counts = assign()
    reseed_empty(dist, labels, counts)
    return centers + mean, labels


def _gaussian_from_sq(d2: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.exp(d2 / (-2.0 * sigma * sigma))


class _Stopwatch:
    """Per-stage wall-clock seconds; each lap waits for the device's queued work first."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = time.perf_counter()

    def lap(self, stage: str, device: torch.device) -> None:
        _sync(device)
        now = time.perf_counter()
        self.timings[stage] = now - self._start
        self._start = now


def _check_build_args(
    num_landmarks: int,
    bandwidths: Sequence[float] | None,
    chunk_size: int,
    rcond: float,
    precision: str,
    kmeans_iters: int,
    kmeans_sample: int | None,
) -> int:
    """Validate :meth:`NystromReference.build_multiscale`'s arguments; return the k-means
    sample size (``kmeans_sample``, default ``32 * num_landmarks``)."""
    if isinstance(bandwidths, str):
        raise TypeError(f"bandwidths must be a sequence of positive numbers or None, got {bandwidths!r}")
    check_positive("num_landmarks", num_landmarks, integer=True)
    check_positive("chunk_size", chunk_size, integer=True)
    check_positive("rcond", rcond)
    check_choice("precision", precision, PRECISIONS)
    check_nonnegative_int("kmeans_iters", kmeans_iters)
    if bandwidths is not None:
        for b in bandwidths:
            check_positive("bandwidth", b)
    sample_size = kmeans_sample if kmeans_sample is not None else 32 * num_landmarks
    check_positive("kmeans_sample", sample_size, integer=True)
    return sample_size


def _target_device(device: torch.device | str | None, features: torch.Tensor) -> torch.device:
    return torch.device(device) if device is not None else features.device


def _checked_chunks(features: FeatureChunks, chunk_size: int, dim: int | None = None) -> Iterator[torch.Tensor]:
    """The pool's chunks, each validated when the pool is not one tensor (a tensor pool is
    validated whole); every chunk must have ``dim`` columns, or the first chunk's if ``None``."""
    for i, chunk in enumerate(_iter_chunks(features, chunk_size)):
        if not isinstance(features, torch.Tensor):
            check_features(f"features (chunk {i})", chunk, dim=dim)
            dim = chunk.shape[1]
        yield chunk


def _sample_pool(
    features: FeatureChunks, sample_size: int, *, seed: int, chunk_size: int, device: torch.device | str | None
) -> tuple[torch.Tensor, int, torch.device]:
    """One pass over the pool: a seeded uniform subsample of at most ``sample_size`` rows
    (computed in float32 for half-precision pools), the pool size ``n`` and the device."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if isinstance(features, torch.Tensor):
        check_features("features", features)
        n = features.shape[0]
        dev = _target_device(device, features)
        idx = torch.randperm(n, generator=gen)[: min(n, sample_size)].to(features.device)
        return features.index_select(0, idx).to(dev, compute_dtype(features.dtype)), n, dev
    return _sample_chunks(features, sample_size, gen, chunk_size, device)


def _sample_chunks(
    features: FeatureChunks, sample_size: int, gen: torch.Generator, chunk_size: int, device: torch.device | str | None
) -> tuple[torch.Tensor, int, torch.device]:
    """:func:`_sample_pool` over chunks: a random key per row, keeping the rows with the
    ``sample_size`` smallest keys (a one-pass sample without replacement)."""
    keys_kept = torch.empty(0)
    sample = None
    dev = None
    n = 0
    for chunk in _checked_chunks(features, chunk_size):
        if dev is None:
            dev = _target_device(device, chunk)
        keys = torch.rand(chunk.shape[0], generator=gen, dtype=torch.float64)
        n += chunk.shape[0]
        cat_keys = torch.cat([keys_kept, keys])
        rows = chunk.to(dev, compute_dtype(chunk.dtype)) if sample is None else torch.cat([sample, chunk.to(dev, sample.dtype)])
        if cat_keys.shape[0] > sample_size:
            keep = torch.topk(cat_keys, sample_size, largest=False).indices
            cat_keys = cat_keys[keep]
            rows = rows.index_select(0, keep.to(dev))
        keys_kept, sample = cat_keys, rows
    if sample is None or dev is None:
        raise ValueError("features is empty: the pool yielded no chunks")
    return sample, n, dev


def _bandwidths_of(
    sample: torch.Tensor, bandwidths: Sequence[float] | None, factors: Sequence[float], *, seed: int
) -> tuple[float, ...]:
    """``bandwidths`` as floats, or ``median_bandwidth(sample) × factors`` when ``None``."""
    if bandwidths is None:
        base = median_bandwidth(sample, seed=seed)
        return tuple(base * float(f) for f in factors)
    return tuple(float(b) for b in bandwidths)


def _place_landmarks(
    sample: torch.Tensor, num_landmarks: int, kmeans_iters: int, seed: int, chunk_size: int, precision: str
) -> torch.Tensor:
    """The landmarks ``L`` ``(m, D)``: k-means centres of the sample."""
    with matmul_precision(precision):
        try:
            landmarks, _ = kmeans(sample, num_landmarks, iters=kmeans_iters, seed=seed, chunk_size=chunk_size)
        except ValueError as exc:  # kmeans names its own x and num_clusters
            raise ValueError(
                f"num_landmarks={num_landmarks} needs at least as many distinct rows in features "
                f"(k-means sample of {sample.shape[0]}): {exc}"
            ) from exc
    return landmarks


def _factorize(landmarks: torch.Tensor, sigmas: Sequence[float], rcond: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per bandwidth, the float64 eigenpairs of ``K_mm`` with eigenvalues above ``rcond · λ_max``."""
    l64 = landmarks.to(torch.float64)
    d2_mm = sq_distances(l64, l64, center=l64.mean(0))
    eig = []
    for sigma in sigmas:
        evals, evecs = torch.linalg.eigh(_gaussian_from_sq(d2_mm, sigma))
        keep = evals > rcond * evals[-1]
        eig.append((evals[keep], evecs[:, keep]))
    return eig


def _kernel_mean(
    features: FeatureChunks, landmarks: torch.Tensor, sigmas: Sequence[float], chunk_size: int, precision: str
) -> torch.Tensor:
    """``Σ_t k(r_t, L)`` over the whole pool per bandwidth, ``(len(sigmas), m)`` accumulated in
    float64 (the caller divides by ``n`` for ``kbar``)."""
    dev = landmarks.device
    center = landmarks.mean(0)
    right = augmented_operands(landmarks - center, left=False)
    sums = torch.zeros(len(sigmas), landmarks.shape[0], dtype=torch.float64, device=dev)
    with matmul_precision(precision):
        for chunk in _checked_chunks(features, chunk_size, dim=landmarks.shape[1]):
            left = augmented_operands(chunk.to(dev, landmarks.dtype) - center, left=True)
            for s, sigma in enumerate(sigmas):
                # One matmul gives -||r - l||²/(2σ²); one in-place exp makes it k(r, l).
                block = torch.mm(left * (1.0 / (sigma * sigma)), right.T).exp_()
                sums[s] += block.sum(0, dtype=torch.float64)
    return sums


def _solve(evals: torch.Tensor, evecs: torch.Tensor, kbar: torch.Tensor) -> tuple[torch.Tensor, float, int]:
    """``alpha = K_mm^+ kbar``, the data term ``kbar · alpha`` and the rank kept in ``K_mm^+``."""
    alpha = evecs @ ((evecs.T @ kbar) / evals)
    return alpha, float(kbar @ alpha), int(evals.shape[0])


@dataclass(frozen=True, eq=False, kw_only=True)
class NystromReference:
    """A frozen Nyström summary of a reference pool at one Gaussian bandwidth.

    Attributes: ``landmarks`` ``(m, D)`` (pool dtype), ``alpha`` ``(m,)`` float64
    (``K_mm^+ kbar``), ``bandwidth`` σ, ``data_term`` (``kbar · alpha``), ``pool_size`` n,
    ``fingerprint`` (an optional string naming the feature space, checked on use) and
    ``info`` (build parameters and per-stage timings in seconds).
    """

    landmarks: torch.Tensor
    alpha: torch.Tensor
    bandwidth: float
    data_term: float
    pool_size: int
    fingerprint: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A reference with a bad field gives a wrong (even negative) loss without any error, so
        # every field is checked here, whether built or loaded.
        lm, alpha = self.landmarks, self.alpha
        if not isinstance(lm, torch.Tensor) or lm.ndim != 2 or not lm.is_floating_point() or lm.shape[0] < 1:
            raise ValueError(f"landmarks must be a floating tensor (m, D), got {getattr(lm, 'dtype', type(lm))} {tuple(getattr(lm, 'shape', ()))}")
        if not isinstance(alpha, torch.Tensor) or alpha.shape != (lm.shape[0],) or not alpha.is_floating_point():
            raise ValueError(f"alpha must be a floating tensor ({lm.shape[0]},), got {getattr(alpha, 'dtype', type(alpha))} {tuple(getattr(alpha, 'shape', ()))}")
        if not (bool(torch.isfinite(lm).all()) and bool(torch.isfinite(alpha).all())):
            raise ValueError("landmarks and alpha must be finite")
        bw = self.bandwidth
        if isinstance(bw, bool) or not (isinstance(bw, (int, float)) and math.isfinite(bw) and bw > 0):
            raise ValueError(f"bandwidth must be a positive finite number, got {self.bandwidth!r}")
        if not (isinstance(self.data_term, (int, float)) and math.isfinite(self.data_term)):
            raise ValueError(f"data_term must be a finite number, got {self.data_term!r}")
        check_positive("pool_size", self.pool_size, integer=True)

    @property
    def dim(self) -> int:
        return int(self.landmarks.shape[1])

    @property
    def num_landmarks(self) -> int:
        return int(self.landmarks.shape[0])

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        features: FeatureChunks,
        num_landmarks: int = DEFAULT_NUM_LANDMARKS,
        bandwidth: str | float = "median",
        seed: int = 0,
        fingerprint: str | None = None,
        chunk_size: int = 16384,
        kmeans_iters: int = 10,
        kmeans_sample: int | None = None,
        rcond: float = 1e-7,
        precision: str = "highest",
        device: torch.device | str | None = None,
    ) -> NystromReference:
        """Build the reference from a pool ``(N, D)`` (tensor, chunks, or callable; see module).

        ``bandwidth="median"`` uses :func:`repmatch.median_bandwidth` on the k-means subsample.
        ``precision="tf32"`` lets CUDA float32 matmuls (k-means, mean embedding) use TF32;
        ``K_mm`` and its factorisation are always float64.
        """
        if isinstance(bandwidth, str) and bandwidth != "median":
            raise ValueError(f"bandwidth must be 'median' or a positive number, got {bandwidth!r}")
        return cls.build_multiscale(
            features,
            num_landmarks=num_landmarks,
            bandwidths=None if isinstance(bandwidth, str) else (bandwidth,),  # str: "median"
            factors=(1.0,),
            seed=seed,
            fingerprint=fingerprint,
            chunk_size=chunk_size,
            kmeans_iters=kmeans_iters,
            kmeans_sample=kmeans_sample,
            rcond=rcond,
            precision=precision,
            device=device,
        )[0]

    @classmethod
    def build_multiscale(
        cls,
        features: FeatureChunks,
        num_landmarks: int = DEFAULT_NUM_LANDMARKS,
        bandwidths: Sequence[float] | None = None,
        factors: Sequence[float] = (0.5, 1.0, 2.0),
        seed: int = 0,
        fingerprint: str | None = None,
        chunk_size: int = 16384,
        kmeans_iters: int = 10,
        kmeans_sample: int | None = None,
        rcond: float = 1e-7,
        precision: str = "highest",
        device: torch.device | str | None = None,
    ) -> tuple[NystromReference, ...]:
        """One reference per bandwidth, sharing landmarks and one pass over the pool.

        ``bandwidths`` explicit, or ``None`` for ``median_bandwidth × factors``.
        The stages (sample, k-means, factorize, embed, solve) are timed into ``info``.
        """
        sample_size = _check_build_args(
            num_landmarks, bandwidths, chunk_size, rcond, precision, kmeans_iters, kmeans_sample
        )
        clock = _Stopwatch()
        sample, n, dev = _sample_pool(features, sample_size, seed=seed, chunk_size=chunk_size, device=device)
        if num_landmarks > n:
            raise ValueError(f"num_landmarks={num_landmarks} exceeds the number of pool points ({n})")
        sigmas = _bandwidths_of(sample, bandwidths, factors, seed=seed)
        clock.lap("sample", dev)
        landmarks = _place_landmarks(sample, num_landmarks, kmeans_iters, seed, chunk_size, precision)
        del sample
        clock.lap("kmeans", dev)
        eig = _factorize(landmarks, sigmas, rcond)
        clock.lap("factorize", dev)
        kbar = _kernel_mean(features, landmarks, sigmas, chunk_size, precision) / n
        clock.lap("embed", dev)
        solved = [_solve(evals, evecs, kbar[s]) for s, (evals, evecs) in enumerate(eig)]
        clock.lap("solve", dev)
        landmarks = landmarks.detach()
        return tuple(
            cls(
                landmarks=landmarks,
                alpha=alpha,
                bandwidth=sigma,
                data_term=data_term,
                pool_size=n,
                fingerprint=fingerprint,
                info={
                    "seed": seed,
                    "kmeans_iters": kmeans_iters,
                    "kmeans_sample": min(n, sample_size),
                    "rcond": rcond,
                    "rank": rank,
                    "precision": precision,
                    "timings_s": dict(clock.timings),
                },
            )
            for sigma, (alpha, data_term, rank) in zip(sigmas, solved)
        )

    # ------------------------------------------------------------------ use
    def check_compatible(self, features: torch.Tensor, fingerprint: str | None = None, *, name: str = "features") -> None:
        """Raise ``ValueError`` if ``features`` ``(B, D)`` or ``fingerprint`` do not match
        (errors name the caller's parameter ``name``)."""
        check_features(name, features, dim=self.dim)
        if fingerprint is not None and self.fingerprint is not None and fingerprint != self.fingerprint:
            raise ValueError(
                f"fingerprint {fingerprint!r} does not match the reference's {self.fingerprint!r} "
                "(features from a different encoder/preprocessing?)"
            )

    def to(self, device: torch.device | str) -> NystromReference:
        """A copy with tensors on ``device``."""
        return NystromReference(
            landmarks=self.landmarks.to(device),
            alpha=self.alpha.to(device),
            bandwidth=self.bandwidth,
            data_term=self.data_term,
            pool_size=self.pool_size,
            fingerprint=self.fingerprint,
            info=dict(self.info),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | Path) -> Path:
        """Write the directory ``path``: ``reference.safetensors`` and ``manifest.json``.

        The directory is built beside ``path`` and swapped into place whole
        (:func:`repmatch.io.atomic_directory`): a crash or a full disk at any point leaves the
        previous reference at ``path`` intact, never a mix of old and new files. ``path``
        belongs to the reference: an existing directory that holds something else is refused
        (``ValueError``), not replaced. The manifest records the tensors file's SHA-256,
        which :meth:`load` checks.
        """
        path = Path(path)
        with atomic_directory(path, replaces=_MANIFEST) as tmp:
            tensors = atomic_save_safetensors(
                tmp / _TENSORS,
                {"landmarks": self.landmarks, "alpha": self.alpha},
            )
            atomic_write_json(
                tmp / _MANIFEST,
                {
                    "format": _FORMAT,
                    "version": _VERSION,
                    "tensors_sha256": file_sha256(tensors),
                    "bandwidth": self.bandwidth,
                    "data_term": self.data_term,
                    "pool_size": self.pool_size,
                    "dim": self.dim,
                    "num_landmarks": self.num_landmarks,
                    "fingerprint": self.fingerprint,
                    "info": self.info,
                },
            )
        return path

    @classmethod
    def load(cls, path: str | Path, device: torch.device | str = "cpu") -> NystromReference:
        """Read a reference written by :meth:`save`; every error names the file."""

        path = Path(path)
        recover_directory(path)
        manifest_path = path / _MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"no Nyström reference at {path} (missing {_MANIFEST})")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{manifest_path} is not valid JSON ({exc}); rebuild the reference") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            found = manifest if isinstance(manifest, dict) else {}
            raise ValueError(
                f"{manifest_path} is not a {_FORMAT} v{_VERSION} manifest "
                f"(format={found.get('format')!r}, version={found.get('version')!r})"
            )
        tensors_path = path / _TENSORS
        expected = manifest.get("tensors_sha256")
        if expected is not None and file_sha256(tensors_path) != expected:
            raise ValueError(
                f"{tensors_path} is not the file {manifest_path} was written with (SHA-256 "
                "differs: an interrupted or mixed write); rebuild the reference"
            )
        try:
            tensors = load_file(str(tensors_path), device=str(device))
            ref = cls(
                landmarks=tensors["landmarks"],
                alpha=tensors["alpha"],
                bandwidth=manifest["bandwidth"],
                data_term=manifest["data_term"],
                pool_size=manifest["pool_size"],
                fingerprint=manifest["fingerprint"],
                info=manifest.get("info", {}),
            )
        except (ValueError, TypeError, KeyError, OSError, SafetensorError) as exc:
            raise ValueError(f"Nyström reference {path}: {exc}") from exc
        if ref.dim != manifest["dim"] or ref.num_landmarks != manifest["num_landmarks"]:
            raise ValueError(f"{path}: tensor shapes do not match the manifest")
        return ref
