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
        "from repmatch.cli import VERB_MODULES, build_parser\n"
        "parser = build_parser()\n"
        "verbs = parser._subparsers._group_actions[0].choices\n"
        "print(len(verbs), len(VERB_MODULES), 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_verbs, n_modules, torch_loaded = out.stdout.split()
    assert int(n_verbs) == int(n_modules) and torch_loaded == "False", out.stdout


def test_lazy_package_exports_resolve() -> None:
    """Every name a lazy package declares resolves to the object of its defining module."""
    import importlib

    for package in (
        "repmatch",
        "repmatch.encoders",
        "repmatch.reference",
        "repmatch.models",
        "repmatch.train",
        "repmatch.evaluation",
    ):
        mod = importlib.import_module(package)
        for name in mod.__all__:
            assert getattr(mod, name) is not None, f"{package}.{name}"
        assert set(mod.__all__) <= set(dir(mod))
    import repmatch.encoders as enc
    from repmatch.encoders._registry import list_encoders

    assert enc.list is list_encoders
    with pytest.raises(AttributeError, match="no_such_name"):
        enc.no_such_name  # noqa: B018
