"""HTML run report: content, self-containment, graceful gaps, and a headless-Chromium render."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from _chromium import probe_report

from repmatch.cli import main
from repmatch.images import class_grid, make_grid, save_png
from repmatch.report.curves import group_series, read_stats
from repmatch.report.html import build_report, read_eval, write_report
from repmatch.report.meta import CurveSource

EVALS = {
    "teacher_4step": {
        "per_encoder": {"lenet": 1.8, "effnet": 2.4, "nsfw": 3.1},
        "mean": 2.433,
        "held_out_mean": 3.1,
        "held_out": ["nsfw"],
    },
    "irdm_1step": {
        "per_encoder": {"lenet": 1.2, "effnet": 1.5, "nsfw": 2.2},
        "mean": 1.633,
        "held_out_mean": 2.2,
        "held_out": ["nsfw"],
    },
    "scratch": {"per_encoder": {"lenet": 4.0, "effnet": 1.4}, "mean": 2.7, "held_out_mean": None},
}
# What `repmatch eval --out RUN_DIR/eval/<model>` writes: the SW panel under "sw", cross-checks beside it.
FULL = {
    "encoders": ["lenet", "effnet", "nsfw"],
    "held_out": ["nsfw"],
    "sw": {
        "per_encoder": {"lenet": 1.1, "effnet": 1.6, "nsfw": 1.8},
        "mean": 1.5,
        "held_out_mean": 1.8,
        "held_out": ["nsfw"],
        "distance": {},
        "floor": {},
    },
    "mmd": {"per_encoder": {"lenet": 1.3}, "mean": 1.9, "held_out_mean": None, "held_out": []},
}


def _expected_rows() -> dict[str, list[float | None]]:
    rows = {
        name: [ev["per_encoder"].get(e) for e in ("lenet", "effnet", "nsfw")]
        + [ev["mean"], ev["held_out_mean"], None]
        for name, ev in EVALS.items()
    }
    sw = FULL["sw"]
    rows["full_eval"] = [sw["per_encoder"][e] for e in ("lenet", "effnet", "nsfw")] + [
        sw["mean"],
        sw["held_out_mean"],
        FULL["mmd"]["mean"],
    ]
    return rows


class _Tables(HTMLParser):
    """Collect the text of every <td>/<th> of the table with id sw-table, row by row: the
    header and model rows in ``rows``, the reference rows (its <tfoot>) in ``refs``."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.refs: list[list[str]] = []
        self.bold: list[str] = []
        self._in_table = self._in_cell = self._in_foot = False
        self._cell_best = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "sw-table":
            self._in_table = True
        elif self._in_table and tag == "tfoot":
            self._in_foot = True
        elif self._in_table and tag == "tr":
            (self.refs if self._in_foot else self.rows).append([])
        elif self._in_table and tag in ("td", "th"):
            self._in_cell, self._cell_best = True, a.get("class") == "best"
            self._row().append("")

    def _row(self) -> list[str]:
        return (self.refs if self._in_foot else self.rows)[-1]

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag == "tfoot":
            self._in_foot = False
        elif tag in ("td", "th") and self._in_cell:
            self._in_cell = False
            if self._cell_best:
                self.bold.append(self._row()[-1])

    def handle_data(self, data):
        if self._in_cell:
            self._row()[-1] += data


@pytest.fixture
def run_dir(tmp_path):
    g = torch.Generator().manual_seed(0)
    for name, ev in EVALS.items():
        (tmp_path / "eval").mkdir(exist_ok=True)
        (tmp_path / "eval" / f"{name}.json").write_text(json.dumps(ev))
    (tmp_path / "eval" / "full_eval").mkdir()
    (tmp_path / "eval" / "full_eval" / "eval.json").write_text(json.dumps(FULL))
    imgs = torch.rand(30, 1, 28, 28, generator=g)
    save_png(
        tmp_path / "samples" / "teacher_4step.png",
        class_grid(imgs, torch.arange(30) % 3, per_class=10),
    )
    np.savez(
        tmp_path / "samples" / "irdm_1step.npz",
        images=(imgs.numpy()[:, 0] * 255).astype(np.uint8),
        labels=np.arange(30) % 3,
    )
    lines = [
        {
            "step": s,
            "nimg": 64 * s,
            "loss": 1.0 / (1 + s),
            "score": {"lenet": 2.0 - 0.01 * s, "effnet": 1.5},
            "weight": {"lenet": 0.6, "effnet": 0.4},
        }
        for s in range(1, 40)
    ]
    (tmp_path / "stats.jsonl").write_text(
        "".join(json.dumps(ln) + "\n" for ln in lines) + "not json\n"
    )
    (tmp_path / "config.json").write_text(json.dumps({"lr": 1e-3}))
    return tmp_path


def test_grid_matches_reshape_oracle():
    a = np.random.default_rng(0).integers(0, 256, size=(6, 1, 4, 5), dtype=np.uint8)
    grid = make_grid(a, 3, pad=0)
    oracle = a[:, 0].reshape(2, 3, 4, 5).transpose(0, 2, 1, 3).reshape(8, 15)
    np.testing.assert_array_equal(grid[..., 0], oracle)
    # Float input in [0, 1] maps to the nearest uint8; channel-last input is accepted.
    f = np.array([0.0, 0.5, 1.0, 2.0]).reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(make_grid(f, 1, pad=0)[..., 0], [[0, 128], [255, 255]])
    np.testing.assert_array_equal(make_grid(a.transpose(0, 2, 3, 1), 3, pad=0), grid)


def test_class_grid_puts_each_class_on_its_row():
    labels = np.array([2, 0, 2, 1, 0])
    images = labels.reshape(-1, 1, 1, 1).astype(np.uint8).repeat(2, 2).repeat(2, 3) * 50
    grid = class_grid(images, labels, per_class=2, pad=0)[..., 0]
    assert grid.shape == (6, 4)
    np.testing.assert_array_equal(grid[0:2], 0)
    np.testing.assert_array_equal(grid[2:4, :2], 50)
    np.testing.assert_array_equal(grid[2:4, 2:], 128)  # class 1 has one image: grey filler
    np.testing.assert_array_equal(grid[4:6], 100)


def test_stats_grouping(run_dir):
    stats = read_stats(run_dir / "stats.jsonl")
    assert stats.bad_lines == 1 and len(stats.records) == 39
    x_key, panels = group_series(stats.records)
    assert x_key == "nimg"
    assert list(panels) == ["loss", "score", "weight"]
    assert panels["score"] == ["score/lenet", "score/effnet"]


def test_report_table_and_images(run_dir):
    page = build_report(run_dir)
    parser = _Tables()
    parser.feed(page)
    header, *rows = parser.rows
    assert header[:4] == ["model", "lenet", "effnet", "nsfw †"] and header[-1] == "MMDr,k"
    expected = _expected_rows()
    # Sorted by mean; every value as given, missing ones as a dash.
    assert [r[0] for r in rows] == sorted(expected, key=lambda m: expected[m][3])
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    for r in rows:
        assert r[1:] == [fmt(v) for v in expected[r[0]]]
    minima = [min(v for v in col if v is not None) for col in zip(*expected.values())]
    assert sorted(parser.bold) == sorted(fmt(v) for v in minima)
    # Self-contained: every image is a data URI and nothing points at the network.
    srcs = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert len(srcs) == 3 and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', page) and "url(" not in page
    assert "unreadable line" in page and "config.json" in page


def test_report_enlarges_small_grids_and_keeps_the_latest_snapshots(tmp_path):
    from repmatch.report.html import MAX_SAMPLE_FILES, MIN_DISPLAY_WIDTH

    for nimg in range(MAX_SAMPLE_FILES + 3):
        save_png(
            tmp_path / "samples" / f"samples-{nimg:06d}.png", make_grid(np.zeros((4, 5, 7)), 2)
        )
    page = build_report(tmp_path)
    names = re.findall(r"<figcaption>([^<]+)</figcaption>", page)
    assert names == [f"samples-{n:06d}" for n in range(3, MAX_SAMPLE_FILES + 3)]
    assert "3 earlier sample file(s) not shown" in page
    grid_width = 2 * (7 + 2) + 2
    factor = -(-MIN_DISPLAY_WIDTH // grid_width)
    widths = re.findall(r'<img[^>]* width="(\d+)"', page)
    assert widths == [str(grid_width * factor)] * MAX_SAMPLE_FILES
    assert grid_width * factor >= MIN_DISPLAY_WIDTH > grid_width * (factor - 1)


def test_report_on_empty_dir_explains_what_is_missing(tmp_path):
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "broken.json").write_text(json.dumps({"per_encoder": {"a": "x"}}))
    page = build_report(tmp_path)
    assert "No samples found" in page and "No training log found" in page
    assert "Skipped eval/broken.json" in page and "per_encoder" in page
    with pytest.raises(FileNotFoundError, match="run_dir"):
        build_report(tmp_path / "nope")


def test_report_cli_writes_file(run_dir, capsys):
    assert main(["report", str(run_dir)]) == 0
    assert (run_dir / "report.html").exists()
    assert str(run_dir / "report.html") in capsys.readouterr().out


def test_report_renders_in_headless_chromium(run_dir, tmp_path):
    probe = probe_report(write_report(run_dir), tmp_path)
    assert probe["rows"] == len(EVALS) + 1
    assert len(probe["imgs"]) == 3
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in probe["imgs"]), probe


def test_report_shows_class_agreement_unbolded_and_dashes_where_missing(tmp_path):
    (tmp_path / "eval").mkdir()
    panel = {"per_encoder": {"a": 2.0}, "mean": 2.0, "held_out_mean": None}
    (tmp_path / "eval" / "good.json").write_text(json.dumps({**panel, "class_agreement": 0.9}))
    (tmp_path / "eval" / "scrambled.json").write_text(
        json.dumps({**panel, "per_encoder": {"a": 1.0}, "mean": 1.0, "class_agreement": 0.02})
    )
    (tmp_path / "eval" / "plain.json").write_text(json.dumps({**panel, "per_encoder": {"a": 3.0}, "mean": 3.0}))
    parser = _Tables()
    parser.feed(build_report(tmp_path))
    header, *rows = parser.rows
    assert header[-1] == "class agreement‡"
    assert {r[0]: r[-1] for r in rows} == {"scrambled": "0.020", "good": "0.900", "plain": "–"}
    assert "0.020" not in parser.bold and "0.900" not in parser.bold  # higher is better: no min-bold
    (tmp_path / "bad.json").write_text(json.dumps({**panel, "class_agreement": "high"}))
    with pytest.raises(TypeError, match="class_agreement"):
        read_eval(tmp_path / "bad.json")


def test_report_shows_diversity_beside_class_agreement_with_the_reference_value(tmp_path):
    from repmatch.report.meta import ReferenceRow

    (tmp_path / "eval").mkdir()
    panel = {"per_encoder": {"a": 2.0}, "mean": 2.0, "held_out_mean": None}
    (tmp_path / "eval" / "varied.json").write_text(json.dumps({**panel, "class_agreement": 0.9, "diversity": 0.95}))
    (tmp_path / "eval" / "collapsed.json").write_text(
        json.dumps({**panel, "per_encoder": {"a": 1.0}, "mean": 1.0, "diversity": 0.1})
    )
    refs = (ReferenceRow("Real test images", floor=True, class_agreement=0.86, diversity=1.02),)
    parser = _Tables()
    parser.feed(build_report(tmp_path, references=refs))
    header, *rows = parser.rows
    assert header[-2:] == ["class agreement‡", "diversity§"]
    assert {r[0]: r[-2:] for r in rows + parser.refs} == {
        "collapsed": ["–", "0.100"], "varied": ["0.900", "0.950"], "Real test images": ["0.860", "1.020"]
    }
    assert "0.100" not in parser.bold and "0.950" not in parser.bold  # 1 is best: no min-bold
    # A column only where some row has a value.
    (tmp_path / "eval" / "varied.json").write_text(json.dumps({**panel, "diversity": 0.95}))
    parser = _Tables()
    parser.feed(build_report(tmp_path, references=(ReferenceRow("Real", floor=True),)))
    assert parser.rows[0][-1] == "diversity§" and "class agreement‡" not in parser.rows[0]
    (tmp_path / "eval" / "varied.json").write_text(json.dumps({**panel, "diversity": float("nan")}))
    with pytest.raises(ValueError, match="diversity"):
        read_eval(tmp_path / "eval" / "varied.json")
    with pytest.raises(TypeError, match="diversity"):
        ReferenceRow("Real", diversity="high")


def test_report_survives_mathtext_in_encoder_names(tmp_path, capsys):
    # Matplotlib parses "$...$" in a label as mathtext; an encoder name is not a formula.
    names = ["clip$_{vit$", "a$\\foo$", "$x$"]
    lines = [{"nimg": 32 * i, "score": {n: 2.0 / (i + 1) + j for j, n in enumerate(names)}} for i in range(5)]
    (tmp_path / "stats.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert re.search(r'<img alt="training curves[^"]*" src="data:image/png', page)


CLASSES = ["T-shirt/top", "Trouser", "Pullover"]
NAMES = {"teacher_4step": "Teacher, 4 steps", "irdm_1step": "iRDM post-trained, 1 step"}


class _ClassShade(torch.nn.Module):
    """A 3-class generator drawing class c as a flat image of grey level (c + 1) / 4."""

    noise_shape = (4,)

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))

    def forward(self, noise, labels):
        return ((labels.float() + 1) / 4).view(-1, 1, 1, 1).expand(-1, 1, 8, 8) + self.anchor


def _loop_log(run: Path, steps: int, start: float, floor: float) -> None:
    """A stats.jsonl as the iRDM loop writes it: the surrogate loss Σλ·D/|D| is 1 throughout."""
    lines = []
    for s in range(1, steps + 1):
        score = {"lenet": start * 0.7**s, "effnet$_x$": 2.0 * 0.9**s}
        lines.append({
            "nimg": 32 * s, "step": s, "lr": 1e-3, "loss": 1.0, "status": "ok", "skipped": 0,
            "score": score, "excess": {k: v - floor for k, v in score.items()},
            "weight": {"lenet": 0.5 + 0.01 * s, "effnet$_x$": 0.5 - 0.01 * s},
            "objective": sum(score.values()) / 2,
        })
        lines.append({"nimg": 32 * s, "step": s, "heldout_excess": {"nsfw": 1.0 / s}, "monitor": None})
    run.mkdir(parents=True, exist_ok=True)
    (run / "stats.jsonl").write_text("".join(json.dumps(ln) + "\n" for ln in lines))


@pytest.fixture
def named_run(run_dir):
    """``run_dir`` made by a job that knows its words: report.json, a PNG grid that lists its
    rows' classes, two arms' training logs in sub-directories and no top-level log."""
    from repmatch.generators import write_sample_grid
    from repmatch.report.meta import CurveSource, ReferenceRow, ReportMeta, write_report_meta

    write_sample_grid(_ClassShade(), run_dir / "samples" / "teacher_4step.png", num_classes=3, per_class=4)
    (run_dir / "stats.jsonl").unlink()
    _loop_log(run_dir / "arm-a", 12, 1000.0, 0.01)
    _loop_log(run_dir / "arm-b", 6, 30.0, 0.01)
    write_report_meta(run_dir, ReportMeta(
        class_names=CLASSES,
        model_names={**NAMES, "arm-a": "iRDM post-trained, 1 step"},
        references=(ReferenceRow("Real test images", floor=True, class_agreement=0.858),),
        curves=(CurveSource("arm-a/stats.jsonl", "iRDM post-trained, 1 step"),
                CurveSource("arm-b/stats.jsonl", "iRDM from scratch, 1 step")),
    ))
    return run_dir


def _tag_text(page: str, tag: str, cls: str) -> list[list[str]]:
    """The <li> texts of each ``<tag class="cls">`` list of ``page``."""
    return [re.findall(r"<li>([^<]*)</li>", block) for block in re.findall(rf'<{tag} class="{cls}">(.*?)</{tag}>', page, re.DOTALL)]


def test_report_names_classes_and_models(named_run):
    page = build_report(named_run)
    # Both grids name their rows: the PNG from its own text chunk, the .npz from its labels.
    assert _tag_text(page, "ol", "rows") == [CLASSES, CLASSES]
    # In the order of model_names.
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page)
    assert captions == [
        "Teacher, 4 steps<code>teacher_4step</code>",
        "iRDM post-trained, 1 step<code>irdm_1step</code>",
    ]
    parser = _Tables()
    parser.feed(page)
    models = [r[0] for r in parser.rows[1:]]
    assert "Teacher, 4 steps" in models and "iRDM post-trained, 1 step" in models
    assert "teacher_4step" not in models and "scratch" in models  # no display name: the id
    # An .npz's own class_names win over report.json's.
    np.savez(named_run / "samples" / "irdm_1step.npz", images=np.zeros((4, 8, 8), np.uint8),
             labels=np.array([0, 1, 1, 2]), class_names=np.array(["cat", "dog", "emu"]))
    assert _tag_text(build_report(named_run), "ol", "rows") == [CLASSES, ["cat", "dog", "emu"]]
    # The keyword arguments override report.json.
    page = build_report(named_run, class_names=["a", "b", "c"], model_names={"scratch": "Scratch"})
    assert ["a", "b", "c"] in _tag_text(page, "ol", "rows") and ">Scratch<" in page


def test_report_reference_rows_are_real_images_never_ranked(named_run, tmp_path):
    parser = _Tables()
    parser.feed(build_report(named_run))
    header, *rows = parser.rows
    assert len(rows) == len(EVALS) + 1
    # The floor's validation set: 1 in every ratio column, its class agreement, never bold
    # (1.000 is below every model's value in most columns).
    assert parser.refs == [["Real test images"] + ["1.000"] * (len(header) - 2) + ["0.858"]]
    assert header[-1] == "class agreement‡"
    assert "1.000" not in parser.bold and "0.858" not in parser.bold
    expected = _expected_rows()
    minima = [min(v for v in col if v is not None) for col in zip(*expected.values())]
    fmt = lambda v: f"{v:.3f}"
    assert sorted(parser.bold) == sorted(fmt(v) for v in minima)
    # Without report.json the floor row is still there, under a generic name.
    (named_run / "report.json").unlink()
    parser = _Tables()
    parser.feed(build_report(named_run))
    assert parser.refs == [["Real validation images (the floor)"] + ["1.000"] * 6]  # no agreement column
    # A malformed report.json is a note, not a crash.
    (named_run / "report.json").write_text(json.dumps({"class_names": "abc"}))
    assert "Ignored report.json: class_names must be a list" in build_report(named_run)


def test_curves_plot_raw_distances_per_arm_not_the_constant_loss(named_run):
    from repmatch.report.html import load_curves

    curves = load_curves(named_run)
    assert not curves.problems
    panels = {p.key: p for p in curves.panels}
    assert list(panels)[:5] == ["objective", "score", "excess", "heldout_excess", "weight"]
    assert "surrogate_loss" not in panels and "lr" not in panels and "skipped" not in panels
    assert any("surrogate loss" in c and "= 1 (iRDM post-trained, 1 step)" in c for c in curves.constant)
    score = panels["score"]
    assert {(s.run, s.label) for s in score.series} == {
        (run, enc) for run in ("iRDM post-trained, 1 step", "iRDM from scratch, 1 step")
        for enc in ("lenet", "effnet$_x$")
    }
    # The raw distances fall over decades: a log axis, series that change, the logged values.
    assert score.scale == "log" and all(not s.constant for s in score.series)
    lenet = next(s for s in score.series if s.label == "lenet" and s.run.startswith("iRDM post"))
    assert lenet.xs == [32.0 * s for s in range(1, 13)]
    assert lenet.ys == pytest.approx([1000.0 * 0.7**s for s in range(1, 13)])
    assert panels["weight"].scale == "linear"
    page = build_report(named_run)
    assert re.search(r'<img alt="training curves: objective[^"]*raw distance', page)
    assert "Constant throughout, not plotted" in page and "learning rate = 0.001" in page
    # Without report.json every sub-directory log is plotted, named by model_names if any.
    (named_run / "report.json").unlink()
    assert {s.run for s in load_curves(named_run).panels[0].series} == {"arm-a", "arm-b"}
    # A listed log that is missing is a note.
    page = build_report(named_run, curves=[CurveSource("arm-c/stats.jsonl", "C")])
    assert "Training log arm-c/stats.jsonl not found" in page


def test_named_report_reads_in_headless_chromium(named_run, tmp_path):
    """What a newcomer sees, as the browser renders it: words, not ids."""
    from repmatch.report.html import load_curves

    probe = probe_report(write_report(named_run), tmp_path)
    figures = {f["caption"]: f["rows"] for f in probe["figures"]}
    assert figures == {
        "Teacher, 4 stepsteacher_4step": CLASSES,
        "iRDM post-trained, 1 stepirdm_1step": CLASSES,
    }
    assert {"Teacher, 4 steps", "iRDM post-trained, 1 step"} <= set(probe["models"])
    assert probe["rows"] == len(EVALS) + 1
    assert probe["refs"] == [["Real test images"] + ["1.000"] * 6 + ["0.858"]]
    assert all(i["complete"] and i["w"] > 0 for i in probe["imgs"]), probe
    [curve] = probe["curves"]
    assert curve["w"] > 0 and "raw distance" in curve["alt"]
    # The data behind that image: the raw distances change over the run.
    score = next(p for p in load_curves(named_run).panels if p.key == "score")
    assert score.series and all(max(s.ys) > 1.5 * min(s.ys) for s in score.series)
