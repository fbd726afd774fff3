"""The gated proportional Lagrangian controller against hand-computed weights."""

from __future__ import annotations

import math

import pytest
import torch

from repmatch.train.controller import ControllerConfig, LagrangianController, scale_free

FLOORS = {"a": 1.0, "b": 1.0, "c": 1.0}


def ctl(**kw):
    return LagrangianController(list(FLOORS), FLOORS, ControllerConfig(score_ema=0.0, **kw))


def test_gating_and_budget_two_violators():
    # e = (2, 1, -0.5): c is gated out; mean violator excess 1.5; two-way softmax = logistic.
    w = ctl(budget=10.0, temperature=1.0).update({"a": 3.0, "b": 2.0, "c": 0.5})
    wa = 10.0 / (1.0 + math.exp(-(2.0 - 1.0) / 1.5))
    assert w["a"] == pytest.approx(wa, abs=1e-12)
    assert w["b"] == pytest.approx(10.0 - wa, abs=1e-12)
    assert w["c"] == 0.0


def test_temperature_flattens():
    w = ctl(budget=4.0, temperature=2.0).update({"a": 3.0, "b": 2.0, "c": 0.5})
    wa = 4.0 / (1.0 + math.exp(-(2.0 - 1.0) / (2.0 * 1.5)))
    assert w["a"] == pytest.approx(wa, abs=1e-12)
    assert w["a"] + w["b"] == pytest.approx(4.0, abs=1e-12)


def test_single_violator_takes_budget_and_floor_equality_is_satisfied():
    w = ctl(budget=10.0).update({"a": 1.0, "b": 1.7, "c": 0.2})  # a exactly at its floor
    assert w == {"a": 0.0, "b": pytest.approx(10.0), "c": 0.0}


def test_all_satisfied_gives_zero_weights():
    assert ctl().update({"a": 0.9, "b": 1.0, "c": -3.0}) == {"a": 0.0, "b": 0.0, "c": 0.0}


def test_three_violators_softmax():
    floors = {"x": 0.5, "y": -1.0, "z": 2.0}
    c = LagrangianController(list(floors), floors, ControllerConfig(score_ema=0.0, budget=3.0, temperature=0.5))
    w = c.update({"x": 1.5, "y": 2.0, "z": 2.5})  # excesses 1, 3, 0.5; mean 1.5
    z = {k: math.exp(e / (0.5 * 1.5)) for k, e in {"x": 1.0, "y": 3.0, "z": 0.5}.items()}
    for k in z:
        assert w[k] == pytest.approx(3.0 * z[k] / sum(z.values()), abs=1e-12)


def test_ema_smooths_scores():
    c = LagrangianController(list(FLOORS), FLOORS, ControllerConfig(score_ema=0.75))
    c.update({"a": 3.0, "b": 0.0, "c": 0.0})
    c.update({"a": 1.0, "b": 5.0, "c": 0.0})
    # smoothed a = .75*3 + .25*1 = 2.5 (e=1.5), b = .25*5 = 1.25 (e=.25), c = 0 (gated)
    assert c.smoothed == {"a": 2.5, "b": 1.25, "c": 0.0}
    wa = 10.0 / (1.0 + math.exp(-(1.5 - 0.25) / 0.875))
    assert c.weights["a"] == pytest.approx(wa, abs=1e-12)


def test_uniform_mode_ignores_scores():
    w = ctl(mode="uniform", budget=6.0).update({"a": 0.0, "b": 9.0, "c": 0.0})
    assert w == {"a": 2.0, "b": 2.0, "c": 2.0}


def test_state_dict_roundtrip():
    c = LagrangianController(list(FLOORS), FLOORS, ControllerConfig())
    c.update({"a": 3.0, "b": 2.0, "c": 0.5})
    d = LagrangianController(list(FLOORS), FLOORS, ControllerConfig())
    d.load_state_dict(c.state_dict())
    assert d.update({"a": 2.0, "b": 2.0, "c": 2.0}) == c.update({"a": 2.0, "b": 2.0, "c": 2.0})


def test_bad_inputs():
    with pytest.raises(ValueError, match="controller.mode"):
        ControllerConfig(mode="pid")
    with pytest.raises(ValueError, match="score_ema"):
        ControllerConfig(score_ema=1.0)
    with pytest.raises(ValueError, match="floors"):
        LagrangianController(["a", "q"], FLOORS, ControllerConfig())
    with pytest.raises(ValueError, match="finite"):
        ctl().update({"a": float("nan"), "b": 0.0, "c": 0.0})


def test_scale_free_value_and_gradient():
    x = torch.tensor([0.3, -0.2], dtype=torch.float64, requires_grad=True)
    raw = (x**3).sum()  # -> 0.019
    out = scale_free(raw)
    assert out.item() == pytest.approx(1.0)
    out.backward()
    assert torch.allclose(x.grad, 3 * x.detach() ** 2 / abs(raw.item()), atol=1e-12)
