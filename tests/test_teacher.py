"""Rectified flow (loss, interpolant, time sampling, Euler sampler) and the teacher trainer."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch

from repmatch.apps.fmnist import teacher as teacher_module
from repmatch.apps.fmnist.flow_matching import flow_matching_loss, interpolate, sample_time
from repmatch.apps.fmnist.teacher import TeacherConfig, load_teacher, train_teacher
from repmatch.cli import main
from repmatch.generators import FewStepGenerator
from repmatch.train import latest_checkpoint, load_checkpoint


def euler_sample(velocity, noise, condition, num_steps):
    """The teacher's sampler (train's FewStepGenerator) in data space: 2·g(noise) − 1."""
    return 2 * FewStepGenerator(velocity, num_steps, noise.shape[1:])(noise, condition) - 1


pytestmark = pytest.mark.usefixtures("one_thread")


def _gaussian_velocity(mu: float, s: float):
    """Exact rectified-flow velocity E[ε − x | x_t] for data x ~ N(mu, s²) per pixel, ε ~ N(0, 1).

    x_t = (1 − t)x + tε is Gaussian with mean (1 − t)mu and variance a² = (1 − t)²s² + t², and
    Cov(ε − x, x_t) = t − (1 − t)s², so v(x_t, t) = −mu + (t − (1 − t)s²)/a² · (x_t − (1 − t)mu).
    """

    def v(x, t, condition):
        t = t.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
        a2 = (1 - t) ** 2 * s**2 + t**2
        return -mu + (t - (1 - t) * s**2) / a2 * (x - (1 - t) * mu)

    return v


def test_interpolant_endpoints_and_midpoint():
    x, e = torch.randn(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    torch.testing.assert_close(interpolate(x, e, torch.zeros(3)), x)
    torch.testing.assert_close(interpolate(x, e, torch.ones(3)), e)
    torch.testing.assert_close(interpolate(x, e, torch.full((3,), 0.25)), 0.75 * x + 0.25 * e)


def test_flow_matching_loss_matches_bruteforce():
    g = torch.Generator().manual_seed(0)
    n, shape = 5, (1, 3, 3)
    x = torch.rand((n, *shape), generator=g) * 2 - 1
    noise = torch.randn((n, *shape), generator=g)
    t = torch.rand(n, generator=g)
    c = torch.tensor([0, 1, 2, 1, 0])
    w = torch.randn(3, generator=g)

    def v(xt, tt, cc):  # an arbitrary field that depends on x_t, t and the class
        return 0.7 * xt - 0.3 * tt.view(-1, 1, 1, 1) + w[cc].view(-1, 1, 1, 1)

    got = flow_matching_loss(v, x, c, t=t, noise=noise)
    total, count = 0.0, 0
    xd, nd, td, wd = x.double(), noise.double(), t.double(), w.double()
    for i in range(n):
        for j in range(9):
            xi, ei = xd[i].flatten()[j].item(), nd[i].flatten()[j].item()
            xt = (1 - td[i].item()) * xi + td[i].item() * ei
            pred = 0.7 * xt - 0.3 * td[i].item() + wd[c[i]].item()
            total += (pred - (ei - xi)) ** 2
            count += 1
    assert got.item() == pytest.approx(total / count, rel=1e-5)


def test_exact_gaussian_velocity_minimises_the_loss():
    # The conditional expectation E[ε − x | x_t] is the L2 minimiser: perturbing it in any
    # direction must raise the Monte-Carlo loss. A sign error in the convention would not.
    g = torch.Generator().manual_seed(1)
    mu, s = 0.4, 0.3
    x = mu + s * torch.randn((20000, 1, 1, 1), generator=g, dtype=torch.float64)
    noise = torch.randn(x.shape, generator=g, dtype=torch.float64)
    t = torch.rand(20000, generator=g, dtype=torch.float64)
    exact = _gaussian_velocity(mu, s)
    best = flow_matching_loss(exact, x, None, t=t, noise=noise)
    for scale, shift in [(1.1, 0.0), (0.9, 0.0), (1.0, 0.05), (1.0, -0.05)]:

        def perturbed(a, b, c, scale=scale, shift=shift):
            return scale * exact(a, b, c) + shift

        assert flow_matching_loss(perturbed, x, None, t=t, noise=noise) > best
    flipped = flow_matching_loss(lambda a, b, c: -exact(a, b, c), x, None, t=t, noise=noise)
    assert flipped > 2 * best


def test_euler_linear_field_matches_closed_form():
    # dx/dt = lam·x integrated from t=1 to t=0 by K Euler steps gives exactly x1·(1 − lam/K)^K,
    # and the exact ODE solution x1·exp(−lam) as K grows.
    lam = 0.8
    x1 = torch.randn(4, 1, 2, 2, dtype=torch.float64)
    for k in (1, 4, 50):
        got = euler_sample(lambda x, t, c: lam * x, x1, None, k)
        # float32 linspace schedule: dt is 1/k up to ~1e-7 relative.
        torch.testing.assert_close(got, x1 * (1 - lam / k) ** k, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(
        euler_sample(lambda x, t, c: lam * x, x1, None, 4000),
        x1 * math.exp(-lam),
        rtol=1e-4,
        atol=1e-6,
    )


def test_euler_evaluates_at_the_left_end_times():
    seen = []
    euler_sample(
        lambda x, t, c: seen.append(t.clone()) or torch.zeros_like(x),
        torch.zeros(2, 1, 1, 1),
        None,
        4,
    )
    torch.testing.assert_close(torch.stack(seen)[:, 0], torch.tensor([1.0, 0.75, 0.5, 0.25]))


def test_euler_transports_noise_to_gaussian_data():
    # For x ~ N(mu, s²) the exact flow maps ε at t=1 to mu + s·ε at t=0; Euler is first order.
    mu, s = 0.4, 0.3
    eps = torch.randn(64, 1, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    exact = _gaussian_velocity(mu, s)
    target = mu + s * eps
    # One step is exact in closed form: v(ε, 1) = ε − mu, so x0 = mu.
    torch.testing.assert_close(euler_sample(exact, eps, None, 1), torch.full_like(eps, mu))
    errs = [
        (euler_sample(exact, eps, None, k) - target).abs().max().item() for k in (200, 400, 800)
    ]
    assert errs[-1] < 5e-3
    for coarse, fine in itertools.pairwise(errs):
        assert 1.6 < coarse / fine < 2.4


def test_sample_time_distributions():
    from scipy import stats

    g = torch.Generator().manual_seed(3)
    u = sample_time(4000, schedule="uniform", generator=g).double().numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    ln = sample_time(4000, schedule="logit_normal", generator=g).double().numpy()
    # P(t <= q) = Phi(logit(q)) for t = sigmoid(N(0, 1)).
    assert (
        stats.kstest(ln, lambda q: stats.norm.cdf(torch.logit(torch.as_tensor(q)).numpy())).pvalue
        > 1e-3
    )
    with pytest.raises(ValueError, match="schedule"):
        sample_time(3, schedule="cosine")


@pytest.fixture(scope="module")
def small_data():
    g = torch.Generator().manual_seed(0)
    # Class-dependent blobs: learnable structure in a few steps, no dataset needed.
    labels = torch.arange(200) % 10
    yy, xx = torch.meshgrid(torch.arange(28.0), torch.arange(28.0), indexing="ij")
    centers = 4 + 2 * labels.float()
    blobs = torch.exp(-((yy - centers[:, None, None]) ** 2 + (xx - 14) ** 2) / 20)
    images = (255 * (blobs + 0.05 * torch.rand(blobs.shape, generator=g)).clamp(0, 1)).to(
        torch.uint8
    )
    return images[:, None], labels


def _tiny(**kw) -> TeacherConfig:
    base = {
        "model": "tiny",
        "batch_size": 16,
        "lr": 3e-3,
        "warmup_steps": 2,
        "log_every": 2,
        "checkpoint_every": 2,
        "sample_steps": 2,
    }
    return TeacherConfig(**{**base, **kw})


def _eval_loss(model, images, labels) -> float:
    g = torch.Generator().manual_seed(7)
    x = images[:64].float() / 127.5 - 1
    with torch.no_grad():
        return flow_matching_loss(
            model,
            x,
            labels[:64],
            t=torch.rand(64, generator=g),
            noise=torch.randn(x.shape, generator=g),
        ).item()


def test_teacher_training_decreases_loss(tmp_path, small_data):
    images, labels = small_data
    res = train_teacher(_tiny(steps=16, ema_decay=0.5), tmp_path, data=small_data, progress=False)
    assert res.finished and res.step == 16
    zero = _eval_loss(
        lambda x, t, c: torch.zeros_like(x), images, labels
    )  # the untrained net predicts v = 0
    assert _eval_loss(res.model, images, labels) < 0.8 * zero
    lines = [json.loads(ln) for ln in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == list(range(2, 17, 2))
    assert lines[-1]["nimg"] == 16 * 16
    assert lines[-1]["loss"] < lines[0]["loss"]
    # Written artefacts: EMA weights that reload to the same function, the sample grid, config.
    loaded = load_teacher(tmp_path)
    x, t, c = torch.randn(3, 1, 28, 28), torch.rand(3), torch.tensor([1, 2, 3])
    torch.testing.assert_close(loaded(x, t, c), res.model(x, t, c))
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    student = load_teacher(tmp_path / "teacher.safetensors", trainable=True)
    assert student.training and all(p.requires_grad for p in student.parameters())
    assert (tmp_path / "samples" / "teacher_2step.png").stat().st_size > 0
    assert json.loads((tmp_path / "config.json").read_text())["teacher"]["steps"] == 16


def test_teacher_resume_is_bit_exact(tmp_path, small_data):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_teacher(_tiny(steps=6), straight, data=small_data, progress=False)
    first = train_teacher(_tiny(steps=3), resumed, data=small_data, progress=False)
    assert first.step == 3
    train_teacher(_tiny(steps=6), resumed, data=small_data, progress=False)
    a = load_checkpoint(latest_checkpoint(straight))
    b = load_checkpoint(latest_checkpoint(resumed))
    assert a["step"] == b["step"] == 6
    for key in ("model", "ema"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)
    strip = lambda p: [
        {k: v for k, v in json.loads(ln).items() if k != "time_s"}
        for ln in (p / "stats.jsonl").read_text().splitlines()
    ]
    assert strip(straight) == strip(resumed)


def test_teacher_fresh_start_drops_lines_of_a_run_killed_before_its_first_checkpoint(tmp_path, small_data):
    stale = {"step": 2, "nimg": 32, "loss": 9.0, "lr": 1.0, "time_s": 0.0}
    (tmp_path / "stats.jsonl").write_text(json.dumps(stale) + "\n")  # no checkpoint beside it
    train_teacher(_tiny(steps=4), tmp_path, data=small_data, progress=False)
    lines = [json.loads(ln) for ln in (tmp_path / "stats.jsonl").read_text().splitlines()]
    assert [ln["step"] for ln in lines] == [2, 4] and lines[0]["loss"] != 9.0


def test_teacher_refuses_to_resume_a_different_run(tmp_path, small_data):
    train_teacher(_tiny(steps=2), tmp_path, data=small_data, progress=False)
    with pytest.raises(ValueError, match="differs"):
        train_teacher(_tiny(steps=4, lr=1e-4), tmp_path, data=small_data, progress=False)


def test_teacher_stops_on_non_finite_loss(tmp_path, small_data, monkeypatch):
    monkeypatch.setattr(
        teacher_module, "flow_matching_loss", lambda *a, **k: torch.tensor(float("nan"))
    )
    with pytest.raises(FloatingPointError, match="step 0"):
        train_teacher(_tiny(steps=2), tmp_path, data=small_data, progress=False)


def test_teacher_config_validation():
    with pytest.raises(ValueError, match="model"):
        TeacherConfig(model="huge")
    with pytest.raises(ValueError, match="time_sampling"):
        TeacherConfig(time_sampling="cosine")
    with pytest.raises(ValueError, match="batch_size"):
        TeacherConfig(batch_size=0)
    with pytest.raises(ValueError, match="ema_decay"):
        TeacherConfig(ema_decay=1.0)
    cfg = TeacherConfig(lr=1.0, warmup_steps=4)
    assert [cfg.lr_at(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_teacher_cli_on_fashion_mnist(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["teacher", "--dry-run", "--out", str(out), "--preset", "tiny"]) == 0
    assert json.loads(capsys.readouterr().out)["teacher"]["model"] == "tiny"
    assert (
        main(
            [
                "teacher",
                "--out",
                str(out),
                "--preset",
                "tiny",
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--warmup-steps",
                "1",
                "--sample-steps",
                "1",
            ]
        )
        == 0
    )
    assert "finished at step 2/2" in capsys.readouterr().out
    assert (out / "teacher.safetensors").exists() and (
        out / "samples" / "teacher_1step.png"
    ).exists()


@pytest.mark.gpu
def test_teacher_trains_and_resumes_on_cuda(tmp_path, small_data):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train_teacher(_tiny(steps=4), straight, data=small_data, device="cuda", progress=False)
    train_teacher(_tiny(steps=2), resumed, data=small_data, device="cuda", progress=False)
    res = train_teacher(_tiny(steps=4), resumed, data=small_data, device="cuda", progress=False)
    assert res.step == 4 and next(res.model.parameters()).is_cuda
    a = load_checkpoint(latest_checkpoint(straight))
    b = load_checkpoint(latest_checkpoint(resumed))
    for name, tensor in a["model"].items():
        torch.testing.assert_close(tensor, b["model"][name])
