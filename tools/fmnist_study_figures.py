"""The figures of docs/fmnist_studies.md from finished ``repmatch study fmnist-*`` runs.

    python tools/fmnist_study_figures.py runs/study-batch runs/study-gaming ...

redraws each study's figure from its ``results.json`` into ``docs/studies/<study>.png``
(``--suffix`` names a variant: ``<study><suffix>.png``) and writes its first seed's sample grids,
class names to the left of their rows, to ``docs/studies/<study><suffix>_<arm>.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fmnist_doc_figures import labelled_grid  # tools/ is the script's directory

from repmatch.apps.fmnist.studies import FmnistStudyConfig, plot_study
from repmatch.data import FashionMNIST

DOCS = Path(__file__).resolve().parents[1] / "docs" / "studies"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished study directories")
    parser.add_argument("--suffix", default="", help="appended to the study's name in file names")
    args = parser.parse_args()
    DOCS.mkdir(parents=True, exist_ok=True)
    for run in args.runs:
        config = FmnistStudyConfig.from_dict(json.loads((run / "config.json").read_text()))
        name = config.name + args.suffix
        print(plot_study(config, json.loads((run / "results.json").read_text()), DOCS / f"{name}.png"))
        for grid in sorted((run / "samples").glob("*.png")):
            out = DOCS / f"{name}_{grid.stem.removesuffix('-seed0')}.png"
            labelled_grid(grid, list(FashionMNIST.classes), out, scale=1)
            print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
