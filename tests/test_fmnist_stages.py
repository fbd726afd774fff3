"""Stage prerequisites of the Fashion-MNIST job: one stage alone on a fresh directory names
what it needs instead of failing deep inside on a missing file."""

from __future__ import annotations

import pytest

from repmatch.apps.fmnist.pipeline import STAGE_FUNCS, run_pipeline
from repmatch.apps.fmnist.recipe import get_recipe
from repmatch.apps.fmnist.stages import REQUIRES, STAGES


def test_every_stage_declares_prerequisites_that_run_before_it():
    assert set(REQUIRES) == set(STAGES) == set(STAGE_FUNCS)
    for stage, needs in REQUIRES.items():
        assert all(STAGES.index(n) < STAGES.index(stage) for n in needs), stage


def test_a_stage_alone_on_a_fresh_directory_names_the_missing_stages(tmp_path):
    with pytest.raises(ValueError, match=r"stage 'features' needs .*stage\(s\) encoders.*--stage encoders"):
        run_pipeline(get_recipe("fmnist-tiny"), tmp_path / "run", stages=["features"], log=lambda s: None)
    with pytest.raises(ValueError, match=r"stage 'post' needs .*teacher, floors, references"):
        run_pipeline(get_recipe("fmnist-tiny"), tmp_path / "run", stages=["post"], log=lambda s: None)
