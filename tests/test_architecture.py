"""The house rules (docs/architecture.md): import-linter contracts and mypy, checked here so that
a wrong import or a type error fails the test suite (and CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import repmatch

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(repmatch.__file__).resolve().parent
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


def lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's contracts on the ``repmatch`` found in ``package_parent``."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run(
        [LINT_IMPORTS, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        capture_output=True, text=True, env=env, cwd=ROOT,
    )


def test_import_contracts_hold() -> None:
    out = lint(PACKAGE.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "BROKEN" not in out.stdout and "0 broken" in out.stdout, out.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        # the comparison axis reaching for an encoder
        ("compare/kernels.py", "from ..represent import spec", "are independent"),
        # a metric reading the training loss back
        ("metrics/sliced.py", "from ..compare import nystrom", "never import the training loss path"),
        # training reaching for the feature stores that references are built from
        ("train/general.py", "from ..features import FeatureStore", "Training imports no data"),
        # the library naming an application
        ("train/loop.py", "from ..apps import toy", "imports no application"),
        # a cycle between two sibling modules
        ("represent/spec.py", "from . import registry", "No import cycles"),
        # an application reaching into a private library module
        ("apps/toy.py", "from ..compare.distances import _mmd_core", "public API only"),
    ],
)
def test_a_wrong_import_is_caught(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    copy = tmp_path / "repmatch"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberately wrong\n")
    out = lint(tmp_path)
    assert out.returncode != 0
    broken = [line for line in out.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), out.stdout


def test_mypy_is_clean_on_src() -> None:
    from mypy import api

    stdout, stderr, status = api.run([str(PACKAGE), "--cache-dir", os.devnull])
    assert status == 0, stdout + stderr


def test_the_public_api_contract_names_every_private_library_module() -> None:
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (contract,) = [c for c in contracts if "public API only" in c["name"]]
    private = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[1] in ("apps", "cli") or parts[-1].startswith("__"):
            continue
        if any(p.startswith("_") for p in parts[1:]):
            private.add(".".join(parts))
    assert private == set(contract["forbidden_modules"])


#: Functions allowed over :data:`MAX_FUNCTION_LINES`, each with its reason in docs/architecture.md.
LONG_FUNCTION_EXCEPTIONS: frozenset[str] = frozenset()
MAX_FUNCTION_LINES = 80


def test_no_function_in_src_is_over_80_lines() -> None:
    """docs/architecture.md: a function does one step; longer ones are listed there with a reason."""
    import ast

    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                name = f"{path.relative_to(PACKAGE.parent).as_posix()}:{node.name}"
                if lines > MAX_FUNCTION_LINES and name not in LONG_FUNCTION_EXCEPTIONS:
                    long.append(f"{name} ({lines} lines)")
    assert not long, long
