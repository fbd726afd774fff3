"""Floor-normalised per-encoder ratio panels: SW_r,k (paper eq. 5), MMD_r,k and FD_r,k.

    r_e = d(φ_e gen, φ_e train) / d(φ_e val, φ_e train),   panel mean = (1/k) Σ_e r_e,

where d is the Sliced-Wasserstein distance (primary metric, Table 1), the RFF-MMD² (Appendix
D, Table 7: a ratio of MMD² values) or the Fréchet distance (the FD_r,k of Yang et al.). Real
validation data scores 1 by construction. The held-out mean restricts the average to the
encoders held out from training (Table 1's SW_r,4†).

Inputs are dicts ``{encoder: (N, D) features}``. Each set is subsampled to ``num_samples``
rows with a seeded choice that depends only on ``(N, num_samples, seed)``, so the train
subset is the same for the floors and for every checkpoint. SW needs equal-size sets: all
sets are cut to the common size ``min(num_samples, N_gen, N_train[, N_val])``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..validate import check_nonnegative_int, check_positive
from ._common import as_float64, seeded_subsample
from .fingerprints import check_fingerprints
from .frechet import frechet_from_stats, gaussian_stats
from .mmd import DEFAULT_NUM_FEATURES, lower_median_bandwidth, rff_mean_embedding, rff_weights
from .sliced import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_NUM_PROJECTIONS,
    random_projections,
    sliced_w2_squared,
)

Features = Mapping[str, torch.Tensor]
# distances(train_e, [set_e, ...]) -> [d(set_e, train_e), ...] for one encoder
PairDistances = Callable[[torch.Tensor, list[torch.Tensor]], list[float]]

DEFAULT_SW_SAMPLES = 16384  # 16384 samples per set (§4.1)
DEFAULT_MMD_SAMPLES = 50000  # 50000 samples for the RFF-MMD ratio (§4.4)


def _check_sets(
    gen: Features, train: Features, val: Features | None, floors: Mapping[str, float] | None
) -> list[str]:
    for label, feats in (("gen", gen), ("train", train), ("val", val)):
        if feats is not None and not isinstance(feats, Mapping):
            raise TypeError(
                f"{label} must be a dict {{encoder: (N, D) tensor}}, got {type(feats).__name__}"
            )
    if not gen:
        raise ValueError("gen must hold features for at least one encoder, got an empty dict")
    names = list(gen)
    if (val is None) == (floors is None):
        raise ValueError(
            "pass exactly one of val (features) or floors (precomputed d(val, train)), got "
            f"{'both' if val is not None else 'neither'}"
        )
    needed = {"train": train, "val": val, "floors": floors}
    for label, table in needed.items():
        if table is not None:
            missing = [n for n in names if n not in table]
            if missing:
                raise ValueError(
                    f"{label} lacks encoders {missing} present in gen; it has {sorted(table)}"
                )
    return names


def _check_held_out(held_out: Sequence[str], names: list[str]) -> list[str]:
    if isinstance(held_out, str):
        raise TypeError(
            f"held_out must be a sequence of encoder names, got the string {held_out!r}"
        )
    unknown = [n for n in held_out if n not in names]
    if unknown:
        raise ValueError(f"held_out names {unknown} are not in the panel {names}")
    return list(held_out)


def summarize_ratios(ratios: Mapping[str, float], held_out: Sequence[str] = ()) -> dict[str, Any]:
    """Panel means of per-encoder ratios: ``{"mean": (1/k) Σ r_e, "held_out_mean": mean over
    ``held_out`` or None, "held_out": [...]}`` (Table 1's SW_r,k and SW_r,4†)."""
    if not ratios:
        raise ValueError("ratios must hold at least one encoder, got an empty mapping")
    held = _check_held_out(held_out, list(ratios))
    return {
        "mean": float(sum(ratios.values()) / len(ratios)),
        "held_out_mean": float(sum(ratios[n] for n in held) / len(held)) if held else None,
        "held_out": held,
    }


def _ratio_panel(
    gen: Features,
    train: Features,
    val: Features | None,
    *,
    floors: Mapping[str, float] | None,
    held_out: Sequence[str],
    fingerprints: Mapping[str, Mapping[str, str]] | None,
    distances: PairDistances,
) -> dict[str, Any]:
    names = _check_sets(gen, train, val, floors)
    _check_held_out(held_out, names)
    if fingerprints is not None:
        check_fingerprints(fingerprints, names)
    dist, floor, ratio = {}, {}, {}
    for name in names:
        others = [gen[name]] if val is None else [gen[name], val[name]]
        values = distances(train[name], others)
        dist[name] = values[0]
        floor[name] = float(floors[name]) if floors is not None else values[1]
        if not floor[name] > 0:
            raise ValueError(
                f"encoder {name!r}: the real floor d(val, train) is {floor[name]!r}; "
                "a ratio needs a positive floor (are val and train the same set?)"
            )
        ratio[name] = dist[name] / floor[name]
    return {
        "per_encoder": ratio,
        **summarize_ratios(ratio, held_out),
        "distance": dist,
        "floor": floor,
    }


def _floors(train: Features, val: Features, distances: PairDistances) -> dict[str, float]:
    if not isinstance(val, Mapping) or not val:
        raise ValueError("val must be a non-empty dict {encoder: (N, D) tensor}")
    missing = [n for n in val if n not in train]
    if missing:
        raise ValueError(f"train lacks encoders {missing} present in val; it has {sorted(train)}")
    return {name: distances(train[name], [val[name]])[0] for name in val}


# ---------------------------------------------------------------- Sliced-Wasserstein (eq. 5)


def _sw_distances(
    num_projections: int, seed: int, num_samples: int, chunk_size: int
) -> PairDistances:
    check_positive("num_projections", num_projections, integer=True)
    check_positive("num_samples", num_samples, integer=True)
    check_nonnegative_int("seed", seed)
    cache: dict[int, torch.Tensor] = {}  # encoders of equal width share their projections

    def distances(train_e: torch.Tensor, others: list[torch.Tensor]) -> list[float]:
        ref = as_float64("train features", train_e)
        sets = [as_float64("features", o, dim=ref.shape[1]).to(ref.device) for o in others]
        n = min([num_samples, ref.shape[0]] + [s.shape[0] for s in sets])
        ref = seeded_subsample(ref, n, seed)
        sets = [seeded_subsample(s, n, seed) for s in sets]
        dim = ref.shape[1]
        if dim not in cache:
            cache[dim] = random_projections(dim, num_projections, seed)
        return [v**0.5 for v in sliced_w2_squared(ref, sets, cache[dim], chunk_size=chunk_size)]

    return distances


def sw_ratio_panel(
    gen: Features,
    train: Features,
    val: Features | None = None,
    num_projections: int = DEFAULT_NUM_PROJECTIONS,
    seed: int = 0,
    held_out: Sequence[str] = (),
    *,
    num_samples: int = DEFAULT_SW_SAMPLES,
    floors: Mapping[str, float] | None = None,
    fingerprints: Mapping[str, Mapping[str, str]] | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, Any]:
    """SW_r,k (eq. 5): per-encoder r_e = SW(gen, train) / SW(val, train) and their means.

    ``gen``/``train``/``val`` map encoder names to ``(N, D)`` features (the panel is gen's
    encoders). Pass ``floors`` ``{encoder: SW(val, train)}`` instead of ``val`` to reuse stored
    floors (computed with the same seed, projections and sample count). ``fingerprints`` maps
    roles to ``{encoder: fingerprint}``; any disagreement raises ``FingerprintMismatchError``.

    Returns ``{"per_encoder": {name: r_e}, "mean": SW_r,k, "held_out_mean": float | None,
    "held_out": [...], "distance": {name: SW(gen, train)}, "floor": {name: SW(val, train)}}``.
    """
    dist = _sw_distances(num_projections, seed, num_samples, chunk_size)
    return _ratio_panel(
        gen, train, val, floors=floors, held_out=held_out, fingerprints=fingerprints, distances=dist
    )


def sw_floors(
    train: Features,
    val: Features,
    num_projections: int = DEFAULT_NUM_PROJECTIONS,
    seed: int = 0,
    *,
    num_samples: int = DEFAULT_SW_SAMPLES,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, float]:
    """Real floors ``{encoder: SW(val, train)}``, the denominators of eq. 5."""
    return _floors(train, val, _sw_distances(num_projections, seed, num_samples, chunk_size))


# ---------------------------------------------------------------- RFF-MMD² (Appendix D)


def _mmd_distances(num_features: int, seed: int, num_samples: int) -> PairDistances:
    check_positive("num_features", num_features, integer=True)
    check_positive("num_samples", num_samples, integer=True)
    check_nonnegative_int("seed", seed)

    def distances(train_e: torch.Tensor, others: list[torch.Tensor]) -> list[float]:
        ref = seeded_subsample(as_float64("train features", train_e), num_samples, seed)
        w, b = rff_weights(ref.shape[1], lower_median_bandwidth(ref, seed=seed), num_features, seed)
        ref_mean = rff_mean_embedding(ref, w, b)
        out = []
        for o in others:
            s = seeded_subsample(
                as_float64("features", o, dim=ref.shape[1]).to(ref.device), num_samples, seed
            )
            out.append(float((rff_mean_embedding(s, w, b) - ref_mean).square().sum()))
        return out

    return distances


def mmd_ratio_panel(
    gen: Features,
    train: Features,
    val: Features | None = None,
    num_features: int = DEFAULT_NUM_FEATURES,
    seed: int = 0,
    held_out: Sequence[str] = (),
    *,
    num_samples: int = DEFAULT_MMD_SAMPLES,
    floors: Mapping[str, float] | None = None,
    fingerprints: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """MMD_r,k (Appendix D, Table 7): r_e = MMD²_RFF(gen, train) / MMD²_RFF(val, train).

    The Gaussian bandwidth is the median heuristic of each encoder's (subsampled) train
    features, and the RFF map is seeded, so gen and val are scored under one kernel. The
    ``floor`` entries are the raw MMD²(val, train) normalisers Table 7 prints (×10³ there).
    Same arguments and return layout as ``sw_ratio_panel``.
    """
    dist = _mmd_distances(num_features, seed, num_samples)
    return _ratio_panel(
        gen, train, val, floors=floors, held_out=held_out, fingerprints=fingerprints, distances=dist
    )


# ---------------------------------------------------------------- Fréchet (FD_r,k)


def _fd_distances(num_samples: int | None, seed: int) -> PairDistances:
    if num_samples is not None:
        check_positive("num_samples", num_samples, integer=True)
    check_nonnegative_int("seed", seed)

    def cap(x: torch.Tensor) -> torch.Tensor:
        return x if num_samples is None else seeded_subsample(x, num_samples, seed)

    def distances(train_e: torch.Tensor, others: list[torch.Tensor]) -> list[float]:
        mu_t, cov_t = gaussian_stats(cap(train_e), name="train features")
        out = []
        for o in others:
            mu, cov = gaussian_stats(cap(o), name="features", dim=mu_t.shape[0])
            out.append(frechet_from_stats(mu, cov, mu_t.to(mu.device), cov_t.to(mu.device)))
        return out

    return distances


def fd_ratio_panel(
    gen: Features,
    train: Features,
    val: Features | None = None,
    held_out: Sequence[str] = (),
    *,
    num_samples: int | None = None,
    seed: int = 0,
    floors: Mapping[str, float] | None = None,
    fingerprints: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Any]:
    """FD_r,k: r_e = FD(gen, train) / FD(val, train) (Yang et al.'s panel form, §3.3).

    ``num_samples=None`` uses every row. Same return layout as ``sw_ratio_panel``.
    """
    dist = _fd_distances(num_samples, seed)
    return _ratio_panel(
        gen, train, val, floors=floors, held_out=held_out, fingerprints=fingerprints, distances=dist
    )
