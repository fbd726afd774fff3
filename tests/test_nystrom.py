import itertools

import pytest
import torch

from repmatch import NystromReference, gaussian_kernel, mmd_nystrom_loss
from repmatch.compare.nystrom import kmeans

# Small matrices: intra-op threading only adds contention on a shared 2-core CI box.
pytestmark = pytest.mark.usefixtures("one_thread")


def _mixture(n, d, seed=0, k=4, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(k, d, generator=g, dtype=torch.float64)
    labels = torch.randint(k, (n,), generator=g)
    return (centres[labels] + torch.randn(n, d, generator=g, dtype=torch.float64)).to(dtype)


def _cross_error(pool, gen, ref):
    s = ref.bandwidth
    exact = gaussian_kernel(gen, pool, s).mean(1)
    approx = gaussian_kernel(gen, ref.landmarks.double(), s) @ ref.alpha
    return float((approx - exact).abs().max())


def test_all_points_as_landmarks_reproduce_exact_terms():
    pool, gen = _mixture(96, 6, 0), _mixture(20, 6, 1)
    ref = NystromReference.build(pool, num_landmarks=96, seed=0)
    assert _cross_error(pool, gen, ref) < 1e-8
    exact_data = float(gaussian_kernel(pool, pool, ref.bandwidth).mean())
    assert ref.data_term == pytest.approx(exact_data, abs=1e-8)


def test_nystrom_error_shrinks_with_landmarks():
    pool, gen = _mixture(600, 5, 2), _mixture(50, 5, 3)
    errs = [_cross_error(pool, gen, NystromReference.build(pool, num_landmarks=m, seed=0)) for m in (4, 16, 64, 256)]
    assert all(b < a for a, b in itertools.pairwise(errs)), errs
    assert errs[-1] < 1e-2 * errs[0]


def test_chunked_sources_match_tensor_source():
    pool = _mixture(80, 4, 4)
    gen = _mixture(10, 4, 5)
    a = NystromReference.build(pool, num_landmarks=80, bandwidth=2.0)
    chunks = list(pool.split(17))
    b = NystromReference.build(chunks, num_landmarks=80, bandwidth=2.0, chunk_size=17)
    c = NystromReference.build(lambda: iter(chunks), num_landmarks=80, bandwidth=2.0)
    assert b.pool_size == c.pool_size == 80
    for r in (b, c):
        assert r.data_term == pytest.approx(a.data_term, abs=1e-10)
        assert float(mmd_nystrom_loss(gen, r)) == pytest.approx(float(mmd_nystrom_loss(gen, a)), abs=1e-10)
    with pytest.raises(TypeError, match="one-shot iterator"):
        NystromReference.build(iter(chunks), num_landmarks=8)


def test_kmeans_deterministic_nonempty_and_close_to_sklearn():
    from sklearn.cluster import KMeans

    x = _mixture(500, 3, 6, k=6)
    c1, l1 = kmeans(x, 12, seed=3)
    c2, l2 = kmeans(x, 12, seed=3)
    assert torch.equal(c1, c2) and torch.equal(l1, l2)
    assert torch.bincount(l1, minlength=12).min() > 0
    ours = float(((x - c1[l1]) ** 2).sum())
    theirs = KMeans(12, n_init=4, random_state=0).fit(x.numpy()).inertia_
    assert ours < 1.15 * theirs


def test_kmeans_reseeds_a_cluster_that_empties():
    x = torch.cat([torch.zeros(50, 1), torch.full((50, 1), 10.0)]).double() + 0.01 * torch.arange(100.0)[:, None]
    init = torch.tensor([[0.0], [10.0], [100.0]], dtype=torch.float64)  # the third centre attracts nothing
    for iters in (0, 3):
        centers, labels = kmeans(x, 3, init=init, iters=iters)
        assert torch.bincount(labels, minlength=3).min() > 0 and torch.isfinite(centers).all()
        # Without Lloyd steps the reseeded centre is exactly the point moved into it.
        if iters == 0:
            assert torch.equal(centers[2], x[labels == 2][0])


def test_kmeans_never_returns_empty_cluster_on_degenerate_data():
    # Heavy duplicates plus far outliers: Lloyd steps empty clusters that must be reseeded.
    x = torch.cat([torch.zeros(200, 2), torch.ones(200, 2), 50 + torch.arange(10.0)[:, None].repeat(1, 2)])
    x = x.double()
    _centers, labels = kmeans(x, 12, seed=0, iters=5)
    assert torch.bincount(labels, minlength=12).min() > 0
    with pytest.raises(ValueError, match="distinct rows"):
        kmeans(x, 13, seed=0)


def test_save_load_roundtrip_bit_exact(tmp_path):
    pool = _mixture(200, 5, 7, dtype=torch.float32)
    ref = NystromReference.build(pool, num_landmarks=32, seed=1, fingerprint="enc:test")
    ref.save(tmp_path / "ref")
    back = NystromReference.load(tmp_path / "ref")
    assert torch.equal(back.landmarks, ref.landmarks) and back.landmarks.dtype == ref.landmarks.dtype
    assert torch.equal(back.alpha, ref.alpha)
    assert (back.bandwidth, back.data_term, back.pool_size, back.fingerprint) == (
        ref.bandwidth, ref.data_term, ref.pool_size, ref.fingerprint)
    gen = pool[:16] + 0.1
    assert torch.equal(mmd_nystrom_loss(gen, back), mmd_nystrom_loss(gen, ref))
    with pytest.raises(FileNotFoundError, match="manifest"):
        NystromReference.load(tmp_path / "missing")


def test_bad_input_raises_clear_errors():
    pool = _mixture(50, 4, 8)
    nan_pool = pool.clone()
    nan_pool[3, 1] = float("nan")
    with pytest.raises(ValueError, match="features contains NaN"):
        NystromReference.build(nan_pool, num_landmarks=4)
    with pytest.raises(ValueError, match="features must have shape"):
        NystromReference.build(pool[0], num_landmarks=4)
    with pytest.raises(ValueError, match="num_landmarks=51"):
        NystromReference.build(pool, num_landmarks=51)
    with pytest.raises(ValueError, match="bandwidth"):
        NystromReference.build(pool, num_landmarks=4, bandwidth="mean")
    with pytest.raises(ValueError, match="bandwidth"):
        NystromReference.build(pool, num_landmarks=4, bandwidth=-1.0)
    with pytest.raises(ValueError, match=r"features \(chunk 1\) has feature dimension 3"):
        NystromReference.build([pool[:10], pool[10:, :3]], num_landmarks=4)
    ref = NystromReference.build(pool, num_landmarks=8, fingerprint="a")
    with pytest.raises(ValueError, match="feature dimension 5, expected 4"):
        mmd_nystrom_loss(torch.zeros(3, 5, dtype=torch.float64), ref)
    with pytest.raises(ValueError, match="fingerprint 'b'"):
        ref.check_compatible(pool, fingerprint="b")


def _saved(tmp_path, seed=0, bandwidth=1.5):
    pool = torch.randn(60, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    ref = NystromReference.build(pool, num_landmarks=8, bandwidth=bandwidth, seed=0)
    return ref, ref.save(tmp_path / f"ref{seed}")


def test_a_reference_half_overwritten_refuses_to_load(tmp_path):
    """A crash between the tensors and the manifest of a rewrite: new landmarks and alpha next to
    the old bandwidth and data term must not load as one reference."""
    _, old = _saved(tmp_path, seed=0, bandwidth=1.5)
    _, new = _saved(tmp_path, seed=1, bandwidth=0.7)
    (old / "reference.safetensors").write_bytes((new / "reference.safetensors").read_bytes())
    with pytest.raises(ValueError, match="SHA-256 differs"):
        NystromReference.load(old)
    assert NystromReference.load(new).bandwidth == 0.7


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("bandwidth", -1.0, "bandwidth must be a positive finite number"),
        ("bandwidth", 0.0, "bandwidth must be a positive finite number"),
        ("bandwidth", float("nan"), "bandwidth must be a positive finite number"),
        ("data_term", float("inf"), "data_term must be a finite number"),
        ("pool_size", 0, "pool_size"),
    ],
)
def test_a_manifest_with_a_bad_field_names_the_file_and_field(tmp_path, field, value, message):
    import json

    _, path = _saved(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest[field] = value
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=rf"Nyström reference {path}: {message}"):
        NystromReference.load(path)


def test_non_finite_or_integer_tensors_are_refused():
    ref = NystromReference.build(torch.randn(30, 3, dtype=torch.float64), num_landmarks=4, bandwidth=1.0)
    with pytest.raises(ValueError, match="finite"):
        NystromReference(landmarks=ref.landmarks, alpha=ref.alpha * float("nan"), bandwidth=1.0,
                         data_term=ref.data_term, pool_size=30)
    with pytest.raises(ValueError, match="landmarks must be a floating tensor"):
        NystromReference(landmarks=ref.landmarks.long(), alpha=ref.alpha, bandwidth=1.0,
                         data_term=ref.data_term, pool_size=30)


def test_every_num_landmarks_default_is_the_one_constant():
    """``num_landmarks`` has one default, ``DEFAULT_NUM_LANDMARKS``, in every signature that takes
    it and on the command line (whose parser cannot import it, so its help says the number;
    tests/test_references.py checks the value the verb resolves)."""
    import inspect

    from repmatch.cli import build_parser
    from repmatch.compare import DEFAULT_NUM_LANDMARKS, MMDNystrom
    from repmatch.references import build_reference_dir, build_references

    for fn in (NystromReference.build, NystromReference.build_multiscale, MMDNystrom.__init__,
               build_references, build_reference_dir):
        assert inspect.signature(fn).parameters["num_landmarks"].default == DEFAULT_NUM_LANDMARKS, fn
    refs_parser = build_parser()._subparsers._group_actions[0].choices["references"]
    (action,) = [a for a in refs_parser._actions if a.dest == "num_landmarks"]
    assert f"default {DEFAULT_NUM_LANDMARKS}," in action.help


def test_multiscale_info_records_the_rank_kept_the_sample_and_each_stage():
    """``info["rank"]`` is the number of ``K_mm`` eigenvalues above ``rcond · λ_max`` (numpy's
    eigvalsh of the kernel matrix on the stored landmarks as the oracle); ``kmeans_sample`` is
    the sample size actually drawn; each stage of the build is timed."""
    import numpy as np

    pool = _mixture(300, 4, 7)
    rcond = 1e-6
    refs = NystromReference.build_multiscale(
        pool, num_landmarks=40, bandwidths=(0.5, 30.0), rcond=rcond, kmeans_sample=200, kmeans_iters=3
    )
    ranks = []
    for ref in refs:
        lm = ref.landmarks.double().numpy()
        d2 = ((lm[:, None, :] - lm[None, :, :]) ** 2).sum(-1)
        evals = np.linalg.eigvalsh(np.exp(-d2 / (2 * ref.bandwidth**2)))
        ranks.append(int((evals > rcond * evals[-1]).sum()))
        assert ref.info["rank"] == ranks[-1]
        assert ref.info["kmeans_sample"] == 200 and ref.info["rcond"] == rcond
        assert list(ref.info["timings_s"]) == ["sample", "kmeans", "factorize", "embed", "solve"]
        assert all(t >= 0.0 for t in ref.info["timings_s"].values())
    assert ranks[1] < ranks[0] == 40  # a wide kernel's K_mm is numerically low-rank
