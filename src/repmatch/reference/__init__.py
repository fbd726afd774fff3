"""Reference side: feature extraction over datasets into sharded, resumable feature stores.

    >>> from repmatch.data import open_dataset
    >>> from repmatch.reference import extract_features, FeatureStore
    >>> extract_features(open_dataset("fmnist:train"), "fmnist_classifier,fmnist_autoencoder", "feats/")
    >>> store = FeatureStore("feats/")
    >>> store.read()            # {name: (N, D) float32}
    >>> store.fingerprints      # {name: fingerprint}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .extract import as_battery, extract_features, resolve_encoder_names
    from .store import FORMAT, LABELS_KEY, FeatureStore, shard_bounds, shard_name

# Lazy (see repmatch._lazy): the CLI registers `features` from this package without importing torch.
_EXPORTS = {
    **dict.fromkeys(("as_battery", "extract_features", "resolve_encoder_names"), ".extract"),
    **dict.fromkeys(("FORMAT", "LABELS_KEY", "FeatureStore", "shard_bounds", "shard_name"), ".store"),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "FORMAT",
    "LABELS_KEY",
    "FeatureStore",
    "as_battery",
    "extract_features",
    "resolve_encoder_names",
    "shard_bounds",
    "shard_name",
]
assert set(__all__) == set(_EXPORTS)  # one list of public names, checked at import
