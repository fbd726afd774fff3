"""Every ``repmatch`` command written in the README and docs/ parses: a verb that exists, flags it
accepts and, where a flag takes a fixed set (presets, studies, conditions), a value in it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from repmatch.cli import build_parser
from repmatch.cli.study import expand_alias

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def commands() -> list[tuple[str, str]]:
    """``(page, command)`` for every ``repmatch ...`` command in a fenced code block."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```[^\n]*\n(.*?)```", page.read_text(), flags=re.DOTALL):
            text = block.replace("\\\n", " ")  # continuation lines
            for line in text.splitlines():
                for part in line.split("&&"):
                    part = part.split(" #")[0].split(" > ")[0].strip()  # no comment, no redirect
                    match = re.search(r"(?:^|-m )repmatch (.*)$", part)
                    if match and not part.startswith(("from ", "import ")):
                        found.append((page.name, match.group(1)))
    return found


COMMANDS = commands()


def test_the_docs_hold_commands() -> None:
    assert len(COMMANDS) > 30  # the README's recipes alone hold 16


@pytest.mark.parametrize(("page", "command"), COMMANDS, ids=[f"{p}:{c[:40]}" for p, c in COMMANDS])
def test_a_documented_command_parses(page: str, command: str) -> None:
    # Optional flags shown as [--flag VALUE] are checked too; placeholders get sample values.
    words = shlex.split(re.sub(r"\[(--[^\]]*)\]", r"\1", command))
    words = [{"NAME": "spiral", "N": "1"}.get(w, w) for w in words]
    try:
        args = build_parser().parse_args(expand_alias(words))  # as main() parses it
    except SystemExit as exc:  # argparse rejects an unknown verb, flag or choice
        pytest.fail(f"{page}: `repmatch {command}` does not parse (exit {exc.code})")
    assert getattr(args, "func", None) is not None, f"{page}: `repmatch {command}` names no verb"


def test_the_readme_library_snippet_runs(tmp_path, monkeypatch) -> None:
    """The README's Python block runs as written (in a scratch directory) and its loss is the
    float64 brute-force eq.-3 value of the reference it built."""
    import torch

    def gaussian_kernel(x, y, sigma):
        return torch.exp(-torch.cdist(x, y).pow(2) / (2 * sigma**2))

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert blocks, "the README has no Python block"
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    ref, g = scope["ref"], scope["gen_features"].detach().double()
    y, a, s = ref.landmarks.double(), ref.alpha.double(), ref.bandwidth
    expected = gaussian_kernel(g, g, s).mean() - 2 * (gaussian_kernel(g, y, s) @ a).mean() + ref.data_term
    assert float(scope["loss"].detach()) == pytest.approx(float(expected), rel=1e-4, abs=1e-6)
    assert scope["gen_features"].grad is not None


def test_every_test_named_in_the_docs_exists() -> None:
    """docs/reliability.md backs each guarantee with a test: the tests it names must exist."""
    named = set()
    for page in PAGES:
        text = page.read_text()
        for file, rest in re.findall(r"`(?:tests/)?(test_\w+\.py)((?:::\w+)?)`", text):
            named.add((file, rest.lstrip(":")))
        # "`file::a`, `::b`": a bare ::name continues the last file named.
        for file, tail in re.findall(r"`(?:tests/)?(test_\w+\.py)::\w+`((?:,? (?:and )?`::\w+`)+)", text):
            named.update((file, name) for name in re.findall(r"`::(\w+)`", tail))
    assert len(named) > 20
    for file, name in sorted(named):
        path = ROOT / "tests" / file
        assert path.is_file(), f"the docs name {file}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\(", path.read_text(), flags=re.MULTILINE), (
                f"the docs name {file}::{name}, which does not exist"
            )
