import subprocess
import sys

import pytest

import repmatch


def test_version_and_cli_help() -> None:
    assert repmatch.__version__
    out = subprocess.run(
        [sys.executable, "-m", "repmatch", "--help"], capture_output=True, text=True, check=True
    )
    assert "repmatch" in out.stdout


def test_cli_parser_does_not_import_torch() -> None:
    """``repmatch --help`` lists every verb without importing torch (it used to take ~3 s)."""
    code = (
        "import sys\n"
        "from repmatch.cli import build_parser\n"
        "from repmatch.cli.table import VERBS\n"
        "parser = build_parser()\n"
        "verbs = parser._subparsers._group_actions[0].choices\n"
        "print(len(verbs), len(VERBS), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_verbs, n_modules, torch_loaded = out.stdout.split()
    assert int(n_verbs) == int(n_modules) and torch_loaded == "False", out.stdout


def test_package_exports_resolve() -> None:
    """Every name a library package lists in ``__all__`` resolves (the top level lazily)."""
    import importlib

    for package in (
        "repmatch",
        "repmatch.compare",
        "repmatch.represent",
        "repmatch.metrics",
        "repmatch.data",
        "repmatch.features",
        "repmatch.generators",
        "repmatch.train",
        "repmatch.evaluation",
    ):
        mod = importlib.import_module(package)
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{package}.{name}"
        assert set(mod.__all__) <= set(dir(mod))
    import repmatch.represent as rep
    from repmatch.represent.registry import list_encoders

    assert rep.list is list_encoders
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = repmatch.no_such_name
