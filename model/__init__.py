"""SAM 2 / 2.1 network and video predictor (torch only)."""
from .configs import CONFIGS, build_model, get_config
from .predictor import Sam2VideoPredictor, pick_device
from .sam2_model import NO_OBJECT_SCORE, Sam2Model
from .session import VideoSession

__all__ = [
    "CONFIGS",
    "NO_OBJECT_SCORE",
    "Sam2Model",
    "Sam2VideoPredictor",
    "VideoSession",
    "build_model",
    "get_config",
    "pick_device",
]
