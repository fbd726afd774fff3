"""The words of the Fashion-MNIST job's report: ``OUT/report.json`` (see ``repmatch.report.meta``).

Class names for the grids' rows, display names for the models and the arms, the real test
images as the table's reference row (the floors' validation set, with the classifier's accuracy
on it as its class agreement and a second real draw's within-class diversity) and each arm's
own training log, so that ``repmatch report OUT`` reads in words.
"""

from __future__ import annotations

import json
from pathlib import Path

from ...data import FashionMNIST
from ...report.meta import CurveSource, ReferenceRow, ReportMeta, write_report_meta
from .parts import Layout
from .recipe import FmnistRecipe


def model_names(recipe: FmnistRecipe) -> dict[str, str]:
    """Display names of the job's models (sample files, eval entries) and run directories."""
    post, scratch = "iRDM post-trained, 1 step", "iRDM from scratch, 1 step"
    return {
        "teacher_4step": f"Teacher, {recipe.teacher_sampler_steps} steps",
        "start_1step": "Untrained start (teacher in 1 step)",
        "irdm_post_1step": post,
        "irdm_scratch_1step": scratch,
        "irdm-post": post,
        "irdm-scratch": scratch,
        "teacher": "Teacher training (flow matching)",
    }


def report_meta(recipe: FmnistRecipe, layout: Layout) -> ReportMeta:
    results_path = layout.root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    names = model_names(recipe)
    rows = "all" if recipe.val_rows is None else str(recipe.val_rows)
    measured = results.get("real_test", {})
    note = (
        f"Real test images: {rows} Fashion-MNIST test rows, the floors' validation set; "
        "their class agreement is the classifier's accuracy, what a faithful conditional "
        "generator approaches."
    )
    if measured.get("diversity") is not None:
        note += (
            f" Their diversity (in {recipe.diversity_encoder} features) is a second draw of real "
            "test images against the first, disjoint one."
        )
    real = ReferenceRow(
        name="Real test images",
        floor=True,
        class_agreement=measured.get("class_agreement"),
        diversity=measured.get("diversity"),
        note=note,
    )
    curves = [
        CurveSource(str(run.relative_to(layout.root) / "stats.jsonl"), names[run.name])
        for run in (layout.arm("post"), layout.arm("scratch"), layout.teacher)
        if (run / "stats.jsonl").is_file()  # a smoke-sized teacher may log no line
    ]
    return ReportMeta(
        class_names=FashionMNIST.classes,
        model_names=names,
        references=(real,),
        curves=tuple(curves),
    )


def write_fmnist_report_meta(recipe: FmnistRecipe, layout: Layout) -> Path:
    """Write :func:`report_meta` to ``OUT/report.json``."""
    return write_report_meta(layout.root, report_meta(recipe, layout))
