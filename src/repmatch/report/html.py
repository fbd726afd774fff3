"""A self-contained HTML report of a run directory (no network: images are data URIs, CSS inline).

Run-directory layout read by :func:`build_report` (every part optional; a missing or broken part
becomes a short message on the page, never an exception)::

    RUN_DIR/report.json          the words: class names, model display names, reference rows
                                 of real images, training logs to plot (:mod:`.meta`); the
                                 keyword arguments of :func:`build_report` override it
    RUN_DIR/config.json          resolved run config, shown verbatim
    RUN_DIR/stats.jsonl          training log, one JSON object per line (keys like nimg, step,
                                 loss, nested per-encoder dicts); plotted as curves
                                 (:mod:`.curves`). Without it, and unless report.json lists
                                 the logs, every RUN_DIR/<run>/stats.jsonl is plotted, one line
                                 style per run
    RUN_DIR/samples/<model>.png  a sample grid (e.g. one row per class), shown as is (small
                                 ones enlarged by an integer factor; the last 12 files by name);
                                 rows are named when its ``repmatch:rows`` text chunk lists
                                 their classes (``write_sample_grid`` writes it)
    RUN_DIR/samples/<model>.npz  or arrays ``images`` (N, H, W) / (N, C, H, W) / (N, H, W, C),
                                 uint8 or float in [0, 1], plus optional ``labels`` (N,):
                                 tiled one row per class (first 10 of each), and optional
                                 ``class_names`` (a string array indexed by label)
    RUN_DIR/eval/<model>.json    {"per_encoder": {encoder: SW ratio r_e}, "mean": SW_r,k,
                                  "held_out_mean": mean over held-out encoders or null,
                                  "held_out": [encoder, ...] (optional)}
    RUN_DIR/eval/<model>/eval.json  or the file ``repmatch eval --out RUN_DIR/eval/<model>``
                                 writes: the same panel under "sw" (and "held_out" at the top),
                                 with optional "mmd"/"fd" cross-check panels; either layout
                                 may carry a top-level "class_agreement" (the fraction of samples
                                 a classifier assigns to their conditioning class) and
                                 "diversity" (within-class diversity relative to real images),
                                 each shown as a column (not ranked, not bolded)

The SW_r,k table (paper eq. 5) has one row per model, sorted by ``mean`` (lower is closer to
real; 1 is the real-validation floor), one column per encoder (held-out encoders marked †),
the panel means, the MMD/FD cross-check means when present, the lowest value of each column
in bold. Below the models, reference rows of real images (shaded, never ranked or bold): the
floor's validation set, 1 in every ratio column by construction, with its class agreement
and diversity when report.json gives them.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..io import atomic_write_text
from ..images import GRID_ROWS_KEY, class_grid, make_grid, png_bytes
from .curves import Panel, curve_panels, curves_png, read_stats
from .meta import CurveSource, ReferenceRow, ReportMeta, read_report_meta

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;
color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
p.lead{color:#444;max-width:60rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}thead th{background:#f3f3f3}
td.best{font-weight:bold}th.held{background:#fdf1dc}
tfoot tr.reference td{background:#eef4fa;color:#345;font-style:italic;font-weight:normal}
tfoot tr.reference:first-child td{border-top:3px double #89a}
.missing{color:#8a5a00;background:#fff7e6;border-left:3px solid #e0a000;padding:.3rem .6rem}
.note{color:#555;font-size:.85rem}ul.note{margin:.3rem 0;padding-left:1.2rem}
.samples{display:flex;flex-wrap:wrap;gap:1.5rem}figure{margin:0}
figcaption{font-size:.9rem;color:#333;margin-top:.2rem;font-weight:600}
figcaption code{font-weight:normal;color:#777;font-size:.75rem;margin-left:.4rem}
.labelled{display:flex;align-items:stretch}
ol.rows{list-style:none;margin:0 .4rem 0 0;padding:0;display:flex;flex-direction:column;
font-size:.75rem;color:#444}
ol.rows li{flex:1;display:flex;align-items:center;justify-content:flex-end;white-space:nowrap}
img{max-width:100%}img.pixelated{image-rendering:pixelated}
pre{background:#f6f6f6;padding:.6rem;overflow:auto;font-size:.8rem}
"""


@dataclass
class EvalEntry:
    """One model's evaluation as read from ``eval/<model>.json``."""

    model: str
    per_encoder: dict[str, float]
    mean: float | None
    held_out_mean: float | None
    held_out: list[str] = field(default_factory=list)
    cross_checks: dict[str, float | None] = field(default_factory=dict)
    class_agreement: float | None = None
    diversity: float | None = None


# Cross-check panels of ``repmatch eval`` shown as extra mean columns: key -> column header.
_CROSS_CHECKS = {"mmd": "MMD<sub>r,k</sub>", "fd": "FD<sub>r,k</sub>"}

# Conditional checks beside the panel (an eval file's top-level keys, ``EvalEntry`` and
# ``ReferenceRow`` fields): key -> (column header, legend). Neither is lower-is-better, so
# neither is bolded; a reference row shows the real images' value.
_EXTRA_COLUMNS = {
    "class_agreement": (
        "class agreement<sup>‡</sup>",
        "‡ Class agreement: the fraction of samples a classifier assigns to their "
        "conditioning class (higher is better); SW<sub>r,k</sub> compares marginal laws "
        "and cannot see wrong-class samples.",
    ),
    "diversity": (
        "diversity<sup>§</sup>",
        "§ Within-class diversity: per class, the samples’ mean pairwise feature distance "
        "over that of real images of the class, averaged over classes. 1 is the real spread "
        "(a real reference row: a second real draw, so 1 up to sampling noise); below 1 the "
        "samples of a class are too alike (mode collapse), which SW<sub>r,k</sub> and class "
        "agreement can miss.",
    ),
}


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _missing(text: str) -> str:
    return f'<p class="missing">{html.escape(text)}</p>'


def _model(meta: ReportMeta, model: str) -> str:
    """A model's display name, with its id as a tooltip when the two differ."""
    name = meta.name_of(model)
    if name == model:
        return html.escape(model)
    return f'<span title="{html.escape(model)}">{html.escape(name)}</span>'


def _number(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must be a number or null, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return float(value)


def read_eval(path: str | os.PathLike[str], *, model: str | None = None) -> EvalEntry:
    """Parse one evaluation file (either layout above); a bad field raises ``TypeError``/``ValueError``.

    ``model`` defaults to the file's stem (``eval/<model>.json``).
    """
    path = Path(path)
    obj = json.loads(path.read_text(encoding="utf-8"))
    panel = obj.get("sw", obj) if isinstance(obj, dict) else None
    if not isinstance(panel, dict) or not isinstance(panel.get("per_encoder"), dict):
        raise TypeError(
            f"{path.name}: expected an object with a 'per_encoder' mapping (top level or under 'sw')"
        )
    per = {str(k): _number(v, f"per_encoder[{k!r}]") for k, v in panel["per_encoder"].items()}
    held = panel.get("held_out", obj.get("held_out", []))
    if not isinstance(held, list) or not all(isinstance(h, str) for h in held):
        raise TypeError(f"{path.name}: 'held_out' must be a list of encoder names, got {held!r}")
    cross = {
        key: _number(obj[key].get("mean"), f"{key}.mean")
        for key in _CROSS_CHECKS
        if isinstance(obj.get(key), dict)
    }
    return EvalEntry(
        model=model or path.stem,
        per_encoder={k: v for k, v in per.items() if v is not None},
        mean=_number(panel.get("mean"), "mean"),
        held_out_mean=_number(panel.get("held_out_mean"), "held_out_mean"),
        held_out=held,
        cross_checks=cross,
        **{key: _number(obj.get(key), key) for key in _EXTRA_COLUMNS},
    )


def _best_class(value: float | None, best: float | None, num_rows: int) -> str:
    # A one-row table has no "best"; ties are all bold.
    return "best" if value is not None and value == best and num_rows > 1 else ""


def _fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:.3f}"


FLOOR_ROW = ReferenceRow(name="Real validation images (the floor)", floor=True)


def _reference_rows(meta: ReportMeta) -> list[ReferenceRow]:
    """The reference rows to show: the metadata's, and the floor row when none of them is it."""
    rows = list(meta.references)
    return rows if any(r.floor for r in rows) else [*rows, FLOOR_ROW]


def _eval_files(run_dir: Path) -> list[tuple[Path, str]]:
    """The evaluation files of ``RUN_DIR/eval`` (both layouts) with the model each names."""
    folder = run_dir / "eval"
    if not folder.is_dir():
        return []
    return [(f, f.stem) for f in sorted(folder.glob("*.json"))] + [
        (f, f.parent.name) for f in sorted(folder.glob("*/eval.json"))
    ]


def _read_entries(run_dir: Path, files: Sequence[tuple[Path, str]]) -> tuple[list[EvalEntry], list[str]]:
    """The entries that parse, sorted by mean (missing last), and a note for each that does not."""
    entries: list[EvalEntry] = []
    notes: list[str] = []
    for f, model in files:
        try:
            entries.append(read_eval(f, model=model))
        except (TypeError, ValueError, UnicodeDecodeError) as err:  # JSONDecodeError is a ValueError
            notes.append(_missing(f"Skipped {f.relative_to(run_dir)}: {err}"))
    entries.sort(key=lambda e: (e.mean is None, e.mean if e.mean is not None else 0.0, e.model))
    return entries, notes


@dataclass(frozen=True)
class _Columns:
    """The SW table's columns after the model name: encoders (training ones first, then the
    held-out ones), the two panel means, cross-check means, then the conditional checks."""

    encoders: list[str]
    held: set[str]
    cross: list[str]
    extras: list[str]


def _columns_of(entries: Sequence[EvalEntry], references: Sequence[ReferenceRow]) -> _Columns:
    encoders: list[str] = []
    for e in entries:
        encoders.extend(k for k in e.per_encoder if k not in encoders)
    held = {h for e in entries for h in e.held_out}
    encoders.sort(key=lambda enc: enc in held)  # training encoders first, then the held-out ones
    cross = [key for key in _CROSS_CHECKS if any(key in e.cross_checks for e in entries)]
    # Conditional checks: a column each where a model or a reference row has a value.
    extras = [
        key
        for key in _EXTRA_COLUMNS
        if any(getattr(x, key) is not None for x in [*entries, *references])
    ]
    return _Columns(encoders=encoders, held=held, cross=cross, extras=extras)


def _table_head(cols: _Columns) -> str:
    head = "".join(
        f'<th class="{"held" if enc in cols.held else ""}">'
        f'{html.escape(enc + (" †" if enc in cols.held else ""))}</th>'
        for enc in cols.encoders
    )
    head += f"<th>SW<sub>r,{len(cols.encoders)}</sub></th>"
    head += f"<th>SW<sub>r,{len(cols.held)}</sub><sup>†</sup> (held out)</th>"
    head += "".join(f"<th>{_CROSS_CHECKS[key]}</th>" for key in cols.cross)
    head += "".join(f"<th>{_EXTRA_COLUMNS[key][0]}</th>" for key in cols.extras)
    return f"<thead><tr><th>model</th>{head}</tr></thead>"


def _table_body(entries: Sequence[EvalEntry], cols: _Columns, meta: ReportMeta) -> str:
    """One row per model; the lowest value of each ranked column in bold (not the extras)."""
    ranked = [
        [e.per_encoder.get(enc) for enc in cols.encoders]
        + [e.mean, e.held_out_mean]
        + [e.cross_checks.get(key) for key in cols.cross]
        for e in entries
    ]
    best = []
    for j in range(len(ranked[0])):
        col = [x for x in (r[j] for r in ranked) if x is not None]
        best.append(min(col) if col else None)
    best += [None] * len(cols.extras)
    body = []
    for e, r in zip(entries, ranked):
        values = r + [getattr(e, key) for key in cols.extras]
        cells = "".join(
            f'<td class="{_best_class(v, best[j], len(ranked))}">{_fmt(v)}</td>'
            for j, v in enumerate(values)
        )
        body.append(f"<tr><td>{_model(meta, e.model)}</td>{cells}</tr>")
    return f"<tbody>{''.join(body)}</tbody>"


def _table_foot(references: Sequence[ReferenceRow], cols: _Columns) -> str:
    """The shaded reference rows of real images (never ranked)."""
    foot = []
    for ref in references:
        # Every column is a ratio to the floor: SW(val, train) / SW(val, train) = 1.
        ratio = 1.0 if ref.floor else None
        values = [ratio] * len(cols.encoders) + [ratio, ratio if cols.held else None]
        values += [ratio] * len(cols.cross) + [getattr(ref, key) for key in cols.extras]
        cells = "".join(f"<td>{_fmt(v)}</td>" for v in values)
        foot.append(f'<tr class="reference"><td>{html.escape(ref.name)}</td>{cells}</tr>')
    return f"<tfoot>{''.join(foot)}</tfoot>"


def _legend(cols: _Columns, references: Sequence[ReferenceRow]) -> str:
    """What a cell is, then a note per kind of row and column."""
    k = len(cols.encoders)
    floor_name = next(r.name for r in references if r.floor)
    items = [
        f"Rows: models, sorted by SW<sub>r,{k}</sub> (the mean over all {k} encoders); bold marks "
        "the best (lowest) value of each column.",
        "† Held out: encoders the model was never trained against, the honest test.",
        f"Shaded rows: real images, for reference (never ranked). “{html.escape(floor_name)}” "
        "is the validation set the floors were measured on, so each of its ratios is "
        "SW(val, train) / SW(val, train) = 1 by construction: a model at ≈1 (within sampling "
        "noise) is as close to the training images as a fresh real sample."
        + "".join(f" {html.escape(r.note)}" for r in references if r.note),
    ]
    if cols.cross:
        items.append("MMD/FD columns: the cross-check panels' means (Appendix D), same ratio form.")
    items += [_EXTRA_COLUMNS[key][1] for key in cols.extras]
    return (
        '<p class="lead">Each cell is a floor-normalised ratio r<sub>e</sub> = SW(gen, train) / '
        "SW(val, train) (paper eq. 5): the sliced Wasserstein distance of a model’s samples to "
        "real training images in encoder e’s feature space, divided by that of fresh real "
        "validation images. 1 matches a fresh real draw; lower is closer.</p>"
        f'<ul class="note">{"".join(f"<li>{i}</li>" for i in items)}</ul>'
    )


def _eval_section(run_dir: Path, meta: ReportMeta) -> str:
    """The SW_r,k table of every evaluation file, its legend, and a note per skipped file."""
    files = _eval_files(run_dir)
    if not files:
        return _missing(
            "No evaluation found (expected RUN_DIR/eval/<model>.json with per_encoder, "
            "mean, held_out_mean)."
        )
    entries, notes = _read_entries(run_dir, files)
    if not entries:
        return "".join(notes)
    references = _reference_rows(meta)
    cols = _columns_of(entries, references)
    table = (
        f'<table id="sw-table">{_table_head(cols)}{_table_body(entries, cols, meta)}'
        f"{_table_foot(references, cols)}</table>"
    )
    return _legend(cols, references) + table + "".join(notes)


MAX_SAMPLE_FILES = 12
MIN_DISPLAY_WIDTH = 240
MAX_DISPLAY_WIDTH = 440


def _display_width(png: bytes) -> str:
    """``width`` (and class) attributes: small grids blown up by an integer factor (pixelated,
    not blurred), wide ones shrunk so that two fit side by side."""
    width = int.from_bytes(png[16:20], "big")  # IHDR: the first chunk after the 8-byte signature
    if 0 < width < MIN_DISPLAY_WIDTH:
        return f' class="pixelated" width="{width * -(-MIN_DISPLAY_WIDTH // width)}"'
    if width > MAX_DISPLAY_WIDTH:
        return f' width="{MAX_DISPLAY_WIDTH}"'
    return ""


def _png_rows(png: bytes) -> list[int] | None:
    """The class of each grid row, from the PNG's :data:`GRID_ROWS_KEY` text chunk."""
    with Image.open(io.BytesIO(png)) as img:
        text = img.info.get(GRID_ROWS_KEY)
    if text is None:
        return None
    rows = json.loads(text)
    if not isinstance(rows, list) or not all(isinstance(r, int) for r in rows):
        raise ValueError(f"text chunk {GRID_ROWS_KEY!r} must be a JSON list of class labels")
    return rows


def _figure(png: bytes, model: str, row_names: Sequence[str] | None, meta: ReportMeta) -> str:
    name = meta.name_of(model)
    img = f'<img alt="samples: {html.escape(name)}" src="{_data_uri(png)}"{_display_width(png)}>'
    if row_names:
        items = "".join(f"<li>{html.escape(r)}</li>" for r in row_names)
        img = f'<div class="labelled"><ol class="rows">{items}</ol>{img}</div>'
    ident = f"<code>{html.escape(model)}</code>" if name != model else ""
    return f"<figure>{img}<figcaption>{html.escape(name)}{ident}</figcaption></figure>"


def _samples_section(run_dir: Path, meta: ReportMeta) -> str:
    folder = run_dir / "samples"
    files = (
        sorted(p for p in folder.glob("*") if p.suffix in (".png", ".npz"))
        if folder.is_dir()
        else []
    )
    if not files:
        return _missing("No samples found (expected RUN_DIR/samples/<model>.png or <model>.npz).")
    figures, notes = [], []
    if len(files) > MAX_SAMPLE_FILES:
        # A trainer's periodic snapshots (samples-<nimg>.png) sort by nimg: keep the latest.
        notes.append(_missing(f"{len(files) - MAX_SAMPLE_FILES} earlier sample file(s) not shown."))
        files = files[-MAX_SAMPLE_FILES:]
    known = list(meta.model_names)
    files.sort(key=lambda f: (known.index(f.stem) if f.stem in known else len(known), f.name))
    for f in files:
        names = meta
        try:
            if f.suffix == ".png":
                png = f.read_bytes()
                if not png.startswith(b"\x89PNG\r\n\x1a\n"):
                    raise ValueError("not a PNG file")
                rows = _png_rows(png)
            else:
                with np.load(f, allow_pickle=False) as arrays:
                    if "images" not in arrays:
                        raise ValueError(f"no 'images' array (has {sorted(arrays.files)})")
                    images = arrays["images"]
                    labels = arrays.get("labels")
                    if "class_names" in arrays:
                        # The file's own names win over report.json's.
                        names = meta.replace(class_names=[str(c) for c in arrays["class_names"]])
                if labels is not None:
                    grid = class_grid(images, labels)
                    rows = [int(c) for c in np.unique(labels)]
                else:
                    grid, rows = make_grid(images[:100], 10), None
                png = png_bytes(grid, scale=2)
        except (OSError, ValueError, TypeError) as err:
            notes.append(_missing(f"Skipped samples/{f.name}: {err}"))
            continue
        row_names = None if rows is None else [names.class_name(c) for c in rows]
        figures.append(_figure(png, f.stem, row_names, meta))
    lead = (
        '<p class="lead">Each grid shows one model’s samples; where rows are named, each row is '
        "one class (the label the model was asked to draw).</p>"
    )
    return lead + f'<div class="samples">{"".join(figures)}</div>' + "".join(notes)


def _curve_sources(run_dir: Path, meta: ReportMeta) -> list[CurveSource]:
    if meta.curves:
        return list(meta.curves)
    if (run_dir / "stats.jsonl").exists():
        return [CurveSource("stats.jsonl", "")]
    return [
        CurveSource(str(p.relative_to(run_dir)), meta.name_of(p.parent.name))
        for p in sorted(run_dir.glob("*/stats.jsonl"))
    ]


@dataclass
class Curves:
    """What the curves section plots: ``panels`` (:func:`.curves.curve_panels`), the notes on
    constant series, and the problems met reading the logs."""

    panels: list[Panel]
    constant: list[str]
    problems: list[str]


def load_curves(run_dir: str | os.PathLike[str], meta: ReportMeta | None = None) -> Curves:
    """The training curves of ``run_dir`` as :func:`build_report` plots them."""
    run_dir = Path(run_dir)
    meta = read_report_meta(run_dir) if meta is None else meta
    runs, problems = [], []
    for src in _curve_sources(run_dir, meta):
        path = run_dir / src.path
        if not path.is_file():
            problems.append(f"Training log {src.path} not found.")
            continue
        stats = read_stats(path)
        if stats.bad_lines:
            problems.append(f"{stats.bad_lines} unreadable line(s) in {src.path} were skipped.")
        runs.append((src.name, stats.records))
    panels, constant = curve_panels(runs)
    return Curves(panels, constant, problems)


def _curves_section(run_dir: Path, meta: ReportMeta) -> str:
    if not _curve_sources(run_dir, meta):
        return _missing("No training log found (expected RUN_DIR/stats.jsonl).")
    curves = load_curves(run_dir, meta)
    notes = "".join(_missing(p) for p in curves.problems)
    png = curves_png(curves.panels)
    if png is None:
        return _missing("The training logs hold no changing numeric series to plot.") + notes
    alt = "training curves: " + ", ".join(p.title for p in curves.panels)
    lead = (
        '<p class="lead">x: images seen by the trainer (nimg). For an iRDM run: the raw distance '
        "D<sub>φ</sub> each training encoder’s loss measures (eq. 3; lower is closer to the "
        "real images), its excess over the real floor (0 = as close as a fresh real sample; the "
        "controller stops pushing an encoder that reaches it), the controller’s weights "
        "λ<sub>φ</sub> and, when monitored, the excess of the held-out encoders. Panels whose "
        "values span a decade or more use a log scale.</p>"
    )
    constant = (
        '<p class="note">Constant throughout, not plotted: '
        + "; ".join(html.escape(c) for c in curves.constant)
        + ".</p>"
        if curves.constant
        else ""
    )
    return lead + f'<img alt="{html.escape(alt)}" src="{_data_uri(png)}">' + constant + notes


def _config_section(run_dir: Path) -> str:
    path = run_dir / "config.json"
    if not path.exists():
        return _missing("No config.json in the run directory.")
    text = html.escape(path.read_text(errors="replace"))
    return f"<details><summary>config.json</summary><pre>{text}</pre></details>"


def build_report(
    run_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    model_names: Mapping[str, str] | None = None,
    references: Sequence[ReferenceRow] | None = None,
    curves: Sequence[CurveSource] | None = None,
) -> str:
    """Return the report page for ``run_dir`` as one self-contained HTML string.

    ``class_names``, ``model_names``, ``references`` and ``curves`` (see :mod:`.meta`) replace
    the fields of ``RUN_DIR/report.json`` when given.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run_dir {str(run_dir)!r} is not a directory")
    problems = ""
    try:
        meta = read_report_meta(run_dir)
    except (TypeError, ValueError, UnicodeDecodeError) as err:
        meta, problems = ReportMeta(), _missing(f"Ignored {err}")
    meta = meta.replace(
        class_names=class_names, model_names=model_names, references=references, curves=curves
    )
    title = html.escape(title or run_dir.resolve().name)
    sections = [
        ("Samples", _samples_section(run_dir, meta)),
        ("SW<sub>r,k</sub> by encoder", _eval_section(run_dir, meta)),
        ("Training curves", _curves_section(run_dir, meta)),
        ("Configuration", _config_section(run_dir)),
    ]
    body = "".join(f"<section><h2>{h}</h2>{content}</section>" for h, content in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_CSS}</style></head><body><h1>{title}</h1>{problems}{body}</body></html>\n"
    )


def write_report(
    run_dir: str | os.PathLike[str],
    *,
    output: str | os.PathLike[str] | None = None,
    title: str | None = None,
    class_names: Sequence[str] | None = None,
    model_names: Mapping[str, str] | None = None,
    references: Sequence[ReferenceRow] | None = None,
    curves: Sequence[CurveSource] | None = None,
) -> Path:
    """Atomically write :func:`build_report` to ``output`` (default ``RUN_DIR/report.html``)."""
    page = build_report(
        run_dir,
        title=title,
        class_names=class_names,
        model_names=model_names,
        references=references,
        curves=curves,
    )
    return atomic_write_text(Path(output) if output else Path(run_dir) / "report.html", page)
