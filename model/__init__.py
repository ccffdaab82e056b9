"""SAM 2 / 2.1 network and predictors (torch and numpy only: no file formats, no front-end).

Names load on first use, so `sam2_plugins.model.official` (checkpoint names, devices) is importable without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CONFIGS": "configs",
    "build_model": "configs",
    "get_config": "configs",
    "DEFAULT_CHECKPOINT": "official",
    "DEVICE_CHOICES": "official",
    "OFFICIAL_CHECKPOINTS": "official",
    "FrameSequence": "frames",
    "Sam2VideoPredictor": "predictor",
    "Sam2ImagePredictor": "image_predictor",
    "Sam2AutomaticMaskGenerator": "automatic_mask_generator",
    "pick_device": "predictor",
    "default_image_size": "predictor",
    "NO_OBJECT_SCORE": "sam2_model",
    "Sam2Model": "sam2_model",
    "VideoSession": "session",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
