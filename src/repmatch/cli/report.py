"""``repmatch report RUN_DIR``: write a self-contained HTML report of a run directory."""

from __future__ import annotations

import argparse

from ._args import add_common, path_arg, print_json, print_outputs


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report (samples, SW_r,k table, curves) of a run directory",
        description="Build RUN_DIR/report.html from RUN_DIR/samples/*, RUN_DIR/eval/*.json and "
        "RUN_DIR/stats.jsonl; everything is inlined, so the page opens offline and can be mailed.",
    )
    p.add_argument("run_dir", type=path_arg, help="run directory (layout: see docs/fmnist.md)")
    p.add_argument("--output", default=None, type=path_arg, help="HTML path (default: RUN_DIR/report.html)")
    p.add_argument("--title", default=None, help="page title (default: the run directory's name)")
    # A report computes nothing in torch: no --device or --threads; --no-progress is accepted
    # as by every verb (a report draws no bar).
    add_common(p, threads=False, dry_run="the report's inputs and output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    if args.dry_run:
        run_dir = Path(args.run_dir)
        return print_json({"run_dir": str(run_dir),
                           "output": args.output or str(run_dir / "report.html"),
                           "title": args.title or run_dir.resolve().name})
    from ..report.html import write_report

    path = write_report(args.run_dir, output=args.output, title=args.title)
    print_outputs(("report", path))
    return 0
