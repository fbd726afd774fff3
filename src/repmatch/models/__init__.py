"""Fashion-MNIST networks: a class-conditional velocity U-Net (the flow-matching teacher), a
DCGAN-style one-step generator, the rectified-flow loss, the teacher trainer, and per-class
sampling of any generator. Few-step sampling of a velocity model is
``repmatch.train.FewStepGenerator``."""

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
