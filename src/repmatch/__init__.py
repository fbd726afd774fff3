"""repmatch: Representation Distribution Matching (iRDM) for one-step generators.

    >>> from repmatch import NystromReference, mmd_nystrom_loss
    >>> ref = NystromReference.build(pool_features, num_landmarks=4096, bandwidth="median")
    >>> loss = mmd_nystrom_loss(gen_features, ref)         # eq. 3, exact gradient

The library's packages: :mod:`repmatch.compare` (kernels, Nyström, distances),
:mod:`repmatch.represent` (encoders, battery, joint features), :mod:`repmatch.metrics`
(SW_r,k and cross-checks), :mod:`repmatch.data`, :mod:`repmatch.features`,
:mod:`repmatch.generators`, :mod:`repmatch.train`, :mod:`repmatch.evaluation` and
:mod:`repmatch.report`; applications built on them live in :mod:`repmatch.apps`, the command
line in :mod:`repmatch.cli` (see ``docs/architecture.md``).

The top-level names below come from :mod:`repmatch.compare`; they are imported on first use
so that ``import repmatch.metrics`` never loads the training-loss path and ``repmatch --help``
stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .compare import (
        MMDRFF,
        Distance,
        Drifting,
        Frechet,
        MMDExact,
        MMDNystrom,
        NystromReference,
        SlicedWasserstein,
        drifting_loss,
        frechet_distance,
        gaussian_kernel,
        median_bandwidth,
        mmd_exact_loss,
        mmd_nystrom_loss,
        multiscale_bandwidths,
        sliced_wasserstein_loss,
    )

__all__ = [
    "MMDRFF",
    "Distance",
    "Drifting",
    "Frechet",
    "MMDExact",
    "MMDNystrom",
    "NystromReference",
    "SlicedWasserstein",
    "__version__",
    "drifting_loss",
    "frechet_distance",
    "gaussian_kernel",
    "median_bandwidth",
    "mmd_exact_loss",
    "mmd_nystrom_loss",
    "multiscale_bandwidths",
    "sliced_wasserstein_loss",
]
# Every public name but the version comes from repmatch.compare, imported on first access.
_LAZY = dict.fromkeys((name for name in __all__ if name != "__version__"), ".compare")
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
