"""Lazy package exports (PEP 562): a package's public names are imported on first access.

The top-level ``repmatch`` package re-exports the comparison axis this way, so that
``repmatch --help`` and ``import repmatch.metrics`` do not pay for (or depend on) the
torch-heavy modules it re-exports::

    __getattr__, __dir__ = lazy_exports(__name__, {"NystromReference": ".compare",
                                                   "kernel": ".compare:gaussian_kernel"})

A value ``"module"`` exports the attribute of the same name from that (relative) module;
``"module:attr"`` exports ``attr`` under another name.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` resolving ``exports`` on first access."""

    def __getattr__(name: str) -> Any:
        target = exports.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = target.partition(":")
        value = getattr(importlib.import_module(module, package), attr or name)
        setattr(sys.modules[package], name, value)  # cache: later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    return __getattr__, __dir__
