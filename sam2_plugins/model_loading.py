"""Which SAM 2 to load and how, said once: a `ModelSpec`, and the loaders every front-end calls.

A spec names the checkpoint (an official name, downloaded once into the Hugging Face cache, or a local ``.pt``),
its config (None: implied by the checkpoint), the model's input size (None: 512 on CPU, 1024 on a GPU), the device
("auto": the best available), the precision (None: bfloat16 on CUDA, float32 elsewhere) and whether the predictor's
interactive post-processing runs (hole filling, the multimask fallback; Meta's VOS benchmark runs leave it off).
A spec is checked when it is made, without torch; torch is imported when a loader runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES, OFFICIAL_CHECKPOINTS

if TYPE_CHECKING:
    from .model import Sam2AutomaticMaskGenerator, Sam2ImagePredictor, Sam2VideoPredictor
    from .model.predictor import ModelOnDevice

IMAGE_SIZES = tuple(range(128, 4096 + 1, 32))
"""Model input sides accepted: multiples of 32 (the image encoder's total stride)."""
CONFIG_NAMES = tuple(sorted({checkpoint.config for checkpoint in OFFICIAL_CHECKPOINTS.values()}))
PRECISIONS = ("float32", "bfloat16")
_DEVICE = re.compile(r"(auto|cpu|mps|cuda)(:\d+)?")


def config_name(config: str) -> str:
    """A config as given (``sam2.1_hiera_t``, ``configs/sam2.1/sam2.1_hiera_t.yaml``) reduced to its name."""
    return config.rsplit("/", 1)[-1].removesuffix(".yaml")


def checkpoint_error(checkpoint: str | os.PathLike | None) -> str | None:
    """Why ``checkpoint`` is neither an official checkpoint name nor an existing file, or None."""
    if checkpoint and (str(checkpoint) in OFFICIAL_CHECKPOINTS or Path(checkpoint).expanduser().is_file()):
        return None
    return (
        f"{checkpoint}: no such checkpoint; pick one of the official names "
        f"({', '.join(OFFICIAL_CHECKPOINTS)}) or give the path of a local .pt file"
    )


def image_size_error(image_size: int | None) -> str | None:
    """Why ``image_size`` is not a model input side (None, meaning the device's default, is one), or None."""
    if image_size is None or (isinstance(image_size, int) and image_size in IMAGE_SIZES):
        return None
    return (
        f"image_size {image_size!r} is not a multiple of 32 in {IMAGE_SIZES[0]}..{IMAGE_SIZES[-1]}; "
        "pass e.g. 512 (CPU) or 1024 (as trained)"
    )


@dataclass(frozen=True)
class ModelSpec:
    """One SAM 2 model to load: checkpoint, config, input size, device, precision, post-processing.

    Each value is checked here and a wrong one is a ``ValueError`` naming it and what to pass instead; "auto" as the
    config means None, None as the device means "auto".
    """

    checkpoint: str = DEFAULT_CHECKPOINT
    config: str | None = None
    image_size: int | None = None
    device: str = "auto"
    precision: str | None = None
    apply_postprocessing: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "checkpoint", str(Path(self.checkpoint).expanduser()) if self.checkpoint else "")
        object.__setattr__(self, "config", None if self.config in (None, "", "auto") else str(self.config))
        object.__setattr__(self, "device", "auto" if self.device in (None, "") else str(self.device))
        problems = [checkpoint_error(self.checkpoint), image_size_error(self.image_size)]
        if self.config is not None and config_name(self.config) not in CONFIG_NAMES:
            problems.append(f"config {self.config!r} is not a SAM 2 config; pass one of {', '.join(CONFIG_NAMES)}")
        if not _DEVICE.fullmatch(self.device):
            problems.append(f"device {self.device!r} is not a device; pass one of {', '.join(DEVICE_CHOICES)}")
        if self.precision not in (None, *PRECISIONS):
            problems.append(f"precision {self.precision!r}: pass {' or '.join(PRECISIONS)} (or None: the device's)")
        problems = [problem for problem in problems if problem]
        if problems:
            raise ValueError("; ".join(problems))

    def model_image_size(self) -> int:
        """The input side the model runs at: ``image_size``, or the device's default (imports torch)."""
        if self.image_size is not None:
            return self.image_size
        from .model import default_image_size

        return default_image_size(self.device)

    def load_options(self) -> dict[str, Any]:
        """The predictors' ``from_checkpoint`` keywords of this spec (the checkpoint aside)."""
        return {
            "config": self.config,
            "image_size": self.model_image_size(),
            "apply_postprocessing": self.apply_postprocessing,
            "device": self.device,
            "precision": self.precision,
        }


def load_video_predictor(spec: ModelSpec) -> Sam2VideoPredictor:
    """The video predictor of ``spec`` (strict checkpoint load; an unavailable device names those there are)."""
    from .model import Sam2VideoPredictor

    return Sam2VideoPredictor.from_checkpoint(spec.checkpoint, **spec.load_options())


def load_image_predictor(source: ModelSpec | ModelOnDevice) -> Sam2ImagePredictor:
    """The image predictor of a spec, or on a loaded video or image predictor's network, device and precision
    (no second copy of the weights)."""
    from .model import Sam2ImagePredictor

    if not isinstance(source, ModelSpec):
        precision = "float32" if source.autocast_dtype is None else "bfloat16"
        return Sam2ImagePredictor(source.model, device=source.device, precision=precision)
    return Sam2ImagePredictor.from_checkpoint(source.checkpoint, **source.load_options())


def load_mask_generator(source: ModelSpec | ModelOnDevice, **options: Any) -> Sam2AutomaticMaskGenerator:
    """The automatic mask generator of a spec, or on a loaded predictor's network (see `load_image_predictor`);
    ``options`` are the generator's parameters (``points_per_side``, ``pred_iou_thresh``, ...)."""
    from .model import Sam2AutomaticMaskGenerator

    return Sam2AutomaticMaskGenerator(load_image_predictor(source), **options)
