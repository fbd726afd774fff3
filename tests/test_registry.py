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


def test_library_modules_load_on_the_first_lookup_and_equal_rebinding_is_a_no_op(monkeypatch):
    imported: list[str] = []
    real_import = __import__("importlib").import_module
    monkeypatch.setattr("importlib.import_module",
                        lambda name, package=None: imported.append(name) or real_import(name, package))
    reg: Registry[object] = Registry("widget", group="", modules=("json", "csv"))
    assert imported == []  # creating the registry imports nothing
    reg.register("one", (1, 2))
    reg.register("one", (1, 2))  # an equal object: no error
    assert reg.names() == ["one"] and imported == ["json", "csv"]
    reg.names()
    assert imported == ["json", "csv"]  # once


def test_an_unknown_name_lists_the_plugins_that_failed(monkeypatch):
    group = "repmatch.widgets"
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_xyz", group)  # a module entry
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(broken))
    reg: Registry[object] = Registry("widget")
    with pytest.warns(RuntimeWarning, match="widget plugin 'broken'"):
        with pytest.raises(ValueError, match=r"plugins that failed to load: \['broken'\]"):
            reg.get("other")


# ------------------------------------------------------------ the library's registries, by kind
def test_each_kind_takes_a_plugin_and_module_attribute(monkeypatch, tmp_path):
    """Distance, generator source and dataset reader: a plugin's name and 'module:attribute'
    resolve like the library's own names; an object of the wrong kind is refused by name."""
    import torch

    from repmatch.compare import distances
    from repmatch.data import DATASETS, open_dataset
    from repmatch.generators import GENERATORS, MLPGenerator, build_generator

    plugins = [
        importlib.metadata.EntryPoint("exact_too", "repmatch.compare.distances:MMDExact", "repmatch.distances"),
        importlib.metadata.EntryPoint("tiny", "repmatch.generators:MLPGenerator", "repmatch.generators"),
        importlib.metadata.EntryPoint("npz", "repmatch.data:NpzImages", "repmatch.datasets"),
    ]
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(*plugins))
    for reg in (distances.DISTANCES, GENERATORS, DATASETS):
        for attr, value in (("_entries", dict(reg._entries)), ("_pending", {}), ("_plugins_loaded", False)):
            monkeypatch.setattr(reg, attr, value)

    assert isinstance(distances.create("exact_too"), distances.MMDExact)
    assert isinstance(distances.create("repmatch.compare.distances:Frechet"), distances.Frechet)
    with pytest.raises(TypeError, match="name: expected a Distance subclass"):
        distances.create("json:dumps")
    assert "exact_too" in distances.DISTANCES and "mmd_nystrom" in distances.NAMES

    for source in ("mlp", "tiny", "repmatch.generators:MLPGenerator"):
        gen = build_generator(source, kwargs={"noise_dim": 2, "image_shape": (1, 2, 2)})
        assert isinstance(gen, MLPGenerator) and gen.noise_shape == (2,)

    images = torch.zeros(3, 1, 2, 2, dtype=torch.uint8).numpy()
    __import__("numpy").savez(tmp_path / "x.npz", images=images)
    assert len(open_dataset(f"npz:{tmp_path / 'x.npz'}")) == 3  # the plugin's scheme
    with pytest.raises(FileNotFoundError, match=r"'fmnist:\.\.\.', 'npz:\.\.\.' \(registered dataset readers\)"):
        open_dataset(str(tmp_path / "nothing"))
