"""repmatch: Representation Distribution Matching (iRDM) for one-step generators."""

from ._version import __version__
from .distances import Distance, MMDNystrom, mmd_nystrom_loss
from .kernels import gaussian_kernel, median_bandwidth, multiscale_bandwidths
from .nystrom import NystromReference

__all__ = [
    "__version__",
    "Distance",
    "MMDNystrom",
    "NystromReference",
    "gaussian_kernel",
    "median_bandwidth",
    "mmd_nystrom_loss",
    "multiscale_bandwidths",
]
