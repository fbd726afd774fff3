"""repmatch.registry: the one registry shape (library entries, entry points, 'module:attribute')."""

from __future__ import annotations

import importlib.metadata
import warnings

import pytest

from repmatch.registry import Registry


def _entry_points(*entries: importlib.metadata.EntryPoint):
    return lambda group=None: [e for e in entries if e.group == group]


def test_a_name_a_module_attribute_and_an_unknown_name():
    reg: Registry[object] = Registry("widget", group="")
    reg.register("one", 1)
    assert reg.get("one") == 1
    assert reg.get("json:dumps") is __import__("json").dumps
    assert reg.names() == ["one"] and "one" in reg
    with pytest.raises(ValueError, match=r"widget must be one of \['one'\] or 'module:attribute', got 'two'"):
        reg.get("two")
    with pytest.raises(ValueError, match="already registered"):
        reg.register("one", 2)
    reg.register("one", 2, overwrite=True)
    assert reg.get("one") == 2


def test_the_check_refuses_an_object_of_the_wrong_kind():
    def check(key, obj):
        if not isinstance(obj, int):
            raise TypeError(f"{key}: expected an int, got {type(obj).__name__}")

    reg: Registry[int] = Registry("number", group="", check=check)
    with pytest.raises(TypeError, match="n: expected an int, got function"):
        reg.get("json:dumps", key="n")


def test_entry_points_load_lazily_and_a_broken_one_is_reported_by_name(monkeypatch):
    group = "repmatch.widgets"
    good = importlib.metadata.EntryPoint("good", "json:loads", group)
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_xyz:thing", group)
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(good, broken))
    reg: Registry[object] = Registry("widget")
    assert reg.group == group
    assert reg.names() == ["broken", "good"]  # listed without importing either
    assert reg.get("good") is __import__("json").loads
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ImportError, match="widget 'broken': its plugin failed to load"):
            reg.get("broken")
    assert any("plugin 'broken'" in str(w.message) for w in caught)
    assert reg.get("good") is __import__("json").loads  # the others keep working
