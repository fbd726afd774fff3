"""The comparison axis (paper §3.1): the Gaussian kernel and its bandwidth rules, the Nyström
reference frozen once over a dataset, and the six training distances (``mmd_nystrom`` = iRDM's
eq. 3, ``mmd_exact``, ``mmd_rff``, ``frechet``, ``sliced_wasserstein``, ``drifting``).

Pure tensor math: it imports no encoders, training, metrics or I/O beyond the reference's own
safetensors file.
"""

from .distances import (
    DISTANCES,
    MMDRFF,
    NAMES,
    Distance,
    Drifting,
    Frechet,
    MMDExact,
    MMDNystrom,
    SlicedWasserstein,
    create,
    drifting_loss,
    frechet_distance,
    mmd_exact_loss,
    mmd_nystrom_loss,
    sliced_wasserstein_loss,
)
from .kernels import gaussian_kernel, joint_bandwidths, median_bandwidth, multiscale_bandwidths
from .nystrom import DEFAULT_NUM_LANDMARKS, FeatureChunks, NystromReference, kmeans

__all__ = [
    "DEFAULT_NUM_LANDMARKS",
    "DISTANCES",
    "MMDRFF",
    "NAMES",
    "Distance",
    "Drifting",
    "FeatureChunks",
    "Frechet",
    "MMDExact",
    "MMDNystrom",
    "NystromReference",
    "SlicedWasserstein",
    "create",
    "drifting_loss",
    "frechet_distance",
    "gaussian_kernel",
    "joint_bandwidths",
    "kmeans",
    "median_bandwidth",
    "mmd_exact_loss",
    "mmd_nystrom_loss",
    "multiscale_bandwidths",
    "sliced_wasserstein_loss",
]
