"""repmatch: Representation Distribution Matching (iRDM) for one-step generators."""

from ._version import __version__
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
