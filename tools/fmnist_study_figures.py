"""The figures of docs/fmnist_studies.md from finished ``repmatch study fmnist-*`` runs.

    python tools/fmnist_study_figures.py runs/study-batch runs/study-gaming ...

copies each study's figure to ``docs/studies/<study>.png`` and writes its first seed's sample
grids, class names to the left of their rows, to ``docs/studies/<study>_<arm>.png``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fmnist_doc_figures import labelled_grid  # tools/ is the script's directory

from repmatch.data import FashionMNIST

DOCS = Path(__file__).resolve().parents[1] / "docs" / "studies"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished study directories")
    args = parser.parse_args()
    DOCS.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        name = json.loads((run / "config.json").read_text())["name"]
        shutil.copyfile(run / f"{name}.png", DOCS / f"{name}.png")
        for grid in sorted((run / "samples").glob("*.png")):
            out = DOCS / f"{name}_{grid.stem.removesuffix('-seed0')}.png"
            labelled_grid(grid, list(FashionMNIST.classes), out, scale=1)
            print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
