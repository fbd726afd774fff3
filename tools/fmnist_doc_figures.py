"""The figures of docs/fmnist_results.md from a finished ``repmatch fmnist`` run.

    python tools/fmnist_doc_figures.py runs/fmnist-tiny tiny
    python tools/fmnist_doc_figures.py runs/fmnist-cpu cpu

writes ``docs/fmnist/<prefix>_<model>.png`` (each model's sample grid, one row per class, the
class names to its left) and ``docs/fmnist/<prefix>_curves.png`` (the report's training curves).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from repmatch.apps.fmnist.pipeline import MODELS
from repmatch.data import FashionMNIST
from repmatch.report.curves import curves_png
from repmatch.report.html import load_curves

DOCS = Path(__file__).resolve().parents[1] / "docs" / "fmnist"
FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"


def labelled_grid(grid: Path, names: list[str], out: Path, scale: int = 2) -> None:
    """``grid`` (one row per class) enlarged ``scale``× with ``names`` written left of its rows."""
    image = Image.open(grid).convert("L")
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    font = ImageFont.truetype(FONT, 14) if Path(FONT).exists() else ImageFont.load_default()
    margin = 8 + max(int(font.getlength(n)) for n in names)
    canvas = Image.new("L", (image.width + margin, image.height), 255)
    canvas.paste(image, (margin, 0))
    draw = ImageDraw.Draw(canvas)
    row = image.height / len(names)
    for i, name in enumerate(names):
        draw.text((margin - 6, (i + 0.5) * row), name, font=font, fill=0, anchor="rm")
    canvas.save(out, optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("prefix")
    args = parser.parse_args()
    names = list(FashionMNIST.classes)
    for model in MODELS:
        labelled_grid(args.run / "samples" / f"{model}.png", names, DOCS / f"{args.prefix}_{model}.png")
    png = curves_png(load_curves(args.run).panels)
    if png is not None:
        (DOCS / f"{args.prefix}_curves.png").write_bytes(png)
    print(f"figures: {DOCS}/{args.prefix}_*.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
