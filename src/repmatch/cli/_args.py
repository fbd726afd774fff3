"""The options every verb shares, declared once here, and the flag types and checks of the verbs.

The shared options (:func:`add_common` adds them; each verb's ``--help`` lists them under
"common options") mean the same on every verb that takes them:

``--device auto|cpu|cuda|cuda:N|mps``
    Where the verb computes; ``auto`` is CUDA when available, else the CPU. Default ``auto``,
    or the config's device where the verb reads one (``train``: the config's; ``fmnist``: the
    recipe's; ``eval``, ``floors``: ``EvalConfig``'s, metrics on the CPU and extraction on CUDA
    when available), which the flag overrides. A run refuses a device this machine lacks
    before any work (:func:`check_device`). Taken by the verbs that run torch on a device
    of their choice: not by ``fmnist-encoders``, ``spiral`` and ``study`` (the CPU, or the
    study's base recipe) nor ``report`` (no torch).
``--threads N|auto``
    torch's CPU threads for this process (``torch.set_num_threads``). Default: torch's own
    count (``OMP_NUM_THREADS`` when set, else one per core); ``auto``: as many as the CPUs idle
    at start (:func:`repmatch.threads.cpu_threads_for_now`), printed as a ``[threads]`` line.
    Every verb but ``report`` takes it.
``--seed N``
    An integer ≥ 0 seeding every random draw of the verb; default 0, or the config's seed where
    the verb reads one. Only on the verbs that draw randomness (not ``features``, ``report``;
    ``study`` takes ``--seeds``).
``--dry-run``
    Print the resolved configuration as JSON on stdout and exit 0: nothing is written or run,
    and the device is not checked (a plan may be meant for another machine).
``--no-progress``
    No progress bars (they are drawn only when stderr is a terminal, and on rank 0).
``--debug``
    The traceback of an error instead of one line naming its cause; accepted before the verb
    (``repmatch --debug VERB``) or among its options.

:func:`prepare` applies ``--device`` (the check) and ``--threads`` for every verb, from
:func:`repmatch.cli.main`; the verbs apply the rest. Torch-free at import (``repmatch --help``
builds every parser); :func:`check_device` and :func:`prepare` import torch when they run.
Flag types raise ``argparse.ArgumentTypeError``, so argparse reports
``repmatch VERB: error: argument --flag: ...`` (exit 2); the checks raise ``ValueError``,
which :func:`repmatch.cli.main` prints as one line.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..progress import is_main_process, progress_enabled

#: ``--device auto`` (CUDA when available, the default where the verb reads no config) and
#: ``--threads auto`` (as many as the CPUs idle at start).
AUTO = "auto"


def _int_at_least(text: str, low: int, accepted: str) -> int:
    """``text`` as an integer ≥ ``low``, else an ``ArgumentTypeError`` saying ``accepted``."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {accepted}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {accepted}, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An argparse type: an integer ≥ 0 (``--seed``)."""
    return _int_at_least(text, 0, "an integer ≥ 0")


def threads_arg(text: str) -> int | str:
    """An argparse type: ``auto`` or an integer ≥ 1 (``--threads``)."""
    return AUTO if text == AUTO else _int_at_least(text, 1, "'auto' or an integer ≥ 1")


def path_arg(text: str) -> str:
    """An argparse type: a non-empty path (``""`` would silently mean the current directory or
    a default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (give a path)")
    return text


def show_progress(args: argparse.Namespace) -> bool:
    """Whether this verb draws progress bars (see :func:`repmatch.progress.progress_enabled`)."""
    return progress_enabled(not getattr(args, "no_progress", False))


def print_outputs(*pairs: tuple[str, Any]) -> None:
    """The closing lines ``label: path``, one per main output; printed by rank 0 alone."""
    if is_main_process():
        for label, path in pairs:
            print(f"{label}: {path}")


def check_device(value: str | None, *, label: str | None = None, hint: str = "") -> None:
    """Refuse a device this machine cannot run on, in a message that starts with ``label``
    (default ``"--device VALUE"``) and lists what is accepted here, then ``hint``.

    ``None``, ``"cpu"`` and :data:`AUTO` always pass."""
    if value is None or value in ("cpu", AUTO):
        return
    import torch

    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = getattr(torch.backends, "mps", None)
    accepted = ["cpu", AUTO]
    if cuda:
        accepted += ["cuda", *(f"cuda:{i}" for i in range(cuda))]
    if mps is not None and mps.is_available():
        accepted.append("mps")
    where = f"(accepted: {', '.join(accepted)}){hint}"
    label = label or f"--device {value}"
    try:
        device = torch.device(value)
    except (RuntimeError, ValueError):
        raise ValueError(f"{label}: not a torch device {where}") from None
    if device.type == "cuda" and not cuda:
        raise ValueError(f"{label}: CUDA is not available on this machine {where}")
    if device.type == "cuda" and device.index is not None and device.index >= cuda:
        raise ValueError(f"{label}: this machine has {cuda} CUDA device(s) {where}")
    if device.type == "mps" and "mps" not in accepted:
        raise ValueError(f"{label}: MPS is not available on this machine {where}")


def add_common(parser: argparse.ArgumentParser, *, device: str | None = None,
               threads: bool = True, seed: str | None = None, seed_default: int | str = 0,
               dry_run: str = "the resolved configuration") -> None:
    """Add the shared options a verb takes, in one "common options" group (their meaning: the
    module docstring).

    ``device``: None for no ``--device``; :data:`AUTO` for default ``auto``; otherwise the words
    naming the config value it overrides (default None: that value), e.g. ``"the recipe's"``.
    ``seed``: None for no ``--seed``, else what it seeds; ``seed_default``: an integer, or the
    words naming the config value it overrides. ``dry_run``: what ``--dry-run`` prints.
    """
    g = parser.add_argument_group("common options")
    if device is not None:
        default = AUTO if device == AUTO else None
        shown = "auto" if device == AUTO else device
        g.add_argument("--device", default=default, metavar="DEVICE",
                       help=f"auto, cpu, cuda, cuda:N or mps; auto: CUDA when available, else the "
                       f"CPU (default: {shown})")
    if threads:
        g.add_argument("--threads", type=threads_arg, default=None, metavar="N|auto",
                       help="torch CPU threads; auto: as many as CPUs idle at start (default: "
                       "torch's, i.e. OMP_NUM_THREADS or one per core)")
    if seed is not None:
        g.add_argument("--seed", type=nonnegative_int, metavar="N",
                       default=seed_default if isinstance(seed_default, int) else None,
                       help=f"seeds {seed} (default: {seed_default})")
    g.add_argument("--dry-run", action="store_true",
                   help=f"print {dry_run} as JSON and exit; writes and runs nothing")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bars (they are drawn only when stderr is a terminal)")
    # SUPPRESS: unset here, the top-level parser's value (repmatch --debug VERB) stands.
    g.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an error (default: one line naming the cause)")


def resolve_device(value: str) -> str:
    """``value``, with ``auto`` replaced by ``cuda`` when CUDA is available, else ``cpu``."""
    if value != AUTO:
        return value
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def set_threads(value: int | str | None) -> None:
    """Apply ``--threads``: torch's count stays for None; ``auto`` counts the idle CPUs."""
    if value is None:
        return
    import torch

    if value == AUTO:
        from ..threads import cpu_threads_for_now

        count, idle = cpu_threads_for_now()
        if is_main_process():
            seen = "" if idle is None else f"; {idle:.1f} CPUs idle at start"
            print(f"[threads] {count} torch CPU threads{seen} (--threads N fixes the count)")
    else:
        count = int(value)
    torch.set_num_threads(count)


def prepare(args: argparse.Namespace) -> None:
    """What the shared options do before any verb runs (but for ``--dry-run``): refuse a
    ``--device`` this machine lacks and set ``--threads``."""
    if getattr(args, "dry_run", False):
        return
    device = getattr(args, "device", None)
    if device is not None:
        check_device(device)
    set_threads(getattr(args, "threads", None))


def config_overrides(config: Any, args: argparse.Namespace) -> Any:
    """``config.replace(...)`` with the ``--device`` and ``--seed`` given (a frozen config with
    ``device`` and ``seed`` fields); ``config`` itself when neither is."""
    given = {f: getattr(args, f) for f in ("device", "seed") if getattr(args, f, None) is not None}
    return config.replace(**given) if given else config


def print_json(resolved: Any) -> int:
    """``--dry-run``'s output: ``resolved`` as indented JSON (paths as strings); exit status 0."""
    print(json.dumps(resolved, indent=2, default=str))
    return 0
