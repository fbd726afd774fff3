"""HTML run report: content, self-containment, graceful gaps, and a headless-Chromium render."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import torch
from _chromium import probe_report

from repmatch.cli import main
from repmatch.images import class_grid, make_grid, save_png
from repmatch.report.curves import group_series, read_stats
from repmatch.report.html import build_report, read_eval, write_report

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
    """Collect the text of every <td>/<th> of the table with id sw-table, row by row."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.bold: list[str] = []
        self._in_table = self._in_cell = False
        self._cell_best = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and a.get("id") == "sw-table":
            self._in_table = True
        elif self._in_table and tag == "tr":
            self.rows.append([])
        elif self._in_table and tag in ("td", "th"):
            self._in_cell, self._cell_best = True, a.get("class") == "best"
            self.rows[-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_table = False
        elif tag in ("td", "th") and self._in_cell:
            self._in_cell = False
            if self._cell_best:
                self.bold.append(self.rows[-1][-1])

    def handle_data(self, data):
        if self._in_cell:
            self.rows[-1][-1] += data


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
