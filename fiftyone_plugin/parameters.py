"""Operator parameters: one dataclass per operator, built from ``ctx.params``, holds every default once; the parts
several operators share (which model, the mask generator's settings) are dataclasses they inherit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TypeVar

import fiftyone.operators.types as types

from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES
from sam2_plugins.model_loading import PRECISIONS, ModelSpec

from .forms import checkpoint_input, image_size_input

Params = TypeVar("Params")


def from_params(cls: type[Params], params: Mapping) -> Params:
    """``cls`` from a form's ``ctx.params``: fields the form left empty (None or "") take ``cls``'s defaults.

    Keys that are not fields of ``cls`` (form-only inputs, FiftyOne's own) are ignored.
    """
    names = {f.name for f in fields(cls)}
    return cls(**{name: value for name, value in params.items() if name in names and value not in (None, "")})


@dataclass
class ModelParams:
    """Which SAM 2 to load and where, as the form and the SDK give it: the fields of the library's `ModelSpec`
    (checkpoint, config, input size, device, precision, post-processing), checked by it when made."""

    checkpoint: str = DEFAULT_CHECKPOINT
    config: str | None = None
    image_size: int = 1024
    device: str | None = None
    precision: str | None = None
    apply_postprocessing: bool = True

    def __post_init__(self) -> None:
        self.device = None if self.device == "auto" else self.device
        self.precision = None if self.precision == "auto" else self.precision
        self.model_spec()  # checks every value, naming the wrong ones

    def model_spec(self) -> ModelSpec:
        """The library's spec of this model."""
        return ModelSpec(
            self.checkpoint, self.config, self.image_size, self.device, self.precision, self.apply_postprocessing
        )

    def add_model_inputs(self, inputs: types.Object, ctx) -> None:
        """Checkpoint, config, image size, device and precision as form inputs, defaulting to the values held here."""
        checkpoint_input(inputs, ctx, self.checkpoint)
        inputs.str("config", label="Config", description="e.g. sam2.1_hiera_t; empty: inferred from the checkpoint")
        image_size_input(inputs, ctx, self.image_size)
        inputs.enum("device", list(DEVICE_CHOICES), label="Device", default="auto")
        inputs.enum(
            "precision",
            ["auto", *PRECISIONS],
            label="Precision",
            default="auto",
            description="auto: bfloat16 on CUDA (as Meta's predictor), float32 elsewhere (exactly Meta's CPU masks)",
        )


@dataclass
class MaskGeneratorParams:
    """The automatic mask generator's main settings, with the defaults of Meta's ``SAM2AutomaticMaskGenerator``."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.8
    stability_score_thresh: float = 0.95
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0

    @property
    def generator_options(self) -> dict:
        """These settings as keyword arguments of ``load_mask_generator``."""
        return {f.name: getattr(self, f.name) for f in fields(MaskGeneratorParams)}

    def add_inputs(self, inputs: types.Object) -> None:
        """These settings as form inputs, defaulting to the values held here."""
        inputs.int(
            "points_per_side",
            label="Points per side",
            default=self.points_per_side,
            min=1,
            description="the generator clicks a grid of this many points per side",
        )
        inputs.int("points_per_batch", label="Points per batch", default=self.points_per_batch, min=1)
        inputs.float(
            "pred_iou_thresh",
            label="Predicted IoU threshold",
            default=self.pred_iou_thresh,
            min=0,
            max=1,
            description="masks the model rates lower are dropped",
        )
        inputs.float(
            "stability_score_thresh",
            label="Stability threshold",
            default=self.stability_score_thresh,
            min=0,
            max=1,
            description="masks whose shape changes more with the logit threshold are dropped",
        )
        inputs.float("box_nms_thresh", label="Box NMS threshold", default=self.box_nms_thresh, min=0, max=1)
        inputs.int(
            "min_mask_region_area",
            label="Minimum region area",
            default=self.min_mask_region_area,
            min=0,
            description="holes and specks up to this many pixels are removed from the masks; 0: none",
        )
