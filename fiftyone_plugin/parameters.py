"""Operator parameters: one dataclass per operator, built from ``ctx.params``, holds every default once; the parts
several operators share (which model, the mask generator's settings) are dataclasses they inherit."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TypeVar

import fiftyone as fo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES
from sam2_plugins.model_loading import PRECISIONS, ModelSpec
from sam2_plugins.prompt_simulation import CLICK_COUNTS

from .completion import COMPLETED_FIELD
from .forms import checkpoint_input, frame_field_name, image_size_input
from .image_prompt_checks import image_prompt_error, is_image_collection
from .tracks import MASKLETS_FIELD, video_name
from .video_prompts import GT_PROMPTS
from .views import check_videos, videos_error, view_kind
from .vos_import import STEP as IMPORT_STEP

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


def default_postprocessing(prompt: str) -> bool:
    """Off for ground-truth prompts (Meta's VOS benchmark protocol), on for user prompts and images (SAM 2's
    interactive predictor)."""
    return prompt not in GT_PROMPTS


def prompt_source_field(prompt: str, gt_field: str) -> str:
    """The field ``prompt`` reads: ``gt_field`` for ground-truth prompts, else the prompt field itself."""
    return gt_field if prompt in GT_PROMPTS else prompt


def pred_field_is_prompt_source(pred_field: str) -> str:
    return (
        f"pred_field '{pred_field}' is the field the prompts are read from: predictions would replace it; "
        "pick another prediction field"
    )


@dataclass
class ApplySam2Params(ModelParams, MaskGeneratorParams):
    """How ``apply_sam2`` predicts; the operator's form and the SDK share these defaults and checks.

    ``prompt`` is a ground-truth mode (:data:`GT_PROMPTS`) or a frame field of Detections / Keypoints; on image
    datasets ``automatic`` (the mask generator, with the `MaskGeneratorParams` settings) or a sample field of them;
    ``apply_postprocessing`` None takes `default_postprocessing` of the prompt; ``shard_sample_ids`` are the videos
    of one queued shard (set by the dispatching run, not by users).
    """

    apply_postprocessing: bool | None = None
    prompt: str = "gt_masks"
    num_clicks: int = 1
    gt_field: str = "ground_truth"
    pred_field: str = "sam2"
    overwrite: bool = False
    num_shards: int = 1
    shard_sample_ids: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.apply_postprocessing is None:
            self.apply_postprocessing = default_postprocessing(self.prompt)
        super().__post_init__()
        self.prompt = self.prompt if self.prompt in GT_PROMPTS else frame_field_name(self.prompt)
        self.gt_field = frame_field_name(self.gt_field)
        self.pred_field = frame_field_name(self.pred_field)
        if self.prompt == "gt_clicks" and self.num_clicks not in CLICK_COUNTS:
            raise ValueError(
                f"num_clicks must be one of {CLICK_COUNTS} (the SAM 2 paper's protocol), got {self.num_clicks}"
            )
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be 1 or more, got {self.num_shards}")
        if self.pred_field == self.prompt_source:
            raise ValueError(pred_field_is_prompt_source(self.pred_field))

    @property
    def prompt_source(self) -> str:
        return prompt_source_field(self.prompt, self.gt_field)

    @property
    def step(self) -> str:
        """The finished mark of this prediction field."""
        return f"apply_sam2/{self.pred_field}"

    def check_fields(self, samples: fo.core.collections.SampleCollection) -> None:
        """``samples`` are videos, clips or images, and the prompt field, or the ground truth for ground-truth prompts,
        exists in them with the right type."""
        check_videos(samples, "apply_sam2", clips=True, images=True)
        if is_image_collection(samples):
            error = image_prompt_error(samples, self.prompt)
            if error:
                raise ValueError(error)
            return
        name = samples._root_dataset.name
        if self.prompt not in GT_PROMPTS and not samples.has_frame_field(self.prompt):
            raise ValueError(
                f"prompt '{self.prompt}' is neither one of {GT_PROMPTS} nor a frame field of dataset '{name}'; "
                "pick a prompt mode or the field holding your clicks/boxes"
            )
        if self.prompt in GT_PROMPTS and not samples.has_frame_field(self.gt_field):
            raise ValueError(
                f"'{self.gt_field}' is not a frame field of dataset '{name}'; "
                "pass the ground-truth field (import_sav writes 'ground_truth')"
            )


@dataclass
class AutoMaskletsParams(ModelParams, MaskGeneratorParams):
    """How ``auto_masklets`` finds and tracks objects; the operator's form and the SDK share these defaults.

    ``reseed_every`` (frames; None: never), ``new_object_iou``, ``new_object_coverage``, ``min_new_area`` and
    ``end_after_absent`` are those of the library's `auto_masklets`; ``shard_sample_ids`` are the videos of one
    queued shard (set by the dispatching run, not by users).
    """

    reseed_every: int | None = None
    new_object_iou: float = 0.3
    new_object_coverage: float = 0.5
    min_new_area: int = 100
    end_after_absent: int | None = None
    pred_field: str = "auto_masklets"
    masklets_field: str = MASKLETS_FIELD
    overwrite: bool = False
    num_shards: int = 1
    shard_sample_ids: list[str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pred_field = frame_field_name(self.pred_field)
        for name in ("reseed_every", "end_after_absent"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value}: give a number of frames >= 1, or leave it empty (never)")
        if self.num_shards < 1:
            raise ValueError(f"num_shards must be 1 or more, got {self.num_shards}")

    @property
    def step(self) -> str:
        """The finished mark of this prediction field."""
        return f"auto_masklets/{self.pred_field}"

    def samples_error(self, samples: fo.core.collections.SampleCollection) -> str | None:
        """Why ``samples`` cannot be run: not whole videos (images, a clips, frames or patches view, a grouped
        dataset), or SA-V imports whose ground-truth summaries ``masklets_field``
        holds; None when they can."""
        if samples.media_type == "image" and view_kind(samples) is None:
            return (
                f"dataset '{samples._dataset.name}' holds images; auto_masklets tracks objects through videos "
                "(for images, run apply_sam2 with prompt='automatic')"
            )
        error = videos_error(samples, "auto_masklets", clips=False)
        if error:
            return error
        if self.masklets_field == MASKLETS_FIELD and samples.has_sample_field(COMPLETED_FIELD):
            imported = samples.match(F(COMPLETED_FIELD).contains(IMPORT_STEP))
            if len(imported):
                return (
                    f"{len(imported)} videos (e.g. {video_name(imported.first())}) were imported from SA-V: their "
                    f"'{MASKLETS_FIELD}' describe the ground truth; pass another masklets_field, e.g. "
                    f"'{self.pred_field}_masklets'"
                )
        return None

    def check_samples(self, samples: fo.core.collections.SampleCollection) -> None:
        """Raise :meth:`samples_error` if there is one."""
        error = self.samples_error(samples)
        if error:
            raise ValueError(error)
