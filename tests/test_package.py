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


def _resolve(dotted: str) -> object:
    """The object a dotted ``repmatch.…`` name denotes: the longest importable module prefix,
    then attributes (``AttributeError`` / ``ModuleNotFoundError`` when it names nothing)."""
    import importlib

    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ModuleNotFoundError as exc:
            if i > 1 and exc.name == ".".join(parts[:i]):
                continue  # not a module: the rest are attributes of a shorter prefix
            raise
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise AssertionError("unreachable: 'repmatch' itself imports")


def test_docstring_cross_references_resolve() -> None:
    """Every Sphinx role in ``src`` that names ``repmatch.…`` (``:func:``, ``:class:``,
    ``:mod:``, ``:meth:``, …) names something that exists: a moved name leaves no stale link."""
    import re
    from pathlib import Path

    # Everything up to the closing backtick, so a malformed target (``f()``, a typo'd dot) is
    # reported as stale rather than silently left unscanned.
    role = re.compile(r":(?:func|class|mod|meth|attr|data|exc|obj):`~?(repmatch\b[^`]*)`")
    src = Path(repmatch.__file__).parent
    refs = [
        (match.group(1), f"{path.relative_to(src)}:{text.count(chr(10), 0, match.start()) + 1}")
        for path in sorted(src.rglob("*.py"))
        for text in [path.read_text(encoding="utf-8")]
        for match in role.finditer(text)
    ]
    assert len(refs) > 20  # the scan sees the references it checks
    stale = []
    for name, where in refs:
        try:
            _resolve(name)
        except (AttributeError, ModuleNotFoundError) as exc:
            stale.append(f"{where}: {name} ({exc})")
    assert not stale, "\n".join(stale)
