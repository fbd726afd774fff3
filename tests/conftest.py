"""Shared test configuration: GPU tests skip without CUDA; networking is refused."""

from __future__ import annotations

import socket

import pytest
import torch


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any attempt to open a network connection fail loudly (offline guarantee)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def one_thread():
    """Run a test with one intra-op thread (restored after).

    For tiny models and batches, intra-op threads cost more in synchronisation than they save,
    and on a loaded machine they make small training tests several times slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def app_tasks(monkeypatch):
    """The applications' tasks as pyproject.toml declares them (entry points group
    ``repmatch.tasks``), whatever the installed metadata holds: ``TASKS`` reads this table."""
    import importlib.metadata
    import pathlib
    import tomllib

    from repmatch.train import TASKS, GeneralTask

    table = tomllib.loads((pathlib.Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = table["project"]["entry-points"]["repmatch.tasks"]
    points = [importlib.metadata.EntryPoint(name, value, "repmatch.tasks") for name, value in declared.items()]
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        return points if kw.get("group") == "repmatch.tasks" else real(**kw)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setattr(TASKS, "_entries", {"general": GeneralTask})
    monkeypatch.setattr(TASKS, "_pending", {})
    monkeypatch.setattr(TASKS, "_plugins_loaded", False)
    return declared
