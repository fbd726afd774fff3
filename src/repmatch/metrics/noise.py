"""The noise level of the SW_r,k panel: how far apart two real draws of one size score.

A model's ratio r_e = SW(gen, train) / SW(val, train) (eq. 5) is itself an estimate from a
finite sample set. Two *disjoint* draws A and B of ``n`` real images, scored exactly as a model
(same train rows, projections and floors), would both score 1 without sampling noise; their
spread

    noise_e = |r_e(A) − r_e(B)|,    and likewise |mean_e r_e(A) − mean_e r_e(B)| for the means,

is the size of a difference between two models' columns that sampling alone produces at this
``n`` (one realisation: |A − B| of two i.i.d. scores averages 1.13 σ). When A is the floors' own
validation set (:func:`disjoint_draws`), r_e(A) = 1 and noise_e = |r_e(B) − 1|.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from ..validate import check_positive
from ._common import subsample_indices
from .panel import Features, sw_ratio_panel
from .sliced import DEFAULT_CHUNK_SIZE, DEFAULT_NUM_PROJECTIONS


def disjoint_draws(
    num_rows: int, size: int, seed: int, *, extra_rows: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of two disjoint draws A and B of ``size`` rows each, from a pool of
    ``num_rows`` rows followed by ``extra_rows`` more.

    The pool is ordered as the seeded permutation ``subsample_indices(num_rows, num_rows,
    seed)`` of its first ``num_rows`` rows, then the extra rows ``num_rows, num_rows + 1, ...``;
    A is its first ``size`` rows and B the next ``size``. So A is exactly the rows
    ``subsample_indices(num_rows, size, seed)`` that floors and scores read from a store of
    ``num_rows`` rows, and B takes the store's remaining rows before any extra one.
    """
    check_positive("num_rows", num_rows, integer=True)
    check_positive("size", size, integer=True)
    if isinstance(extra_rows, bool) or not isinstance(extra_rows, int) or extra_rows < 0:
        raise ValueError(f"extra_rows must be an integer >= 0, got {extra_rows!r}")
    if 2 * size > num_rows + extra_rows:
        raise ValueError(
            f"two disjoint draws of size={size} need {2 * size} rows, the pool has "
            f"{num_rows} + {extra_rows} extra"
        )
    order = torch.cat(
        [subsample_indices(num_rows, num_rows, seed), torch.arange(num_rows, num_rows + extra_rows)]
    )
    return order[:size], order[size : 2 * size]


def sw_noise_level(
    draw_a: Features,
    draw_b: Features,
    train: Features,
    floors: Mapping[str, float],
    *,
    num_projections: int = DEFAULT_NUM_PROJECTIONS,
    seed: int = 0,
    held_out: Sequence[str] = (),
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> dict[str, Any]:
    """The spread of two disjoint real draws' SW_r,k panels (module docstring).

    ``draw_a``/``draw_b``: ``{encoder: (n, D)}`` real features of equal size ``n`` (disjoint
    rows, e.g. :func:`disjoint_draws`); ``train`` and ``floors`` as the models were scored with
    (:func:`sw_ratio_panel` cuts ``train`` to ``n`` rows by the same seeded rule). Returns
    ``{"per_encoder": {e: |r_e(A) − r_e(B)|}, "mean": ..., "held_out_mean": ... or None,
    "draw_size": n, "a": panel of A, "b": panel of B}`` (the panels' per-encoder ratios and
    means).
    """
    sizes = {int(x.shape[0]) for x in [*draw_a.values(), *draw_b.values()]}
    if len(sizes) != 1:
        raise ValueError(f"draw_a and draw_b must hold one number of rows, got sizes {sorted(sizes)}")
    n = sizes.pop()
    if sorted(draw_a) != sorted(draw_b):
        raise ValueError(f"draw_a and draw_b must hold the same encoders, got {sorted(draw_a)} and {sorted(draw_b)}")
    kw: dict[str, Any] = {
        "floors": floors, "num_projections": num_projections, "seed": seed,
        "held_out": held_out, "num_samples": n, "chunk_size": chunk_size,
    }
    a, b = sw_ratio_panel(draw_a, train, **kw), sw_ratio_panel(draw_b, train, **kw)

    def summary(panel: dict[str, Any]) -> dict[str, Any]:
        return {k: panel[k] for k in ("per_encoder", "mean", "held_out_mean")}

    return {
        "per_encoder": {e: abs(a["per_encoder"][e] - b["per_encoder"][e]) for e in a["per_encoder"]},
        "mean": abs(a["mean"] - b["mean"]),
        "held_out_mean": None
        if a["held_out_mean"] is None
        else abs(a["held_out_mean"] - b["held_out_mean"]),
        "draw_size": n,
        "a": summary(a),
        "b": summary(b),
    }
