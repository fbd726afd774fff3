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
