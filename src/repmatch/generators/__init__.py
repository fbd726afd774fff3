"""Generators: the protocol every trained generator follows, the few-step wrapper that turns a
velocity model into a (one-step) generator, a small MLP generator, the registry of generator
sources (:data:`GENERATORS`, names or ``"module:callable"``), and per-class sampling.

A generator is an ``nn.Module`` with a ``noise_shape`` attribute whose
``forward(noise (N, *noise_shape), condition) -> images (N, C, H, W)`` in [0, 1].
"""

from .base import FewStepGenerator, Generator, MLPGenerator
from .load import GENERATORS, build_generator, load_state
from .sampling import GeneratedImages, sample_per_class, write_sample_grid, write_samples_npz

__all__ = [
    "GENERATORS",
    "FewStepGenerator",
    "GeneratedImages",
    "Generator",
    "MLPGenerator",
    "build_generator",
    "load_state",
    "sample_per_class",
    "write_sample_grid",
    "write_samples_npz",
]
