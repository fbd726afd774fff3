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


# ------------------------------------------------------------------------------------- studies
class _EchoStudy:
    """A minimal study: its resolved configuration is its options."""

    name = "echo"
    help = "echo the options"

    def add_options(self, parser):
        parser.add_argument("--word", default="hi")

    def resolve(self, args):
        return {"word": args.word, "quick": args.quick}

    def run(self, args, *, progress):
        table = __import__("pathlib").Path(args.out) / "echo.md"
        table.write_text(f"| {args.word} |\n")
        return {"table": table}


ECHO = _EchoStudy()


def test_a_study_plugin_runs_with_its_own_options_and_a_broken_one_is_named(monkeypatch, tmp_path, capsys):
    from repmatch.cli import main
    from repmatch.studies import STUDIES

    group = "repmatch.studies"
    plugins = [importlib.metadata.EntryPoint("echo", f"{__name__}:ECHO", group),
               importlib.metadata.EntryPoint("gone", "no_such_module_xyz:STUDY", group)]
    monkeypatch.setattr(importlib.metadata, "entry_points", _entry_points(*plugins))
    for attr, value in (("_entries", {}), ("_pending", {}), ("plugin_errors", {}), ("_plugins_loaded", False)):
        monkeypatch.setattr(STUDIES, attr, value)
    assert main(["study", "echo", "--out", str(tmp_path), "--word", "yo", "--dry-run"]) == 0
    assert '"word": "yo"' in capsys.readouterr().out
    assert main(["study", f"{__name__}:ECHO", "--out", str(tmp_path)]) == 0  # module:attribute
    assert capsys.readouterr().out.splitlines() == ["| hi |", f"table: {tmp_path / 'echo.md'}"]
    with pytest.warns(RuntimeWarning, match="study plugin 'gone'"), pytest.raises(SystemExit):
        main(["study", "gone", "--out", str(tmp_path)])
    assert "repmatch study: error: study 'gone': its plugin failed to load" in capsys.readouterr().err
    assert main(["study", "echo", "--out", str(tmp_path), "--dry-run"]) == 0  # the others still run


def test_the_study_entry_points_name_study_objects_and_help_imports_none():
    """pyproject.toml's repmatch.studies entries each load a Study registered under its own name,
    and building the parsers (repmatch --help) imports none of them."""
    import subprocess
    import sys
    import tomllib
    from pathlib import Path

    from repmatch.registry import import_object
    from repmatch.studies import Study

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    entries = pyproject["project"]["entry-points"]["repmatch.studies"]
    assert len(entries) == 8
    for name, target in entries.items():
        study = import_object(target, key=name)
        assert isinstance(study, Study) and study.name == name and "\n" not in study.help
    code = ("import sys; from repmatch.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m.startswith(('repmatch.apps.spiral', "
            "'repmatch.apps.fmnist.studies', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
