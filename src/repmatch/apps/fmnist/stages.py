"""The stage names of the Fashion-MNIST job, in order (torch-free: ``repmatch --help`` reads them)."""

STAGES: tuple[str, ...] = (
    "encoders",
    "teacher",
    "features",
    "floors",
    "references",
    "post",
    "scratch",
    "samples",
    "eval",
    "report",
)

#: The stages whose outputs each stage reads. Running one stage alone (``--stage``) on a fresh
#: directory names the missing ones instead of failing deep inside with a missing file.
REQUIRES: dict[str, tuple[str, ...]] = {
    "encoders": (),
    "teacher": (),
    "features": ("encoders",),
    "floors": ("features",),
    "references": ("features",),
    "post": ("teacher", "floors", "references"),
    "scratch": ("floors", "references"),
    "samples": ("teacher", "post", "scratch"),
    "eval": ("encoders", "features", "samples"),
    "report": ("eval",),
}
