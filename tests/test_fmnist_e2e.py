"""End-to-end smoke of the Fashion-MNIST job (``repmatch fmnist``) at tiny sizes.

One pipeline run (module fixture) through the CLI: in-project encoders, teacher, features,
floors, joint Nyström references, both iRDM arms, samples, eval and the HTML report; the tests
check each stage's outputs against independent recomputations.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from _chromium import probe_report

from repmatch.apps.fmnist.parts import Layout, joint_fingerprint, make_battery
from repmatch.apps.fmnist.pipeline import MODELS, STAGES, load_model, run_pipeline
from repmatch.apps.fmnist.recipe import FmnistRecipe, arm_loop, get_recipe
from repmatch.cli import main

pytestmark = pytest.mark.skipif(
    not __import__("pathlib").Path("/usr/share/datasets/fashion-mnist").is_dir()
    and "REPMATCH_FMNIST_ROOT" not in __import__("os").environ,
    reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)",
)


def smoke_recipe() -> FmnistRecipe:
    arm = arm_loop(batch_size=32, chunk_size=16, total_nimg=64, lr=1e-3, log_every_nimg=32, monitor=True,
                   heldout_num_samples=100)
    return FmnistRecipe(
        name="smoke",
        train_encoders=("fmnist_classifier",),
        heldout_encoders=("fmnist_autoencoder", "efficientnet_lite0"),
        input_sizes={"efficientnet_lite0": 32},
        encoder_epochs=1,
        encoder_train_rows=256,
        teacher_model="tiny",
        teacher_steps=4,
        teacher_batch_size=16,
        teacher_warmup_steps=1,
        reference_rows=200,
        eval_train_rows=100,
        val_rows=100,
        eval_samples=100,
        num_projections=32,
        num_landmarks=32,
        kmeans_iters=2,
        bandwidth_scale=(0.5, 2.0),  # the multi-scale joint kernel path
        post=arm,
        scratch=arm,
        scratch_width=8,
        device="cpu",
        feature_batch_size=100,
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: intra-op threads cost more than they save
    try:
        root = tmp_path_factory.mktemp("fmnist-smoke")
        cfg = root / "recipe.json"
        cfg.write_text(json.dumps(smoke_recipe().to_dict()))
        assert main(["fmnist", "--config", str(cfg), "--out", str(root / "out")]) == 0
        yield Layout.of(root / "out")
    finally:
        torch.set_num_threads(threads)


def test_every_stage_finished_and_a_rerun_skips_them(run):
    for stage in STAGES:
        assert (run.stages / f"{stage}.json").is_file(), stage
    logs: list[str] = []
    assert run_pipeline(smoke_recipe(), run.root, log=logs.append) == {}
    assert all("skipped" in line for line in logs) and len(logs) == len(STAGES)


def test_a_different_recipe_is_refused(run):
    with pytest.raises(ValueError, match="different recipe"):
        run_pipeline(smoke_recipe().replace(seed=1), run.root, stages=["report"])


def test_references_are_joint_and_match_the_battery(run):
    from scipy.spatial.distance import pdist

    from repmatch.features import FeatureStore
    from repmatch.represent.joint import joint_features, one_hot_embedding
    from repmatch.references import load_references

    recipe = smoke_recipe()
    battery = make_battery(recipe, recipe.train_encoders, run)
    store = FeatureStore(run.reference_features(recipe))
    assert len(store) == recipe.reference_rows
    refs = load_references(run.references / "fmnist_classifier", torch.device("cpu"))
    # One reference per kernel scale, at scale × the median pairwise distance (scipy's) of the
    # joint reference features φ(x) ⊕ β·onehot(c) (eq. 4).
    joint = joint_features(store.read("fmnist_classifier"), one_hot_embedding(store.labels.long(), 10), recipe.beta)
    median = float(np.median(pdist(joint.double().numpy())))
    assert [r.bandwidth for r in refs] == pytest.approx([s * median for s in recipe.bandwidth_scale], rel=1e-5)
    for ref in refs:
        assert ref.fingerprint == joint_fingerprint(battery.fingerprints["fmnist_classifier"], recipe)
        assert ref.dim == store.dims["fmnist_classifier"] + 10
        assert ref.pool_size == recipe.reference_rows
    # The store's features are the battery's on the same images (an independent forward).
    from repmatch.data import open_dataset

    ds = open_dataset("fmnist:train")
    images = torch.stack([ds[i][0] for i in range(8)])
    with torch.no_grad():
        direct = battery(images)["fmnist_classifier"]
    torch.testing.assert_close(
        store.read("fmnist_classifier", rows=slice(0, 8)), direct, rtol=1e-4, atol=1e-4
    )
    assert store.labels[:8].tolist() == [int(ds[i][1]) for i in range(8)]


def test_samples_are_class_balanced_and_the_start_is_the_one_step_teacher(run):
    from repmatch.apps.fmnist.teacher import load_teacher
    from repmatch.generators import FewStepGenerator

    recipe = smoke_recipe()
    arrays = {m: np.load(run.generated / f"{m}.npz") for m in MODELS}
    for m, a in arrays.items():
        assert (
            a["images"].shape == (recipe.eval_samples, 1, 28, 28) and a["images"].dtype == np.uint8
        ), m
        assert np.bincount(a["labels"], minlength=10).tolist() == [recipe.eval_samples // 10] * 10
        assert (run.samples / f"{m}.png").is_file()
    # The untrained start is the teacher run in one Euler step, recomputed here.
    start = FewStepGenerator(load_teacher(run.teacher), 1, (1, 28, 28)).eval()
    noise = torch.randn((4, 1, 28, 28), generator=torch.Generator().manual_seed(recipe.seed + 1))
    labels = torch.arange(4) % 10
    with torch.no_grad():
        expect = (start(noise, labels).clamp(0, 1) * 255 + 0.5).floor().to(torch.uint8).numpy()
    assert np.array_equal(arrays["start_1step"]["images"][:4], expect)
    # Post-training moved the weights away from the start.
    post = load_model("irdm_post_1step", recipe, run, torch.device("cpu"))
    moved = [
        not torch.equal(a, b)
        for a, b in zip(post.state_dict().values(), start.state_dict().values())
    ]
    assert any(moved)


def test_eval_ratios_are_distance_over_stored_floor(run):
    floors = json.loads((run.train_features / "floors.json").read_text())
    results = json.loads((run.root / "results.json").read_text())
    recipe = smoke_recipe()
    assert set(MODELS) <= set(results)
    for m in MODELS:
        ev = json.loads((run.eval / m / "eval.json").read_text())
        assert ev["held_out"] == list(recipe.heldout_encoders)
        assert ev["num_samples"] == recipe.eval_samples
        sw = ev["sw"]
        for enc in recipe.encoders:
            assert sw["floor"][enc] == pytest.approx(floors["values"][enc])
            assert sw["per_encoder"][enc] == pytest.approx(sw["distance"][enc] / sw["floor"][enc])
        assert results[m]["mean"] == pytest.approx(
            np.mean([sw["per_encoder"][e] for e in recipe.encoders])
        )
        assert results[m]["held_out_mean"] == pytest.approx(
            np.mean([sw["per_encoder"][e] for e in recipe.heldout_encoders])
        )
    table = (run.root / "results.md").read_text()
    assert all(m in table for m in MODELS)
    assert "real test images" in table and "class agreement" in table


def _classifier_accuracy(run, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Independent of the encoder wrapper: the saved weights in a bare FmnistClassifier,
    normalised by hand."""
    from safetensors.torch import load_file

    from repmatch.apps.fmnist.encoders import FMNIST_MEAN, FMNIST_STD, FmnistClassifier

    net = FmnistClassifier()
    net.load_state_dict(load_file(str(run.encoders / "fmnist_classifier.safetensors")))
    net.eval()
    x = ((images.float() / 255.0 - FMNIST_MEAN) / FMNIST_STD).expand(-1, 3, -1, -1)
    with torch.no_grad():
        return float((net.logits(x).argmax(1) == labels).double().mean())


def test_class_agreement_is_the_classifier_head_on_samples_and_real_images(run):
    from repmatch.data import open_dataset

    results = json.loads((run.root / "results.json").read_text())
    assert set(results) == {*MODELS, "real_test", "noise"}
    for m in MODELS:
        arrays = np.load(run.generated / f"{m}.npz")
        want = _classifier_accuracy(run, torch.from_numpy(arrays["images"]), torch.from_numpy(arrays["labels"]))
        assert results[m]["class_agreement"] == pytest.approx(want, abs=1e-12)
        ev = json.loads((run.eval / m / "eval.json").read_text())
        assert ev["class_agreement"] == results[m]["class_agreement"]  # shown by the report
    test = open_dataset("fmnist:test")
    rows = range(smoke_recipe().val_rows)
    real = (torch.stack([test[i][0] for i in rows]) * 255).round().to(torch.uint8)
    want = _classifier_accuracy(run, real, torch.tensor([int(test[i][1]) for i in rows]))
    assert results["real_test"]["class_agreement"] == pytest.approx(want, abs=1e-12)
    assert want > 0.3  # a trained (if tiny) classifier, far above chance (0.1)


def _direct_features(run, name: str, images: torch.Tensor) -> torch.Tensor:
    """Features of ``images`` (float in [0, 1]) by a fresh battery's forward, not from a store."""
    battery = make_battery(smoke_recipe(), [name], run)
    with torch.no_grad():
        return battery(images)[name].double()


def _test_images(rows: range) -> tuple[torch.Tensor, torch.Tensor]:
    from repmatch.data import open_dataset

    test = open_dataset("fmnist:test")
    return torch.stack([test[i][0] for i in rows]), torch.tensor([int(test[i][1]) for i in rows])


def test_noise_level_is_two_disjoint_real_draws_against_pot(run):
    ot = pytest.importorskip("ot")
    from repmatch.features import FeatureStore
    from repmatch.metrics import random_projections

    recipe = smoke_recipe()
    n = recipe.eval_samples
    noise = json.loads((run.root / "results.json").read_text())["noise"]
    # Draw A: the floors' validation rows, test rows 0..n-1 (the test store); draw B: the next n
    # test rows, disjoint, stored once in features/test-noise.
    assert FeatureStore(run.test_features).data == f"fmnist:test[:{recipe.val_rows}]"
    assert FeatureStore(run.noise_features).data == f"fmnist:test[{n}:{2 * n}]"
    assert len(FeatureStore(run.noise_features)) == n and noise["draw_size"] == n == noise["requested_size"]
    floors = json.loads((run.train_features / "floors.json").read_text())["values"]
    images, _ = _test_images(range(n, 2 * n))
    train = FeatureStore(run.train_features)  # n rows: every score's train set
    for enc in recipe.encoders:
        assert noise["a"]["per_encoder"][enc] == 1.0  # A is the floors' own validation set
        b = _direct_features(run, enc, images)
        theta = random_projections(b.shape[1], recipe.num_projections, recipe.seed).numpy()
        sw = ot.sliced_wasserstein_distance(b.numpy(), train.read(enc).double().numpy(), projections=theta, p=2)
        assert noise["b"]["per_encoder"][enc] == pytest.approx(sw / floors[enc], rel=1e-3)
        assert noise["per_encoder"][enc] == pytest.approx(abs(sw / floors[enc] - 1), abs=1e-3)
    rb = noise["b"]["per_encoder"]
    assert noise["mean"] == pytest.approx(abs(np.mean([rb[e] for e in recipe.encoders]) - 1), rel=1e-9)
    assert noise["held_out_mean"] == pytest.approx(
        abs(np.mean([rb[e] for e in recipe.heldout_encoders]) - 1), rel=1e-9
    )
    table = (run.root / "results.md").read_text()
    assert f"| noise ± (two real draws of {n}) | " in table and "disjoint draws" in table


def _diversity_oracle(gen: np.ndarray, gen_labels: np.ndarray, real: np.ndarray, real_labels: np.ndarray) -> float:
    from scipy.spatial.distance import pdist

    classes = sorted(set(gen_labels.tolist()) & set(real_labels.tolist()))
    return float(np.mean([pdist(gen[gen_labels == c]).mean() / pdist(real[real_labels == c]).mean() for c in classes]))


def test_diversity_is_the_within_class_spread_against_real_test_images(run):
    recipe = smoke_recipe()
    n, enc = recipe.eval_samples, recipe.diversity_encoder
    assert enc == "fmnist_autoencoder"
    results = json.loads((run.root / "results.json").read_text())
    real_a, labels_a = _test_images(range(n))
    real_a = _direct_features(run, enc, real_a).numpy()
    for m in MODELS:
        arrays = np.load(run.generated / f"{m}.npz")
        gen = _direct_features(run, enc, torch.from_numpy(arrays["images"]).float() / 255).numpy()
        want = _diversity_oracle(gen, arrays["labels"], real_a, labels_a.numpy())
        assert results[m]["diversity"] == pytest.approx(want, rel=1e-4)
        assert json.loads((run.eval / m / "eval.json").read_text())["diversity"] == results[m]["diversity"]
    real_b, labels_b = _test_images(range(n, 2 * n))
    want = _diversity_oracle(_direct_features(run, enc, real_b).numpy(), labels_b.numpy(), real_a, labels_a.numpy())
    assert results["real_test"]["diversity"] == pytest.approx(want, rel=1e-4)
    assert 0.7 < results["real_test"]["diversity"] < 1.3  # a second real draw: about the real spread


def test_eval_extracts_each_set_once_and_reports_its_rate(run):
    recipe = smoke_recipe()
    info = json.loads((run.stages / "eval.json").read_text())["info"]["throughput"]
    n = recipe.eval_samples
    assert info["images_scored"] == len(MODELS) * n
    # The stage encoded each sample set and the second real draw once, nothing else.
    assert info["rows_extracted"] == len(MODELS) * n + n
    assert info["images_per_s"] == pytest.approx(info["images_scored"] / info["seconds"])
    assert info["extract_images_per_s"] > 0 and info["inference_backend"] == "torch"
    for m in MODELS:  # the floors stage's floors, never recomputed per model
        assert json.loads((run.eval / m / "eval.json").read_text())["floors"].startswith("stored floors")
        assert not (run.eval / m / "floors.json").exists()


def test_inference_backend_runs_open_nsfw_in_onnxruntime_outside_training(run):
    pytest.importorskip("onnxruntime")
    recipe = smoke_recipe().replace(
        heldout_encoders=("fmnist_autoencoder", "open_nsfw"), input_sizes={}, inference_backend="onnxruntime"
    )
    kinds = {
        training: {
            n: type(e.backbone).__name__
            for n, e in make_battery(recipe, ["open_nsfw", "fmnist_classifier"], run, training=training).encoders.items()
        }
        for training in (False, True)
    }
    assert kinds[False] == {"open_nsfw": "OnnxRuntimeFeatures", "fmnist_classifier": "FmnistClassifier"}
    assert kinds[True] == {"open_nsfw": "OnnxFeatures", "fmnist_classifier": "FmnistClassifier"}


def test_recipe_fields_of_the_evaluation():
    with pytest.raises(ValueError, match="onnxruntime"):
        smoke_recipe().replace(inference_backend="onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="inference_backend"):
        smoke_recipe().replace(inference_backend="tvm")
    with pytest.raises(ValueError, match="diversity_encoder 'open_nsfw' is not in the battery"):
        smoke_recipe().replace(diversity_encoder="open_nsfw")
    assert smoke_recipe().replace(diversity_encoder=None).diversity_encoder is None
    # The CPU presets score open_nsfw in onnxruntime; the GPU preset stays in torch.
    assert [get_recipe(p).inference_backend for p in ("fmnist-tiny", "fmnist-cpu", "fmnist")] == [
        "onnxruntime", "onnxruntime", "torch"]


def test_a_run_saved_before_a_recipe_field_existed_resumes(run, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(run.root, copy)
    saved = json.loads((copy / "config.json").read_text())
    del saved["diversity_encoder"], saved["inference_backend"]  # fields added later, at default
    (copy / "config.json").write_text(json.dumps(saved))
    assert run_pipeline(smoke_recipe(), copy, log=lambda _: None) == {}


def test_heldout_encoders_are_monitored_during_training(run):
    recipe = smoke_recipe()
    for arm in ("post", "scratch"):
        lines = [json.loads(x) for x in (run.arm(arm) / "stats.jsonl").read_text().splitlines()]
        held = [x["heldout_excess"] for x in lines if "heldout_excess" in x]
        assert held and set(held[-1]) == set(recipe.heldout_encoders)
        assert all(np.isfinite(v) for v in held[-1].values())


def test_report_has_grids_table_and_curves(run):
    from repmatch.apps.fmnist.reporting import model_names
    from repmatch.data import FashionMNIST
    from repmatch.report.html import load_curves

    page = (run.root / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # self-contained
    names = model_names(smoke_recipe())
    # Models in words, every grid's rows named by class.
    captions = re.findall(r"<figcaption>([^<]*)<code>([^<]*)</code></figcaption>", page)
    assert sorted(captions) == sorted((names[m], m) for m in MODELS)
    rows = re.findall(r'<ol class="rows">(.*?)</ol>', page)
    assert rows == ["".join(f"<li>{c}</li>" for c in FashionMNIST.classes)] * len(MODELS)
    table = re.search(r'<table id="sw-table">.*?</table>', page, re.DOTALL).group(0)
    assert table.count("<tr>") == len(MODELS) + 1
    # The real test images: the floors' validation set, with their class agreement and the
    # diversity of a second real draw; every model's diversity beside its class agreement.
    results = json.loads((run.root / "results.json").read_text())
    real = results["real_test"]
    ref = re.search(r'<tr class="reference">(.*?)</tr>', table).group(1)
    assert re.findall(r"<td>([^<]*)</td>", ref) == ["Real test images"] + ["1.000"] * 5 + [
        f"{real['class_agreement']:.3f}", f"{real['diversity']:.3f}"
    ]
    assert "diversity<sup>§</sup>" in table and "Within-class diversity" in page
    for m in MODELS:
        row = re.search(rf'<tr><td><span title="{m}">.*?</tr>', table).group(0)
        cells = re.findall(r"<td[^>]*>([^<]*)</td>", row)
        assert cells[-2:] == [f"{results[m]['class_agreement']:.3f}", f"{results[m]['diversity']:.3f}"]
    # Both arms' own logs, named, their raw distances per encoder.
    assert re.search(r'<img alt="training curves: [^"]*raw distance', page)
    score = next(p for p in load_curves(run.root).panels if p.key == "score")
    assert {(s.run, s.label) for s in score.series} == {
        (names["irdm_post_1step"], "fmnist_classifier"),
        (names["irdm_scratch_1step"], "fmnist_classifier"),
    }
    for s in score.series:
        arm = "post" if s.run == names["irdm_post_1step"] else "scratch"
        logged = [json.loads(x) for x in (run.arm(arm) / "stats.jsonl").read_text().splitlines()]
        assert s.ys == [r["score"]["fmnist_classifier"] for r in logged if "score" in r]


def test_report_renders_in_headless_chromium(run, tmp_path):
    probe = probe_report(run.root / "report.html", tmp_path)
    assert probe["rows"] == len(MODELS)
    assert len(probe["imgs"]) == len(MODELS) + 1  # four sample grids and the curves
    assert all(i["complete"] and i["w"] > 0 and i["h"] > 0 for i in probe["imgs"]), probe
    assert all(len(f["rows"]) == 10 and f["rows"][0] == "T-shirt/top" for f in probe["figures"])
    assert "iRDM post-trained, 1 step" in probe["models"] and len(probe["refs"]) == 1


def test_recipe_validation():
    with pytest.raises(ValueError, match="both trained against and held out"):
        smoke_recipe().replace(heldout_encoders=("fmnist_classifier",))
    with pytest.raises(ValueError, match="input_sizes"):
        smoke_recipe().replace(input_sizes={"open_nsfw": 64})
    with pytest.raises(ValueError, match="preset"):
        get_recipe("nope")
    assert get_recipe("fmnist").eval_samples == 10000
    assert len(get_recipe("fmnist").heldout_encoders) >= 2


@pytest.mark.parametrize("name", ["fmnist-tiny", "fmnist-cpu", "fmnist"])
def test_a_recipe_round_trips_and_its_arms_are_loop_configs(name):
    """The recipe's arms are the loop settings the arms' runs use, held once: the arm's
    TrainConfig is its LoopConfig plus the run fields."""
    from repmatch.apps.fmnist.task import arm_preset
    from repmatch.train import LoopConfig

    recipe = get_recipe(name)
    assert FmnistRecipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe
    for arm in ("post", "scratch"):
        config = arm_preset(name, arm=arm)
        loop = {f: getattr(config, f) for f in LoopConfig.__dataclass_fields__}
        assert LoopConfig(**loop) == getattr(recipe, arm)
    assert recipe.monitor_heldout == (name == "fmnist")


def test_fmnist_task_section_is_checked(tmp_path):
    from repmatch.apps.fmnist.task import FmnistArmTask, arm_preset, fmnist_task

    config = arm_preset("fmnist-tiny", pipeline_dir=str(tmp_path))
    assert config.task == FmnistArmTask(arm="post", pipeline_dir=str(tmp_path))
    with pytest.raises(ValueError, match="task.arm"):
        FmnistArmTask(arm="distill", pipeline_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="pipeline_dir: .* has no recipe"):
        config.task.build(config, torch.device("cpu"))
    with pytest.raises(ValueError, match="arm"):
        fmnist_task(get_recipe("fmnist-tiny"), Layout.of(tmp_path), "distill")


def test_an_arm_config_rebuilds_its_task_from_the_job_directory(run, app_tasks):
    """The arm's saved config.json names the job directory, not the recipe: its task is built
    from the recipe the job saved there, the same task the pipeline trained."""
    from repmatch.apps.fmnist.task import FmnistArmTask, fmnist_task
    from repmatch.train import TrainConfig

    saved = json.loads((run.arm("post") / "config.json").read_text())
    assert saved["task"] == {"name": "fmnist", "arm": "post", "pipeline_dir": str(run.root)}
    config = TrainConfig.from_dict(saved)
    assert config.task == FmnistArmTask(arm="post", pipeline_dir=str(run.root))
    built = config.task.build(config, torch.device("cpu"))
    direct = fmnist_task(smoke_recipe(), run, "post")(config, torch.device("cpu"))
    assert sorted(built.distances) == sorted(direct.distances) and built.floors == direct.floors
    assert built.joint_beta == direct.joint_beta == smoke_recipe().beta


def test_eval_rescores_a_rewritten_sample_file(run, tmp_path):
    copy = tmp_path / "out"
    shutil.copytree(run.root, copy)
    gen = copy / "generated"
    shutil.copyfile(gen / "teacher_4step.npz", gen / "start_1step.npz")  # new content, same path
    run_pipeline(smoke_recipe(), copy, stages=["eval"], force=["eval"], log=lambda _: None)
    results = json.loads((copy / "results.json").read_text())
    # Identical images score identically: the stale feature store of the old file was dropped.
    assert results["start_1step"] == results["teacher_4step"]
    before = json.loads((run.root / "results.json").read_text())
    assert before["start_1step"] != before["teacher_4step"]


def test_eval_without_the_classifier_skips_class_agreement(run, tmp_path):
    # A recipe whose battery lacks fmnist_classifier has no head to judge classes with: the
    # SW panel is still computed, the class-agreement column is left out (not a crash).
    import shutil

    from repmatch.apps.fmnist.pipeline import stage_eval

    out = tmp_path / "out"
    shutil.copytree(run.root, out)
    (out / "encoders" / "fmnist_classifier.safetensors").unlink()  # such a job never trains it
    recipe = smoke_recipe().replace(train_encoders=("fmnist_autoencoder",), heldout_encoders=("efficientnet_lite0",))
    results = stage_eval(recipe, Layout.of(out), torch.device("cpu"))
    assert set(results) == {*MODELS, "real_test", "noise", "throughput"}
    assert "class_agreement" not in results["real_test"]
    for m in MODELS:
        assert set(results[m]["per_encoder"]) == {"fmnist_autoencoder", "efficientnet_lite0"}
        assert "class_agreement" not in results[m]
        assert "class_agreement" not in json.loads((out / "eval" / m / "eval.json").read_text())
    # The extra real test rows were re-encoded by this battery (their old store had another).
    assert results["throughput"]["rows_extracted"] == 4 * recipe.eval_samples + recipe.eval_samples


def test_seeds_rerun_the_arms_on_the_shared_stages_and_summarise(run, tmp_path, capsys):
    # `repmatch fmnist --seeds 0,1` on a finished job: seed 0 is the job itself (every stage
    # skipped), seed 1 reruns only the arms, on copies of the job's shared stages.
    out = tmp_path / "job"
    shutil.copytree(run.root, out)
    cfg = tmp_path / "recipe.json"
    cfg.write_text(json.dumps(smoke_recipe().to_dict()))
    argv = ["fmnist", "--config", str(cfg), "--out", str(out), "--seeds", "0,1", "--threads", "1", "--no-progress"]
    assert main(argv) == 0
    seeded = tmp_path / "job-seed1"
    saved = FmnistRecipe.from_dict(json.loads((seeded / "config.json").read_text()))
    assert saved == smoke_recipe().replace(seed=1)
    log = capsys.readouterr().out
    assert "[teacher] running" not in log and log.count("[post] running") == 1
    for stage in ("encoders", "teacher", "features", "references"):
        assert (seeded / "stages" / f"{stage}.json").read_bytes() == (out / "stages" / f"{stage}.json").read_bytes()
    teacher = "teacher/teacher.safetensors"
    assert (seeded / teacher).read_bytes() == (out / teacher).read_bytes()
    results = [json.loads((d / "results.json").read_text()) for d in (out, seeded)]
    # Another seed: other arm weights, sample noise and projections, so other ratios.
    assert results[0]["irdm_post_1step"]["per_encoder"] != results[1]["irdm_post_1step"]["per_encoder"]
    # The floors depend on the projections: the seed draws its own once, which every model's
    # evaluation then uses as stored.
    assert log.count("[floors] running") == 1
    floors = [json.loads((d / "features" / "train" / "floors.json").read_text()) for d in (out, seeded)]
    assert (floors[0]["seed"], floors[1]["seed"]) == (0, 1) and floors[0]["values"] != floors[1]["values"]
    for m in MODELS:
        assert not (seeded / "eval" / m / "floors.json").exists()

    summary = json.loads((out / "seeds.json").read_text())
    assert summary["seeds"] == [0, 1] and set(summary["models"]) == set(MODELS)
    table = (out / "seeds.md").read_text()
    for model in MODELS:
        for key in ("mean", "held_out_mean", "class_agreement", "diversity"):
            values = [r[model][key] for r in results]
            got = summary["models"][model][key]
            assert got["values"] == values
            assert got["mean"] == pytest.approx(np.mean(values), rel=1e-12)
            assert got["sd"] == pytest.approx(np.std(values, ddof=1), rel=1e-12)
        mean = summary["models"][model]["mean"]
        assert f"| {model} | {mean['mean']:.3f} ± {mean['sd']:.3f} |" in table

    assert main(argv) == 0  # a rerun resumes: nothing left to run in either directory
    assert "running" not in capsys.readouterr().out.replace("[threads]", "")


def test_seeds_are_checked_before_any_work(tmp_path, capsys):
    cfg = tmp_path / "recipe.json"
    cfg.write_text(json.dumps(smoke_recipe().to_dict()))
    base = ["fmnist", "--config", str(cfg), "--out", str(tmp_path / "job")]
    assert main([*base, "--seeds", "0,2", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["recipe"]["seed"] == 0
    for bad in (["--seeds", "3"], ["--seeds", "1,1"], ["--seeds", "0,1", "--stage", "eval"]):
        assert main([*base, *bad, "--dry-run"]) == 2
        assert "seeds" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--seeds", "0,x"])
    assert not (tmp_path / "job").exists()
