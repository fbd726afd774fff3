"""Name → object registries, one shape for every kind of extension.

Each kind (encoder, generator source, distance, dataset reader, task, study) has one
:class:`Registry`, filled three ways, in this order of precedence:

1. the library's own entries, registered by the module that defines the registry, or by the
   modules named in ``modules``, imported on the first lookup (so that importing the registry
   stays cheap);
2. installed packages, through the entry-point group ``repmatch.<kind>s`` (e.g.
   ``repmatch.studies``): each entry's name is the registry name and its value the object
   (``"pkg.module:attribute"``), imported only when that name is looked up, so listing the
   names stays cheap. An entry whose value is a module instead registers its names itself when
   imported (how encoder packages add several specs); such modules load on the first lookup;
3. ``"module:attribute"`` given wherever a name is: imported from the working directory or
   ``PYTHONPATH`` on use, never registered.

A plugin that fails to load is reported by name (one :class:`RuntimeWarning`, and its error
again if that name is asked for); the other entries keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
import types
import warnings
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


def import_object(target: str, *, key: str) -> Any:
    """The object named by ``"package.module:attribute"`` (dotted attributes allowed); ``key``
    names the parameter in errors. The working directory is importable, as it is for
    ``python -m``."""
    module, sep, attr = target.partition(":") if isinstance(target, str) else ("", "", "")
    if not (module and sep and attr):
        raise ValueError(f"{key} must be 'module:attribute' (e.g. 'mygen:build'), got {target!r}")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj: Any = importlib.import_module(module)
    except Exception as exc:  # any failure inside the user's module is reported as such
        raise ValueError(f"{key}: cannot import module {module!r} ({type(exc).__name__}: {exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{key}: module {module!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    return obj


class Registry(Generic[T]):
    """Names of one kind of extension, each bound to an object.

    Args:
        kind: what the entries are, in messages (``"distance"``); the entry-point group is
            ``repmatch.<kind>s`` unless ``group`` is given.
        group: the entry-point group; ``None`` derives it from ``kind``, ``""`` reads none.
        check: called on every object looked up (by name, plugin or ``module:attribute``) to
            refuse one of the wrong type; raises ``TypeError``.
        modules: the library's modules that register their entries when imported; imported on
            the first lookup or listing, before the plugins.
    """

    def __init__(self, kind: str, *, group: str | None = None,
                 check: Callable[[str, Any], None] | None = None,
                 modules: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = f"repmatch.{kind.replace(' ', '_')}s" if group is None else group
        self._check = check
        self._modules = modules
        self._entries: dict[str, T] = {}
        self._plugins_loaded = False
        self._pending: dict[str, importlib.metadata.EntryPoint] = {}
        #: ``{plugin name: error}`` of the entry points that failed to load.
        self.plugin_errors: dict[str, str] = {}

    def register(self, name: str, obj: T, *, overwrite: bool = False) -> T:
        """Bind ``name`` to ``obj`` and return ``obj``. Binding a taken name to an equal object is
        a no-op; to another object it raises ``ValueError`` unless ``overwrite``."""
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"{self.kind} name must be a non-empty string without ':', got {name!r}")
        old = self._entries.get(name)
        if old is not None and old is not obj and old != obj and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self._entries[name] = obj
        return obj

    def get(self, name: str, *, key: str | None = None) -> T:
        """The object registered as ``name``, or the one ``"module:attribute"`` names; ``key``
        names the parameter in errors (default: the kind)."""
        key = key or self.kind
        if isinstance(name, str) and ":" in name:
            obj = import_object(name, key=key)
        else:
            self.load_plugins()
            if isinstance(name, str) and name in self._pending:
                self._load_entry(self._pending.pop(name))
            if not isinstance(name, str) or name not in self._entries:
                failed = self.plugin_errors.get(name) if isinstance(name, str) else None
                if failed is not None:
                    raise ImportError(f"{key} {name!r}: its plugin failed to load ({failed})")
                broken = f" (plugins that failed to load: {sorted(self.plugin_errors)})" if self.plugin_errors else ""
                raise ValueError(f"{key} must be one of {self.names()} or 'module:attribute', got {name!r}{broken}")
            obj = self._entries[name]
        if self._check is not None:
            self._check(key, obj)
        return obj

    def names(self) -> list[str]:
        """Every name: the library's, the plugins' (not imported to list them), sorted."""
        self.load_plugins()
        return sorted({*self._entries, *self._pending})

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def load_plugins(self) -> None:
        """Import the library's ``modules`` and read the entry points of :attr:`group`, once:
        module entries are imported now (they register their own names), object entries when
        their name is looked up."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for module in self._modules:
            importlib.import_module(module)
        if not self.group:
            return
        for entry in importlib.metadata.entry_points(group=self.group):
            if entry.attr:
                self._pending.setdefault(entry.name, entry)
            else:
                self._load_entry(entry)

    def _load_entry(self, entry: importlib.metadata.EntryPoint) -> None:
        try:
            obj = entry.load()
            if not isinstance(obj, types.ModuleType):
                self.register(entry.name, obj, overwrite=True)
        except Exception as exc:  # a broken plugin must not break the others
            self.plugin_errors[entry.name] = f"{type(exc).__name__}: {exc}"
            warnings.warn(
                f"repmatch: the {self.kind} plugin {entry.name!r} ({entry.value}, group "
                f"{self.group}) failed to load and is skipped: {type(exc).__name__}: {exc}",
                RuntimeWarning, stacklevel=4,
            )
