"""``RUN_DIR/report.json``: what a report cannot guess from the files alone.

A run directory holds ids (``irdm_post_1step``, class ``3``); a reader wants words. The job
that wrote the directory knows them and leaves them here (all fields optional)::

    {"class_names": ["T-shirt/top", "Trouser", ...],          label i names class i
     "model_names": {"irdm_post_1step": "iRDM post-trained, 1 step", ...},
                                                               id (sample file stem, eval entry,
                                                               or run sub-directory) -> display
                                                               name; the sample grids follow
                                                               this order
     "references": [{"name": "Real test images", "floor": true,
                     "class_agreement": 0.858, "diversity": 0.99, "note": "..."}],
                                                               rows of real images for the table
     "curves": [{"path": "irdm-post/stats.jsonl", "name": "iRDM post-trained, 1 step"}]}
                                                               training logs to plot, relative to
                                                               RUN_DIR, each with its display name

A reference row with ``"floor": true`` is the validation set the floors were measured on: its
SW_r,k ratio (and MMD/FD ratio) is SW(val, train) / SW(val, train) = 1 in every column by
construction. The report names no dataset; an application supplies these words.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..io import atomic_write_text

REPORT_META = "report.json"


@dataclass(frozen=True)
class ReferenceRow:
    """A row of real images in the SW_r,k table: never ranked, never bold.

    ``floor``: the floors' own validation set (every ratio column is 1 by construction);
    ``class_agreement``: the classifier's accuracy on these real images, the value a faithful
    conditional generator approaches; ``diversity``: the within-class diversity of real
    images (≈ 1: e.g. a second real draw against the first); ``note``: one sentence for the
    legend.
    """

    name: str
    floor: bool = False
    class_agreement: float | None = None
    diversity: float | None = None
    note: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"references[].name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.floor, bool):
            raise TypeError(f"references[].floor must be true or false, got {self.floor!r}")
        for key in ("class_agreement", "diversity"):
            value = getattr(self, key)
            if value is not None and (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not math.isfinite(value)
            ):
                raise TypeError(f"references[].{key} must be a finite number or null, got {value!r}")
        if not isinstance(self.note, str):
            raise TypeError(f"references[].note must be a string, got {self.note!r}")


@dataclass(frozen=True)
class CurveSource:
    """One training log (``stats.jsonl``) to plot: ``path`` relative to the run directory."""

    path: str
    name: str

    def __post_init__(self) -> None:
        for key in ("path", "name"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"curves[].{key} must be a string, got {getattr(self, key)!r}")
        if Path(self.path).is_absolute() or ".." in Path(self.path).parts:
            raise ValueError(f"curves[].path must be relative to the run directory, got {self.path!r}")


@dataclass(frozen=True, kw_only=True)
class ReportMeta:
    """The words of a report (see the module docstring); every field may be empty."""

    class_names: tuple[str, ...] = ()
    model_names: Mapping[str, str] = field(default_factory=dict)
    references: tuple[ReferenceRow, ...] = ()
    curves: tuple[CurveSource, ...] = ()

    def __post_init__(self) -> None:
        if not all(isinstance(c, str) for c in self.class_names):
            raise TypeError(f"class_names must be strings, got {list(self.class_names)!r}")
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in self.model_names.items()):
            raise TypeError(f"model_names must map ids to strings, got {dict(self.model_names)!r}")
        for what, items, kind in (
            ("references", self.references, ReferenceRow),
            ("curves", self.curves, CurveSource),
        ):
            if not all(isinstance(x, kind) for x in items):
                raise TypeError(f"{what} must hold {kind.__name__} objects, got {items!r}")

    def name_of(self, model: str) -> str:
        """The display name of ``model`` (its id when none is given)."""
        return self.model_names.get(model, model)

    def class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else f"class {label}"

    def replace(self, **changes: Any) -> ReportMeta:
        """A copy with the fields in ``changes`` that are not ``None`` replaced."""
        fields = {**self.to_dict(), **{k: v for k, v in changes.items() if v is not None}}
        return ReportMeta.from_dict(fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "class_names": list(self.class_names),
            "model_names": dict(self.model_names),
            "references": [r.__dict__.copy() for r in self.references],
            "curves": [c.__dict__.copy() for c in self.curves],
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> ReportMeta:
        """Parse (and validate) the JSON form; an unknown key raises ``ValueError``."""
        if not isinstance(obj, Mapping):
            raise TypeError(f"report metadata must be a JSON object, got {type(obj).__name__}")
        unknown = set(obj) - {"class_names", "model_names", "references", "curves"}
        if unknown:
            raise ValueError(
                f"unknown report metadata key(s) {sorted(unknown)}; accepted: class_names, "
                "model_names, references, curves"
            )

        def items(key: str) -> Sequence[Any]:
            value = obj.get(key, [])
            if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
                raise TypeError(f"{key} must be a list, got {value!r}")
            return value

        def rows(key: str, kind: Any) -> tuple[Any, ...]:
            out = []
            for x in items(key):
                if isinstance(x, kind):
                    out.append(x)
                elif isinstance(x, Mapping):
                    out.append(kind(**x))
                else:
                    raise TypeError(f"{key}[] must be an object, got {x!r}")
            return tuple(out)

        names = obj.get("model_names", {})
        if not isinstance(names, Mapping):
            raise TypeError(f"model_names must be an object, got {names!r}")
        return cls(
            class_names=tuple(items("class_names")),
            model_names=dict(names),
            references=rows("references", ReferenceRow),
            curves=rows("curves", CurveSource),
        )


def read_report_meta(run_dir: str | os.PathLike[str]) -> ReportMeta:
    """``RUN_DIR/report.json`` parsed (empty when absent); a malformed file raises
    ``ValueError``/``TypeError`` naming the field."""
    path = Path(run_dir) / REPORT_META
    if not path.exists():
        return ReportMeta()
    try:
        return ReportMeta.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except TypeError as err:  # a wrong field name in a row is a TypeError of the constructor
        raise TypeError(f"{REPORT_META}: {err}") from err
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise ValueError(f"{REPORT_META}: {err}") from err


def write_report_meta(run_dir: str | os.PathLike[str], meta: ReportMeta) -> Path:
    """Atomically write ``meta`` to ``RUN_DIR/report.json``."""
    # Not sorted: the order of model_names is the order of the sample grids.
    text = json.dumps(meta.to_dict(), indent=2, ensure_ascii=False) + "\n"
    return atomic_write_text(Path(run_dir) / REPORT_META, text)
