"""The hyper-parameters of `screener train`: the model lab's settings, apart from the
pipeline's (`screener.settings`), so that a scan loads none of them."""

from __future__ import annotations

from dataclasses import dataclass

from screener.settings import SettingsError

ARCHITECTURES = ("minixception", "vgg")
PRECISIONS = ("float32", "bfloat16")
VGG_BLOCKS = (32, 64, 128, 256)
"""Default stage filters of `arch="vgg"`: half the width of Khaireddin & Chen's 64-512, which
keeps it within the batched speed budget on a small CPU (lab/models/README.md)."""


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of `screener train`; the defaults reproduce the shipped model."""

    epochs: int = 100
    batch_size: int = 64
    """Must be a multiple of 4: TensorFlow 2.21 on CPU can corrupt its heap otherwise."""
    learning_rate: float = 1e-3
    patience: int = 20
    """Epochs without a better `val` accuracy before early stopping."""
    lr_patience: int = 6
    l2: float = 0.01
    width: int = 1
    """Multiplies every layer's filters: 1 is the original mini-Xception (~58k parameters)."""
    blocks: tuple[int, ...] = (16, 32, 64, 128)
    """Filters of the residual blocks; widening only the late, low-resolution blocks adds
    capacity for little inference time (see lab/models/README.md)."""
    schedule: str = "plateau"
    """"plateau" halves the learning rate when `val` loss stalls (the original recipe);
    "cosine" decays it to zero over `epochs`, which suits a fixed budget."""
    label_smoothing: float = 0.0
    class_weights: bool = False
    augment: bool = True
    cutout: float = 0.0
    """Share of training images that lose a random square (random erasing); needs augment."""
    teachers: tuple[str, ...] = ()
    """ONNX models whose averaged, flip-averaged predictions on each training image become
    part of its target (knowledge distillation): one fast model learns from slower ones."""
    distill: float = 0.5
    """Share of each target taken from the teachers; the rest is the FER2013 label."""
    consistent: bool = False
    """The teachers predict every augmented batch as the student sees it, each epoch, instead
    of each clean image once: the target then matches the crop, rotation and flip actually
    trained on (Beyer et al. 2022), at the cost of running the teachers every epoch."""
    mixup: float = 0.0
    """Alpha of the Beta distribution of mixup's blending share; 0 turns mixup off."""
    crop_jitter: bool = False
    """Augment as the scan's crops vary: wider framing jitter (scale, shift, turn) and the
    blur, low resolution, lighting and contrast of video faces; needs augment."""
    equalise: bool = False
    """Every face histogram-equalised after augmentation, as most FER2013 images are; the
    model's card says so and scans then equalise the crops they give it (lab/models/README.md
    measures what it does on dark and web faces)."""
    arch: str = "minixception"
    """"minixception" (Arriaga et al. 2017) or "vgg": stages of two 3x3 convolutions with
    batch norm, max pooling and dropout (Khaireddin & Chen 2021), wider and slower."""
    dropout: float = 0.3
    """Dropout after each VGG stage and before its classifier (not used by mini-Xception)."""
    dense: int = 512
    """Units of the VGG's hidden fully connected layer."""
    precision: str = "float32"
    """"bfloat16" trains in Keras's mixed_bfloat16 (weights stay float32): a quarter less time
    a step, 15% an epoch, on a CPU with AVX-512 BF16, and more on a GPU; the ONNX export is
    float32 either way, so scans are unaffected."""
    seed: int = 1337
    init_from: str | None = None
    """A trained .keras model of the same architecture, or a VGG's exported .onnx file, to
    start from instead of random weights: a second learning-rate cycle (a warm restart,
    Loshchilov & Hutter 2017) continues a finished run, usually distilled from that run's own
    model (born-again networks)."""

    def validate(self) -> None:
        if self.batch_size <= 0 or self.batch_size % 4:
            raise SettingsError("batch size must be a positive multiple of 4")
        if self.epochs <= 0:
            raise SettingsError("epochs must be positive")
        if not self.blocks or any(f <= 0 for f in self.blocks):
            raise SettingsError("blocks must be one or more positive filter counts")
        if not 0.0 <= self.cutout <= 1.0:
            raise SettingsError("cutout must be a share between 0 and 1")
        if self.mixup < 0:
            raise SettingsError("mixup alpha must be 0 (off) or positive")
        if not 0.0 <= self.distill <= 1.0:
            raise SettingsError("distill must be a share between 0 and 1")
        if self.consistent and not self.teachers:
            raise SettingsError("consistent distillation needs at least one teacher")
        if self.schedule not in ("plateau", "cosine"):
            raise SettingsError('schedule must be "plateau" or "cosine"')
        if self.arch not in ARCHITECTURES:
            raise SettingsError(f"arch must be one of {', '.join(ARCHITECTURES)}")
        if not 0.0 <= self.dropout < 1.0:
            raise SettingsError("dropout must be a share from 0 to below 1")
        if self.dense <= 0:
            raise SettingsError("dense must be a positive number of units")
        if self.precision not in PRECISIONS:
            raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}")
        if self.arch == "vgg" and len(self.blocks) > 5:
            raise SettingsError("a VGG at 48x48 has at most 5 stages (each halves the size)")
