"""Fashion-MNIST networks: a class-conditional velocity U-Net (flow-matching teacher), a
DCGAN-style one-step generator, the rectified-flow loss and Euler sampler, and the teacher
trainer."""

from .conv_generator import ConvGenerator, ConvGeneratorConfig
from .flow_matching import flow_matching_loss, interpolate, sample_time
from .teacher import (
    TeacherConfig,
    TeacherResult,
    default_teacher_dir,
    load_teacher,
    sample_per_class,
    train_teacher,
)
from .unet import VelocityUNet, VelocityUNetConfig, velocity_unet_cpu, velocity_unet_gpu

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
]
