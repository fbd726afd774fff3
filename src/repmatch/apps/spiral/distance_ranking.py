"""The distance ranking on the spiral (paper Table 4): every arm scored by two neutral distances.

The cells are the grid's (:mod:`.grid`) at B ∈ {32, 128}; each arm is read on SW_r and MMD_r in
R^64 against held-out real samples (:mod:`.neutral`; no arm trains on either, though
``sliced_wasserstein`` and ``mmd_rff`` each train on a relative of one, so, as in the paper,
each is best judged on the other). The ranking orders arms by the mean ratio over seeds (lower
is better); stability is read two ways: how many seeds reproduce the mean ranking exactly, and
Kendall's τ between rankings (per seed, and SW_r vs MMD_r).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from .report import mean_sd
from .grid import SpiralResult

__all__ = ["NEUTRAL", "PAPER_ORDER", "Scores", "kendall_tau", "rank_arms", "ranking_summary",
           "scores_from_json", "scores_from_results"]

#: One seed's scores: ``{(arm, batch_size): {"recall": ..., "med_dist": ..., "sw_ratio": ...,
#: "mmd_ratio": ...}}``.
Scores = dict[tuple[str, int], dict[str, float]]
_FIELDS = ("recall", "med_dist", "sw_ratio", "mmd_ratio")


def scores_from_results(results: Sequence[SpiralResult]) -> list[Scores]:
    """Per seed, the scores of every cell of trained results."""
    return [{(c.arm, c.batch_size): {f: float(getattr(c, f)) for f in _FIELDS} for c in r.cells}
            for r in results]


def scores_from_json(document: dict[str, Any]) -> tuple[list[int], list[Scores]]:
    """``(seeds, per-seed scores)`` from a spiral study's ``results.json`` (its ``runs``)."""
    try:
        runs = document["runs"]
        return ([int(r["seed"]) for r in runs],
                [{(c["arm"], int(c["batch_size"])): {f: float(c[f]) for f in _FIELDS} for c in r["cells"]}
                 for r in runs])
    except (KeyError, TypeError) as err:
        raise ValueError(
            "results.json must be a spiral study's output with per-seed 'runs' holding cells with "
            f"recall, med_dist, sw_ratio and mmd_ratio; missing {err}"
        ) from None

#: The neutral scores, as ``SpiralCell`` attributes, with their names in the paper.
NEUTRAL: dict[str, str] = {"sw_ratio": "SW_r", "mmd_ratio": "MMD_r"}

#: Table 4's order, best first (``mmdx`` is mmd_nystrom, ``fd`` frechet, ``sw`` sliced_wasserstein;
#: its ``drifting`` is the released port, i.e. ``drifting_floor`` here).
PAPER_ORDER: tuple[str, ...] = ("mmd_nystrom", "mmd_rff", "mmd_exact", "frechet",
                                "sliced_wasserstein", "drifting")


def rank_arms(values: dict[str, float]) -> list[str]:
    """Arms sorted by value, lowest (closest to real) first; ties keep the given order."""
    return sorted(values, key=lambda a: values[a])


def kendall_tau(first: Sequence[str], second: Sequence[str]) -> float:
    """Kendall's τ between two orderings of the same items: (concordant − discordant) / pairs."""
    if sorted(first) != sorted(second) or len(first) < 2:
        raise ValueError(f"first and second must order the same ≥ 2 items, got {list(first)} and {list(second)}")
    pos = {a: i for i, a in enumerate(second)}
    pairs = list(itertools.combinations(first, 2))
    concordant = sum(1 for a, b in pairs if pos[a] < pos[b])
    return (2 * concordant - len(pairs)) / len(pairs)


def ranking_summary(per_seed_scores: Sequence[Scores], arms: Sequence[str],
                    batch_sizes: Sequence[int]) -> dict[str, Any]:
    """Per batch size and neutral distance: the mean ranking, the per-seed rankings, their
    agreement, and the agreement of SW_r with MMD_r; Kendall's τ against the paper's order
    (``drifting`` read as each of the two drifting arms in turn, where both ran)."""
    out: dict[str, Any] = {}
    for b in batch_sizes:
        entry: dict[str, Any] = {}
        for score, label in NEUTRAL.items():
            per_seed = [{a: s[(a, b)][score] for a in arms} for s in per_seed_scores]
            means = {a: mean_sd([v[a] for v in per_seed])[0] for a in arms}
            order = rank_arms(means)
            seed_orders = [rank_arms(v) for v in per_seed]
            paper: dict[str, float] = {}
            for variant in ("drifting", "drifting_floor"):
                sub = [a if a != "drifting" else variant for a in PAPER_ORDER]
                if all(a in arms for a in sub):
                    ours = [a for a in order if a in sub]
                    paper[variant] = kendall_tau(ours, sub)
            entry[label] = {
                "order": order,
                "means": means,
                "seed_orders": seed_orders,
                "seeds_matching_mean_order": sum(o == order for o in seed_orders),
                "tau_seed_vs_mean": [kendall_tau(o, order) for o in seed_orders],
                "tau_vs_paper": paper,
            }
        entry["tau_sw_vs_mmd"] = kendall_tau(entry["SW_r"]["order"], entry["MMD_r"]["order"])
        out[str(b)] = entry
    return out
