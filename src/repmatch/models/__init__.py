"""Fashion-MNIST networks: a class-conditional velocity U-Net (the flow-matching teacher), a
DCGAN-style one-step generator, the rectified-flow loss, the teacher trainer, and per-class
sampling of any generator. Few-step sampling of a velocity model is
``repmatch.train.FewStepGenerator``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .conv_generator import ConvGenerator, ConvGeneratorConfig
    from .flow_matching import flow_matching_loss, interpolate, sample_time
    from .sampling import sample_per_class, write_sample_grid, write_samples_npz
    from .teacher import (
        TeacherConfig,
        TeacherResult,
        default_teacher_dir,
        load_teacher,
        train_teacher,
    )
    from .unet import (
        VelocityUNet,
        VelocityUNetConfig,
        velocity_unet_cpu,
        velocity_unet_gpu,
        velocity_unet_tiny,
    )

# Lazy (see repmatch._lazy): the CLI registers `teacher` from this package without importing torch.
_EXPORTS = {
    **dict.fromkeys(("ConvGenerator", "ConvGeneratorConfig"), ".conv_generator"),
    **dict.fromkeys(("flow_matching_loss", "interpolate", "sample_time"), ".flow_matching"),
    **dict.fromkeys(("sample_per_class", "write_sample_grid", "write_samples_npz"), ".sampling"),
    **dict.fromkeys(
        ("TeacherConfig", "TeacherResult", "default_teacher_dir", "load_teacher", "train_teacher"),
        ".teacher",
    ),
    **dict.fromkeys(
        ("VelocityUNet", "VelocityUNetConfig", "velocity_unet_cpu", "velocity_unet_gpu",
         "velocity_unet_tiny"),
        ".unet",
    ),
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "ConvGenerator",
    "ConvGeneratorConfig",
    "TeacherConfig",
    "TeacherResult",
    "VelocityUNet",
    "VelocityUNetConfig",
    "default_teacher_dir",
    "flow_matching_loss",
    "interpolate",
    "load_teacher",
    "sample_per_class",
    "sample_time",
    "train_teacher",
    "velocity_unet_cpu",
    "velocity_unet_gpu",
    "velocity_unet_tiny",
    "write_sample_grid",
    "write_samples_npz",
]
assert set(__all__) == set(_EXPORTS)  # one list of public names, checked at import
