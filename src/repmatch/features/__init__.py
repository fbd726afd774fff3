"""Feature extraction over datasets into sharded, resumable feature stores.

    >>> from repmatch.data import open_dataset
    >>> from repmatch.features import extract_features, FeatureStore
    >>> extract_features(open_dataset("folder:images/"), "efficientnet_lite0", "feats/")
    >>> store = FeatureStore("feats/")
    >>> store.read()            # {name: (N, D) float32}
    >>> store.fingerprints      # {name: fingerprint}
"""

from .extract import as_battery, extract_features, resolve_encoder_names
from .store import (
    FORMAT,
    LABELS_KEY,
    MANIFEST,
    FeatureStore,
    read_manifest,
    shard_bounds,
    shard_name,
)

__all__ = [
    "FORMAT",
    "LABELS_KEY",
    "MANIFEST",
    "FeatureStore",
    "as_battery",
    "extract_features",
    "read_manifest",
    "resolve_encoder_names",
    "shard_bounds",
    "shard_name",
]
