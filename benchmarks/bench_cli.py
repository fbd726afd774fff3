"""Start-up cost of the command line: CPU seconds of `repmatch --help` (every verb's parser,
the entry-point scan for the study names) against a bare interpreter and against
`import torch`, measured in the same run (best of N; a shared machine's noise aside).

    PYTHONPATH=src python benchmarks/bench_cli.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys


def cpu_seconds(code: str, repeats: int) -> float:
    """The least CPU time (user + system) of ``python -c code`` over ``repeats`` runs."""
    best = float("inf")
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        best = min(best, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    bare = cpu_seconds("pass", args.repeats)
    rows = {
        "python -c pass": bare,
        "repmatch --help": cpu_seconds("from repmatch.cli import build_parser; build_parser().format_help()",
                                       args.repeats),
        "import torch": cpu_seconds("import torch", args.repeats),
    }
    print(f"{'command':<18} {'CPU s':>7} {'× bare':>7}")
    for name, seconds in rows.items():
        print(f"{name:<18} {seconds:7.3f} {seconds / bare:7.1f}")


if __name__ == "__main__":
    main()
