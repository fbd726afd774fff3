"""A run's references: one Nyström reference per encoder (and kernel scale), frozen once over a
feature store, with the controller's real floors — what ``repmatch references`` writes and what
a training task reads.

Per encoder ``φ`` the pool is ``φ(x_j)``, or the joint features of eq. 4 when the run is
conditional, ``Φ(x_j, c_j) = φ(x_j) ⊕ β·τ(c_j)``: ``τ(c) = onehot(c)`` for the store's class
labels (:class:`ClassCondition`), or a frozen text encoder's embedding of each image's caption
(:class:`TextCondition`, e.g. ``minilm_l6``). The kernel is a sum of Gaussians at
``σ_s = s × median heuristic`` of the pool for each ``bandwidth_scale`` ``s``; each ``σ_s`` has its
own reference (``scale<k>/``), all sharing one set of landmarks. The real floor of encoder ``φ``
is the same eq.-3 estimator on real validation features, ``b_φ = mean_k MMD²(val_k, ref_φ)`` over
disjoint validation batches ``val_k`` of the generator's batch size (the biased repulsion
depends on it).

Directory layout (built beside ``DIR`` and swapped into place whole, so a reader sees the
complete old set or the complete new one; see :func:`repmatch.io.atomic_directory`)::

    DIR/references.json           format, encoders (fingerprint, scales, bandwidths, pool),
                                  condition, floors, SHA-256 of the conditions and captions
    DIR/<encoder>/scale<k>/       one NystromReference per kernel scale
    DIR/conditions.safetensors    the pool's labels (class) or caption embeddings (text): the
                                  training condition pool mirrors them (App. E.1)
    DIR/captions.json             the pool's captions (text conditioning)
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from ..io import (
    atomic_directory,
    atomic_save_safetensors,
    atomic_write_json,
    check_replaceable,
    file_sha256,
    recover_directory,
)
from ..progress import bar
from ..validate import check_nonnegative_int, check_positive, check_scales
from ..compare import NystromReference, joint_bandwidths, median_bandwidth, mmd_nystrom_loss
from ..compare.kernels import multiscale_bandwidths
from ..data import ImageFolder, captions_in_order, open_dataset, read_captions
from ..features import FeatureStore
from ..represent import TextEncoder, create, one_hot_embedding
from .task import floor_batches

FORMAT = "repmatch.references/1"
MANIFEST = "references.json"
CONDITIONS = "conditions.safetensors"
CAPTIONS = "captions.json"
#: Disjoint validation batches below which a floor estimate is flagged as unreliable.
MIN_FLOOR_BATCHES = 8
#: Relative standard error of a floor above which it is flagged as unreliable.
MAX_FLOOR_REL_STDERR = 0.1


@dataclass(frozen=True, kw_only=True)
class ClassCondition:
    """Class conditioning of eq. 4: ``τ(c) = onehot(c)`` scaled by ``beta``."""

    num_classes: int
    beta: float

    def __post_init__(self) -> None:
        check_positive("num_classes", self.num_classes, integer=True)
        check_positive("beta", self.beta)

    def fingerprint(self, image_fingerprint: str) -> str:
        """The joint feature space ``φ ⊕ β·onehot(c)`` (names the reference)."""
        return f"{image_fingerprint}+onehot{self.num_classes}*{self.beta:g}"

    def embed(self, labels: torch.Tensor) -> torch.Tensor:
        """``τ(c) = onehot(c)``: labels ``(N,)`` → ``(N, num_classes)`` float32."""
        return one_hot_embedding(labels.long(), self.num_classes)

    def join(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``φ(x) ⊕ β·onehot(c)``: ``(N, D)``, ``(N,)`` → ``(N, D + num_classes)``."""
        return torch.cat([features, self.beta * self.embed(labels).to(features)], dim=1)


@dataclass(frozen=True, kw_only=True)
class TextCondition:
    """Text conditioning of eq. 4: ``τ(c)`` is a frozen text encoder's embedding of the caption
    (computed once, :func:`embed_captions`), scaled by ``beta``."""

    encoder: str
    encoder_fingerprint: str
    dim: int
    beta: float

    def __post_init__(self) -> None:
        check_positive("dim", self.dim, integer=True)
        check_positive("beta", self.beta)

    def fingerprint(self, image_fingerprint: str) -> str:
        """The joint feature space ``φ ⊕ β·τ_text(c)`` (names the reference)."""
        return f"{image_fingerprint}+{self.encoder_fingerprint}*{self.beta:g}"

    def embed(self, embeddings: torch.Tensor) -> torch.Tensor:
        """The caption embeddings themselves ``(N, dim)`` (they are the condition rows)."""
        if embeddings.ndim != 2 or embeddings.shape[1] != self.dim:
            raise ValueError(f"caption embeddings must have shape (N, {self.dim}), got {tuple(embeddings.shape)}")
        return embeddings.float()

    def join(self, features: torch.Tensor, embeddings: torch.Tensor) -> torch.Tensor:
        """``φ(x) ⊕ β·τ(c)``: ``(N, D)``, ``(N, dim)`` → ``(N, D + dim)``."""
        return torch.cat([features, self.beta * self.embed(embeddings).to(features)], dim=1)


Condition = ClassCondition | TextCondition


@torch.no_grad()
def embed_captions(captions: Sequence[str], encoder: str = "minilm_l6", *, batch_size: int = 256,
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, TextCondition]:
    """``(embeddings (N, E) float32 on the CPU, the condition at β = 1)`` of ``captions`` under
    the text encoder ``encoder``; rescale with ``dataclasses.replace(condition, beta=...)``."""
    text = create(encoder, device=device)
    if not isinstance(text, TextEncoder):
        raise ValueError(f"encoder must be a text encoder (modality 'text'), got {encoder!r}")
    chunks = [text(list(captions[i : i + batch_size])).float().cpu() for i in range(0, len(captions), batch_size)]
    embeddings = torch.cat(chunks)
    return embeddings, TextCondition(encoder=encoder, encoder_fingerprint=text.spec.fingerprint,
                                     dim=int(embeddings.shape[1]), beta=1.0)


def build_references(
    pool: torch.Tensor | FeatureStore,
    *,
    encoder: str | None = None,
    fingerprint: str,
    labels: torch.Tensor | None = None,
    condition: Condition | None = None,
    num_landmarks: int = 4096,
    bandwidth_scale: float | Sequence[float] = 1.0,
    seed: int = 0,
    kmeans_iters: int = 10,
    chunk_rows: int = 16384,
    device: torch.device | str | None = None,
) -> tuple[NystromReference, ...]:
    """One reference per kernel scale over ``pool`` (see module doc).

    ``pool`` is an in-memory ``(N, D)`` tensor, or a :class:`FeatureStore` with ``encoder``
    naming its features, read in blocks of ``chunk_rows`` rows so the pool never has to fit in
    memory. With a ``condition``, ``labels`` holds each row's condition: class labels ``(N,)``
    (a store's own labels by default) or caption embeddings ``(N, E)`` for text. The
    median heuristic of the streamed path reads the same seeded 4096-row subsample that
    :func:`repmatch.compare.median_bandwidth` draws, so both paths agree on ``σ``.
    """
    scale_tuple = check_scales_tuple(bandwidth_scale)
    check_positive("chunk_rows", chunk_rows, integer=True)
    check_nonnegative_int("seed", seed)
    if condition is not None:
        fingerprint = condition.fingerprint(fingerprint)
    if isinstance(pool, torch.Tensor):
        if condition is not None:
            if labels is None:
                raise ValueError("labels are required with a condition (the pool's classes)")
            pool = condition.join(pool, labels)
        return NystromReference.build_multiscale(
            pool,
            num_landmarks=min(num_landmarks, pool.shape[0]),
            bandwidths=joint_bandwidths(pool, scale_tuple, seed=seed),
            seed=seed, fingerprint=fingerprint, kmeans_iters=kmeans_iters, device=device,
        )
    if encoder is None:
        raise ValueError("encoder must name the store's features when pool is a FeatureStore")
    store = pool
    store_labels = labels
    if condition is not None and store_labels is None:
        if not isinstance(condition, ClassCondition):
            raise ValueError("labels: the caption embeddings of the store's rows are required for text conditioning")
        store_labels = store.labels
        if int(store_labels.min()) < 0:
            raise ValueError(f"the store {store.root} has unlabelled rows; class conditioning needs labels")
    if store_labels is not None and store_labels.shape[0] != len(store):
        raise ValueError(f"labels has {store_labels.shape[0]} rows, the store {len(store)}")

    def rows(index: torch.Tensor | slice) -> torch.Tensor:
        feats = store.read(encoder, rows=index)
        if condition is None or store_labels is None:
            return feats
        return condition.join(feats, store_labels[index])

    def chunks() -> Iterator[torch.Tensor]:
        for start in range(0, len(store), chunk_rows):
            yield rows(slice(start, min(start + chunk_rows, len(store))))

    n = len(store)
    # median_bandwidth's own subsample (randperm(n, seed)[:4096]), read by row index.
    sub = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:4096] if n > 4096 else slice(0, n)
    sigma = median_bandwidth(rows(sub), seed=seed)
    return NystromReference.build_multiscale(
        chunks,
        num_landmarks=min(num_landmarks, n),
        bandwidths=multiscale_bandwidths(sigma, scale_tuple),
        seed=seed, fingerprint=fingerprint, kmeans_iters=kmeans_iters, chunk_size=chunk_rows,
        device=device,
    )


def save_references(refs: Sequence[NystromReference], directory: str | Path) -> None:
    """Save one encoder's references, one per kernel scale, as ``directory/scale<k>``.

    The directory is built beside ``directory`` and swapped into place whole
    (:func:`repmatch.io.atomic_directory`): a crash or a full disk leaves the previous
    references intact, and a rerun with fewer scales leaves no stale one. An existing
    directory without ``scale0`` (not references) is refused, not replaced.
    """
    with atomic_directory(directory, replaces="scale0") as tmp:
        for k, ref in enumerate(refs):
            ref.save(tmp / f"scale{k}")


def load_references(directory: str | Path, device: torch.device | str = "cpu") -> tuple[NystromReference, ...]:
    """The references :func:`save_references` wrote, in scale order."""
    directory = Path(directory)
    recover_directory(directory)
    paths = sorted(directory.glob("scale*"), key=lambda p: int(p.name[len("scale"):]))
    if not paths:
        raise FileNotFoundError(f"no references in {directory}: build them first (repmatch references)")
    return tuple(NystromReference.load(p, device=device) for p in paths)


def reference_distance(refs: Sequence[NystromReference], fingerprint: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The eq.-3 loss ``features (B, D') -> scalar`` against ``refs`` (summed over scales), which
    refuses features of another space (``fingerprint``)."""
    for ref in refs:
        if ref.fingerprint != fingerprint:
            raise ValueError(
                f"a reference was built for {ref.fingerprint!r}, but the encoder gives "
                f"{fingerprint!r}; rebuild the references"
            )
    refs = tuple(refs)

    def distance(features: torch.Tensor) -> torch.Tensor:
        return mmd_nystrom_loss(features, refs, fingerprint=fingerprint)

    return distance


@dataclass(frozen=True, kw_only=True)
class FloorEstimate:
    """Real floors ``b_φ`` at one batch size, with their reliability."""

    batch_size: int
    num_val: int
    values: dict[str, float]
    rel_stderr: dict[str, float]

    @property
    def num_batches(self) -> int:
        return self.num_val // min(self.batch_size, self.num_val)

    def warnings(self) -> list[str]:
        """Why these floors may be unreliable (empty when they are not)."""
        out = []
        if self.num_batches < MIN_FLOOR_BATCHES:
            out.append(
                f"the validation set ({self.num_val} rows) holds {self.num_batches} batch(es) of "
                f"{self.batch_size}; at least {MIN_FLOOR_BATCHES} ({MIN_FLOOR_BATCHES * self.batch_size} "
                "rows) are needed for a reliable floor"
            )
        for name, err in sorted(self.rel_stderr.items()):
            # One batch has no spread to measure: the batch-count warning above covers it.
            if math.isfinite(err) and err > MAX_FLOOR_REL_STDERR:
                out.append(
                    f"the floor of {name} has a relative standard error of {err:.0%} "
                    f"(> {MAX_FLOOR_REL_STDERR:.0%}): a floor this noisy can gate the encoder off early"
                )
        return out


def real_floors(
    distances: Mapping[str, Callable[[torch.Tensor], torch.Tensor]],
    val_features: Mapping[str, torch.Tensor],
    batch_size: int,
) -> FloorEstimate:
    """:func:`repmatch.train.estimate_floors` with the spread across validation batches."""
    values, rel = {}, {}
    for name, per in floor_batches(distances, val_features, batch_size).items():
        mean = sum(per) / len(per)
        values[name] = mean
        if len(per) < 2 or not mean:
            rel[name] = math.inf
            continue
        sd = math.sqrt(sum((v - mean) ** 2 for v in per) / (len(per) - 1))
        rel[name] = sd / math.sqrt(len(per)) / abs(mean)
    num_val = min(int(v.shape[0]) for v in val_features.values())
    return FloorEstimate(batch_size=batch_size, num_val=num_val, values=values, rel_stderr=rel)


@dataclass(frozen=True, kw_only=True)
class References:
    """A references directory, loaded: per encoder its distance, fingerprint and real floor."""

    root: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, root: str | Path) -> References:
        root = Path(root)
        recover_directory(root)
        path = root / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(
                f"references: {path} does not exist; build it with `repmatch references --features STORE --out {root}`"
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"references: {path} is not valid JSON ({exc}); rebuild the references") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
            raise ValueError(f"references: {path} has format {found!r}, expected {FORMAT!r}")
        return cls(root=root, manifest=manifest)

    def _file(self, name: str) -> Path:
        """``root/name``, checked against the SHA-256 that ``references.json`` records for it."""
        path = self.root / name
        expected = self.manifest.get("sha256", {}).get(name)
        if not path.is_file():
            raise FileNotFoundError(f"references: {path} is missing; rebuild the references")
        if expected is not None and file_sha256(path) != expected:
            raise ValueError(
                f"references: {path} is not the file {self.root / MANIFEST} was written with "
                "(SHA-256 differs: damaged or replaced); rebuild the references"
            )
        return path

    @property
    def encoders(self) -> list[str]:
        return list(self.manifest["encoders"])

    @property
    def condition(self) -> Condition | None:
        c = self.manifest.get("condition")
        if c is None:
            return None
        fields = {k: v for k, v in c.items() if k != "kind"}
        return ClassCondition(**fields) if c["kind"] == "class" else TextCondition(**fields)

    def conditions(self) -> torch.Tensor:
        """Each pool row's condition: labels ``(N,)`` (class) or caption embeddings ``(N, E)``."""
        tensors = load_file(str(self._file(CONDITIONS)))
        return tensors["labels"] if "labels" in tensors else tensors["embeddings"]

    def captions(self) -> list[str]:
        """The pool's captions (text conditioning)."""
        return list(json.loads(self._file(CAPTIONS).read_text(encoding="utf-8")))

    def distance(self, encoder: str, image_fingerprint: str, device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
        """The eq.-3 loss of ``encoder`` (whose battery fingerprint is ``image_fingerprint``)."""
        if encoder not in self.manifest["encoders"]:
            raise ValueError(f"references in {self.root} cover {self.encoders}, not {encoder!r}")
        cond = self.condition
        expected = image_fingerprint if cond is None else cond.fingerprint(image_fingerprint)
        return reference_distance(load_references(self.root / encoder, device), expected)

    def floors(self, encoders: Sequence[str]) -> dict[str, float] | None:
        """Stored real floors of ``encoders``, or ``None`` when none were measured."""
        floors = self.manifest.get("floors")
        if floors is None:
            return None
        missing = sorted(set(encoders) - set(floors["values"]))
        if missing:
            raise ValueError(f"references in {self.root} have no floor for {missing}; rerun with --val")
        return {name: float(floors["values"][name]) for name in encoders}

    @property
    def floor_batch_size(self) -> int | None:
        floors = self.manifest.get("floors")
        return None if floors is None else int(floors["batch_size"])


def write_manifest(
    root: str | Path,
    *,
    encoders: Mapping[str, Mapping[str, Any]],
    condition: Condition | None,
    labels: torch.Tensor | None,
    floors: FloorEstimate | None,
    settings: Mapping[str, Any],
    captions: Sequence[str] | None = None,
) -> Path:
    """Write ``references.json`` (and the pool's conditions) for the references under ``root``.

    The manifest, written last, records the SHA-256 of the conditions and captions files,
    which :class:`References` checks on reading them. :func:`build_reference_dir` calls this
    inside the directory it swaps into place whole, so a reader never sees a partial set.
    """
    root = Path(root)
    written = []
    if condition is not None:
        if labels is None:
            raise ValueError("labels are required with a condition")
        key, rows = (("labels", labels.long()) if isinstance(condition, ClassCondition)
                     else ("embeddings", labels.float()))
        written.append(atomic_save_safetensors(root / CONDITIONS, {key: rows.contiguous()}))
    if captions is not None:
        written.append(atomic_write_json(root / CAPTIONS, list(captions)))
    kind = {ClassCondition: "class", TextCondition: "text"}
    manifest = {
        "sha256": {p.name: file_sha256(p) for p in written},
        "format": FORMAT,
        "encoders": {k: dict(v) for k, v in encoders.items()},
        "condition": None if condition is None else {"kind": kind[type(condition)], **asdict(condition)},
        "floors": None if floors is None else {
            "batch_size": floors.batch_size, "num_val": floors.num_val,
            "num_batches": floors.num_batches, "values": floors.values,
            "rel_stderr": {k: (v if math.isfinite(v) else None) for k, v in floors.rel_stderr.items()},
        },
        "settings": dict(settings),
    }
    return atomic_write_json(root / MANIFEST, manifest)


def warn_floors(estimate: FloorEstimate) -> None:
    for message in estimate.warnings():
        warnings.warn(message, RuntimeWarning, stacklevel=2)


def build_reference_dir(
    train: str | Path,
    out: str | Path,
    *,
    val: str | Path | None = None,
    encoders: Sequence[str] | None = None,
    condition: Condition | None = None,
    conditions: torch.Tensor | None = None,
    val_conditions: torch.Tensor | None = None,
    captions: Sequence[str] | None = None,
    num_landmarks: int = 4096,
    bandwidth_scale: float | Sequence[float] = 1.0,
    floor_batch_size: int = 256,
    seed: int = 0,
    kmeans_iters: int = 10,
    chunk_rows: int = 16384,
    device: torch.device | str = "cpu",
    progress: bool = False,
) -> References:
    """Build ``out`` (see module doc) from the feature store ``train``: one set of references per
    encoder in ``encoders`` (default: all of the store's), and, given the feature store ``val``,
    the real floors at ``floor_batch_size`` (the generator's batch size), warning when the
    validation set is too small for them to be reliable.

    With a ``condition``, ``conditions``/``val_conditions`` hold each row's condition (class
    labels, by default the stores' own; caption embeddings for text, required) and
    ``captions`` the training rows' captions, saved for sampling. ``progress`` draws a bar over
    the encoders (and the floors)."""
    check_positive("floor_batch_size", floor_batch_size, integer=True)
    check_replaceable(out, MANIFEST)  # before the work, not after
    store = FeatureStore(train)
    names = list(store.names) if encoders is None else list(encoders)
    unknown = sorted(set(names) - set(store.names))
    if unknown or not names:
        raise ValueError(f"encoders must be a non-empty subset of the store's {list(store.names)}, got {names}")
    val_store = FeatureStore(val) if val is not None else None
    if val_store is not None:
        for name in names:
            if name not in val_store.fingerprints or val_store.fingerprints[name] != store.fingerprints[name]:
                raise ValueError(
                    f"val: the store {val_store.root} has no features of {name} in the space of "
                    f"{store.root} (fingerprint {store.fingerprints[name]})"
                )
    entries: dict[str, dict[str, Any]] = {}
    distances = {}
    built = {}
    steps = bar(total=len(names) + (val_store is not None), desc="references", unit="step", enabled=progress)
    for name in names:
        steps.set_postfix_str(name)
        refs = build_references(
            store, encoder=name, fingerprint=store.fingerprints[name], condition=condition,
            labels=conditions,
            num_landmarks=num_landmarks, bandwidth_scale=bandwidth_scale, seed=seed,
            kmeans_iters=kmeans_iters, chunk_rows=chunk_rows, device=device,
        )
        built[name] = refs
        fingerprint = store.fingerprints[name] if condition is None else condition.fingerprint(store.fingerprints[name])
        entries[name] = {
            "fingerprint": fingerprint, "image_fingerprint": store.fingerprints[name],
            "scales": len(refs), "bandwidths": [r.bandwidth for r in refs],
            "pool": refs[0].pool_size, "landmarks": refs[0].num_landmarks,
        }
        distances[name] = reference_distance(refs, fingerprint)
        steps.update()
    estimate = None
    if val_store is not None:
        val_rows = val_conditions
        if isinstance(condition, ClassCondition) and val_rows is None:
            val_rows = val_store.labels
        if condition is not None and val_rows is None:
            raise ValueError("val_conditions: the caption embeddings of the validation rows are required")
        val_features = {}
        for name in names:
            feats = val_store.read(name)
            if condition is not None and val_rows is not None:
                feats = condition.join(feats, val_rows)
            val_features[name] = feats.to(device)
        steps.set_postfix_str("floors")
        estimate = real_floors(distances, val_features, floor_batch_size)
        steps.update()
        warn_floors(estimate)
    steps.close()
    settings = {
        "train": str(store.root), "val": None if val_store is None else str(val_store.root),
        "num_landmarks": num_landmarks, "bandwidth_scale": list(check_scales_tuple(bandwidth_scale)),
        "seed": seed, "kmeans_iters": kmeans_iters,
    }
    if isinstance(condition, ClassCondition) and conditions is None:
        conditions = store.labels
    root = Path(out)
    # Written only once everything is computed, beside ``out``, and swapped in whole: a failed
    # rebuild leaves the old references.
    with atomic_directory(root, replaces=MANIFEST) as tmp:
        for name, refs in built.items():
            save_references(refs, tmp / name)
        write_manifest(tmp, encoders=entries, condition=condition, labels=conditions,
                       floors=estimate, settings=settings, captions=captions)
    return References.open(root)


def check_scales_tuple(scales: float | Sequence[float]) -> tuple[float, ...]:
    checked = check_scales("bandwidth_scale", scales)
    return checked if isinstance(checked, tuple) else (checked,)


def store_captions(store: FeatureStore, captions: str | Path) -> list[str]:
    """The caption of each row of ``store``, an image folder's features, from a captions file
    (:func:`repmatch.data.read_captions`; keyed by the image's path relative to the folder)."""
    dataset = open_dataset(store.data)
    if not isinstance(dataset, ImageFolder):
        raise ValueError(f"captions: the store {store.root} was not extracted from an image folder ({store.data})")
    files = [p.relative_to(dataset.root).as_posix() for p in dataset.files[: len(store)]]
    return captions_in_order(files, read_captions(captions), source=f"captions {captions}")
