"""repmatch: Representation Distribution Matching (iRDM) for one-step generators.

The top-level names are imported lazily (PEP 562) so that ``import repmatch.metrics`` does
not pull in the training-loss modules (evaluation stays independent of the objective) and
``repmatch --help`` does not pay for importing the math stack.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from .distances import (
        MMDRFF,
        Distance,
        Drifting,
        Frechet,
        MMDExact,
        MMDNystrom,
        SlicedWasserstein,
        drifting_loss,
        frechet_distance,
        mmd_exact_loss,
        mmd_nystrom_loss,
        sliced_wasserstein_loss,
    )
    from .kernels import gaussian_kernel, median_bandwidth, multiscale_bandwidths
    from .nystrom import NystromReference

# public name -> module that defines it
_LAZY: dict[str, str] = {
    **dict.fromkeys(
        (
            "MMDRFF", "Distance", "Drifting", "Frechet", "MMDExact", "MMDNystrom",
            "SlicedWasserstein", "drifting_loss", "frechet_distance", "mmd_exact_loss",
            "mmd_nystrom_loss", "sliced_wasserstein_loss",
        ),
        ".distances",
    ),
    **dict.fromkeys(("gaussian_kernel", "median_bandwidth", "multiscale_bandwidths"), ".kernels"),
    "NystromReference": ".nystrom",
}

__all__ = [
    "MMDRFF", "Distance", "Drifting", "Frechet", "MMDExact", "MMDNystrom", "NystromReference",
    "SlicedWasserstein", "__version__", "drifting_loss", "frechet_distance", "gaussian_kernel",
    "median_bandwidth", "mmd_exact_loss", "mmd_nystrom_loss", "multiscale_bandwidths",
    "sliced_wasserstein_loss",
]
assert set(__all__) == {*_LAZY, "__version__"}  # one list of public names, checked at import


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
