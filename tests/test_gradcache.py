"""Gradient caching equals a naive full-batch backward (float64, to 1e-10)."""

from __future__ import annotations

import pytest
import torch
from _train_toys import GLOBAL_B as B
from _train_toys import toy_problem

from repmatch.train import gradcache
from repmatch.train.gradcache import cached_backward


def _setup(dropout: float):
    gen, enc, noise, loss = toy_problem(dropout)

    def forward(chunk):
        # Extra noise drawn inside forward: must be replayed too.
        x = gen(chunk) + 0.01 * torch.randn(chunk.shape[0], 1, 2, 3, dtype=torch.float64)
        return enc(x)

    return gen, noise, forward, loss


def _naive(gen, noise, forward, loss, chunk_sizes):
    """One graph over the whole batch (chunk-ordered draws, so dropout masks are comparable)."""
    gen.zero_grad()
    parts = [forward(c) for c in noise.split(chunk_sizes)]
    feats = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    value = loss(feats)
    value.backward()
    return value.detach(), [p.grad.clone() for p in gen.parameters()]


@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("chunk", [B, 4, 5, 1])  # 1 chunk, 3 chunks, uneven chunks, B chunks
def test_cached_equals_naive(dropout, chunk):
    gen, noise, forward, loss = _setup(dropout)
    torch.manual_seed(123)
    ref_value, ref_grads = _naive(gen, noise, forward, loss, chunk)
    rng_after_naive = torch.get_rng_state()

    gen.zero_grad()
    torch.manual_seed(123)
    value = cached_backward(forward, noise.split(chunk), loss)
    assert torch.equal(torch.get_rng_state(), rng_after_naive)  # phase 1 draws in chunk order
    assert abs(float(value - ref_value)) < 1e-10
    for p, r in zip(gen.parameters(), ref_grads):
        assert torch.allclose(p.grad, r, atol=1e-10, rtol=0), (p.grad - r).abs().max()


def test_without_rng_replay_dropout_grads_differ(monkeypatch):
    """The replay is what makes dropout exact: disabling it breaks the equality."""
    gen, noise, forward, loss = _setup(0.3)
    torch.manual_seed(5)
    _, ref_grads = _naive(gen, noise, forward, loss, 4)
    monkeypatch.setattr(gradcache, "_set_rng_state", lambda state: None)
    gen.zero_grad()
    torch.manual_seed(5)
    cached_backward(forward, noise.split(4), loss)
    assert max((p.grad - r).abs().max().item() for p, r in zip(gen.parameters(), ref_grads)) > 1e-6


def test_gradients_accumulate_and_unused_feature():
    gen, noise, forward, _ = _setup(0.0)
    only_lin = lambda f: f["lin"].pow(2).mean()  # "tanh" unused: its gradient is None
    torch.manual_seed(0)
    cached_backward(forward, noise.split(5), only_lin)
    once = [p.grad.clone() for p in gen.parameters()]
    torch.manual_seed(0)
    cached_backward(forward, noise.split(5), only_lin)
    for p, g in zip(gen.parameters(), once):
        assert torch.allclose(p.grad, 2 * g, atol=1e-12)


def test_bad_inputs():
    gen, noise, forward, loss = _setup(0.0)
    with pytest.raises(ValueError, match="chunks"):
        cached_backward(forward, [], loss)
    with pytest.raises(TypeError, match="forward"):
        cached_backward(lambda c: gen(c), noise.split(4), loss)
    with pytest.raises(TypeError, match="0-d"):
        cached_backward(forward, noise.split(4), lambda f: f["lin"].sum(0))


@pytest.mark.parametrize(("chunk", "calls"), [(B, 1), (4, 2 * -(-B // 4))])
def test_forward_calls_one_pass_for_one_chunk(chunk, calls):
    """Two passes per chunk (no-graph, then replay) buy memory only when there are several
    chunks; a single chunk runs forward once (its gradient: test_cached_equals_naive)."""
    gen, noise, forward, loss = _setup(0.0)
    counted = []

    def counting(c):
        counted.append(c.shape[0])
        return forward(c)

    cached_backward(counting, noise.split(chunk), loss)
    assert len(counted) == calls
