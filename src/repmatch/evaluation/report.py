"""Human-facing outputs of an evaluation: a Table-1-style markdown table and a bar chart."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..io import atomic_write

_ROWS = (("sw", "SW ratio"), ("mmd", "MMD² ratio"), ("fd", "FD ratio"))


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.3g}" if abs(value) < 1e-2 or abs(value) >= 1e3 else f"{value:.2f}"


def format_table(result: dict[str, Any]) -> str:
    """Markdown table like the paper's Table 1: one column per encoder (held-out marked †),
    then the panel mean and the held-out mean; one row per metric, the real-validation
    baseline (1 by construction) first and the raw SW floors last."""
    names, held = result["encoders"], set(result["held_out"])
    k, h = len(names), len(held)
    head = [
        "metric",
        *(f"{n}†" if n in held else n for n in names),
        f"mean (k={k})",
        f"held-out mean† (k={h})",
    ]
    rows = [["validation baseline", *["1.00"] * k, "1.00", "1.00" if h else "–"]]
    for key, label in _ROWS:
        panel = result.get(key)
        if panel:
            rows.append(
                [
                    label,
                    *(_fmt(panel["per_encoder"][n]) for n in names),
                    _fmt(panel["mean"]),
                    _fmt(panel["held_out_mean"]),
                ]
            )
    rows.append(
        ["SW(val, train) floor", *(f"{result['sw']['floor'][n]:.4g}" for n in names), "", ""]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_ratios(result: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Bar chart of the per-encoder SW ratios with the real floor (1) as a line; held-out
    encoders hatched. Written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt


    names, held, sw = result["encoders"], set(result["held_out"]), result["sw"]
    values = [sw["per_encoder"][n] for n in names]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(names) + 2), 3.6), dpi=120)
    bars = ax.bar(
        range(len(names)), values, color=["tab:orange" if n in held else "tab:blue" for n in names]
    )
    for bar, name in zip(bars, names):
        if name in held:
            bar.set_hatch("//")
    ax.axhline(
        1.0, color="black", linestyle="--", linewidth=1, label="real floor (val vs train) = 1"
    )
    ax.set_xticks(
        range(len(names)), [f"{n}†" if n in held else n for n in names], rotation=45, ha="right"
    )
    ax.set_ylabel("SW(gen, train) / SW(val, train)")
    title = f"SW_r,{len(names)} = {sw['mean']:.3f}"
    if sw["held_out_mean"] is not None:
        title += f"   held-out† mean = {sw['held_out_mean']:.3f}"
    ax.set_title(title)
    ax.set_ylim(0, 1.2 * max([*values, 1.0]))  # headroom for the legend
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return out
