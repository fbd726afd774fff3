"""Evaluation metrics: pure float64 functions of feature tensors (paper eq. 5, Appendix D).

Independent of the training objective by design: this package imports nothing from the loss
path (kernels, Nyström, distances, training), so a gain can never be the loss read back.

- ``sliced_wasserstein`` / ``sw_ratio_panel`` / ``sw_floors``: SW₂ and the SW_r,k panel;
- ``rff_mmd2`` / ``mmd_ratio_panel``: the RFF-MMD² ratio cross-check (MMD_r,k);
- ``frechet_distance`` / ``fd_ratio_panel``: the Fréchet ratio cross-check (FD_r,k);
- ``within_class_diversity`` / ``class_spreads``: within-class spread relative to real images;
- ``sw_noise_level`` / ``disjoint_draws``: the spread of two disjoint real draws' SW_r,k panels;
- ``check_fingerprints`` / ``FingerprintMismatchError``: refuse features from other spaces.
"""

from ._common import subsample_indices
from .diversity import class_spreads, mean_pairwise_distance, within_class_diversity
from .fingerprints import FingerprintMismatchError, check_fingerprints
from .frechet import frechet_distance, frechet_from_stats, gaussian_stats, sqrtm_psd
from .mmd import lower_median_bandwidth, rff_mmd2
from .noise import disjoint_draws, sw_noise_level
from .panel import fd_ratio_panel, mmd_ratio_panel, summarize_ratios, sw_floors, sw_ratio_panel
from .sliced import random_projections, sliced_wasserstein

__all__ = [
    "FingerprintMismatchError",
    "check_fingerprints",
    "class_spreads",
    "disjoint_draws",
    "fd_ratio_panel",
    "frechet_distance",
    "frechet_from_stats",
    "gaussian_stats",
    "lower_median_bandwidth",
    "mean_pairwise_distance",
    "mmd_ratio_panel",
    "random_projections",
    "rff_mmd2",
    "sliced_wasserstein",
    "sqrtm_psd",
    "subsample_indices",
    "summarize_ratios",
    "sw_floors",
    "sw_noise_level",
    "sw_ratio_panel",
    "within_class_diversity",
]
