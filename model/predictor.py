"""`Sam2VideoPredictor`: a loaded SAM 2 model on a device, opening video sessions."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import numpy as np
import torch

from .checkpoint import (
    check_fit,
    config_for_checkpoint,
    guess_config,
    load_weights,
    read_state_dict,
    resolve_checkpoint,
)
from .configs import Sam2Config, build_model
from .frame_features import FeatureStore
from .frames import FrameSequence, as_frame_sequence
from .sam2_model import Sam2Model
from .session import VideoSession

DEFAULT_FEATURE_CACHE_MB = 256


def available_devices() -> list[str]:
    """The device types this torch build can run on here, best first."""
    found = ["cuda"] if torch.cuda.is_available() else []
    found += ["mps"] if torch.backends.mps.is_available() else []
    return [*found, "cpu"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device`, or the best available for None or "auto": CUDA, then Apple MPS, then CPU.

    A device this machine cannot run on is a `ValueError` naming the ones it can.
    """
    available = available_devices()
    if device is None or device == "auto":
        return torch.device(available[0])
    chosen = torch.device(device)
    if chosen.type not in available:
        raise ValueError(
            f"device {str(device)!r} is not available on this machine (this torch build runs on "
            f"{', '.join(available)}); pass one of those or 'auto'"
        )
    return chosen


def default_image_size(device: str | torch.device | None = None) -> int:
    """The input side that keeps click-to-mask interactive on `device` (None or "auto": the one `pick_device` picks):
    1024 as trained on a GPU, 512 on CPU (4x fewer pixels to encode per frame)."""
    chosen = pick_device(device) if device in (None, "auto") else torch.device(device)
    return 512 if chosen.type == "cpu" else 1024


def default_precision(device: torch.device) -> str:
    """bfloat16 on CUDA (as Meta's predictor), float32 elsewhere (exactly Meta's CPU results)."""
    return "bfloat16" if device.type == "cuda" else "float32"


class ModelOnDevice:
    """A `Sam2Model` in eval mode on a device with its precision: what the video and image predictors share.

    On CUDA the model runs under bfloat16 autocast with TF32 matmuls; on MPS and CPU in float32 unless
    `precision="bfloat16"` asks for bfloat16 autocast there too (about 3x faster matmuls on CPUs with AVX512-BF16 or
    AMX, at the cost of exact parity with Meta's float32 CPU results).
    """

    def __init__(
        self,
        model: Sam2Model,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str | None = None,
    ) -> None:
        self.device = pick_device(device)
        if precision not in (None, "float32", "bfloat16"):
            raise ValueError(f"precision must be 'float32' or 'bfloat16', not {precision!r}")
        self.autocast_dtype = torch.bfloat16 if (precision or default_precision(self.device)) == "bfloat16" else None
        self.model = model.to(self.device).eval()
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        if compile:
            self.model.image_encoder.forward = torch.compile(self.model.image_encoder.forward, dynamic=False)

    @contextmanager
    def inference(self) -> Iterator[None]:
        """No autograd; autocast when the predictor runs in bfloat16."""
        with ExitStack() as stack:
            stack.enter_context(torch.inference_mode())
            if self.autocast_dtype is not None:
                stack.enter_context(torch.autocast(self.device.type, dtype=self.autocast_dtype))
            yield


def load_model(
    path_or_name: str | os.PathLike,
    config: str | Sam2Config | None = None,
    image_size: int = 1024,
    apply_postprocessing: bool = True,
) -> Sam2Model:
    """The model of an official checkpoint file or name, strictly loaded (see `Sam2VideoPredictor.from_checkpoint`)."""
    path = resolve_checkpoint(path_or_name)
    layout = read_state_dict(path, meta=True)  # keys and shapes: the fit is checked before any data is read
    config = config or config_for_checkpoint(path_or_name) or guess_config(layout)
    if config is None:
        raise ValueError(f"{path}: cannot tell which SAM 2 config it needs; pass e.g. config='sam2.1_hiera_t'")
    model = build_model(config, image_size=image_size, apply_postprocessing=apply_postprocessing)
    config_name = config if isinstance(config, str) else config.name
    check_fit(model, layout, source=str(path), config=config_name)
    load_weights(model, read_state_dict(path), source=str(path), config=config_name)
    return model


class Sam2VideoPredictor(ModelOnDevice):
    """SAM 2 video object segmentation; `init_video` opens a `VideoSession` for prompts and propagation.

    Device and precision as `ModelOnDevice`.
    """

    def __init__(
        self,
        model: Sam2Model,
        fill_hole_area: int = 8,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str | None = None,
    ) -> None:
        super().__init__(model, device=device, compile=compile, precision=precision)
        self.fill_hole_area = fill_hole_area

    @classmethod
    def from_checkpoint(
        cls,
        path_or_name: str | os.PathLike,
        config: str | Sam2Config | None = None,
        image_size: int = 1024,
        apply_postprocessing: bool = True,
        fill_hole_area: int = 8,
        device: str | torch.device | None = None,
        compile: bool = False,
        precision: str | None = None,
    ) -> Sam2VideoPredictor:
        """Load an official checkpoint file or name (`sam2.1_hiera_tiny` ..., downloaded once into the HF cache).

        `config` defaults to the one the checkpoint's name or its weights imply. `image_size` is the model's input
        side (a multiple of 32): 1024 as trained, lower is faster and coarser (512: ~4x fewer
        pixels, for CPUs and quick previews). `apply_postprocessing` selects
        Meta's inference extras (dynamic multimask, binarized click masks in memory, filling holes of up to
        `fill_hole_area` pixels in low-resolution masks); without it no holes are filled. `precision` is
        "float32" or "bfloat16" (default: bfloat16 on CUDA, float32 elsewhere).
        """
        model = load_model(path_or_name, config, image_size=image_size, apply_postprocessing=apply_postprocessing)
        return cls(
            model, fill_hole_area if apply_postprocessing else 0, device=device, compile=compile, precision=precision
        )

    def init_video(
        self,
        frames: FrameSequence | np.ndarray,
        prune_memories: bool = False,
        feature_cache_mb: int = DEFAULT_FEATURE_CACHE_MB,
        feature_store: FeatureStore | None = None,
    ) -> VideoSession:
        """A session over a frame sequence (`sam2_plugins.open_frames`: folders, videos, TIFF stacks, 16-bit
        and float arrays) or a (T, H, W, 3) uint8 RGB array; the caller keeps ownership of the frames.

        Frames are decoded as they are needed. Spatial memories that the next frames cannot attend to are freed
        and re-encoded from the frame's mask if a correction needs them again, so each tracked frame keeps only
        its low-resolution mask and object pointer and corrections behave exactly like Meta's predictor.
        `prune_memories` also drops frames beyond object-pointer reach (flat memory on any video length; their masks
        are gone and a correction there sees fewer memories than Meta's would). Image features of up to
        `feature_cache_mb` MiB of frames are kept to make re-propagation cheaper; a `feature_store` (e.g.
        `sam2_plugins.feature_store.DiskFeatureStore`) supplies the features it holds and keeps every frame encoded.
        """
        return VideoSession(
            self.model,
            as_frame_sequence(frames),
            run_model=self.inference,
            fill_hole_area=self.fill_hole_area,
            feature_cache_bytes=feature_cache_mb * 2**20,
            prune_memories=prune_memories,
            feature_store=feature_store,
        )
