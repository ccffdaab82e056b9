"""Operator ``auto_masklets``: every object of unlabeled videos, found and tracked as SA-V's automatic masklets were.

Each video runs the library's `sam2_plugins.auto_masklets.auto_masklets`: the mask generator segments everything on
the first frame, every mask is tracked through the video in one session, and with ``reseed_every`` the generator
runs again every so many frames to add objects that appeared. Frames are written to ``pred_field`` as they come, as
``import_sav`` writes SA-V's automatic masklets: one Detection per visible object, ``index`` = ``masklet_id`` = the
object's number (generator order), ``masklet_type`` "auto", ``label`` its SA-V name (``auto_000``), the seeding
mask's ``predicted_iou`` and the frame's ``stability_score``. Once a video is done, one ``MaskletSummary`` per
object goes to the sample field ``masklets_field`` (``sav_masklets`` by default, the field of an SA-V import).

Finished videos are marked and a rerun skips them unless ``overwrite``; ``num_shards`` > 1 queues that many
delegated operations with the videos fixed when queued. torch loads only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from sam2_plugins.frames import open_frames
from sam2_plugins.model_loading import load_mask_generator, load_video_predictor
from sam2_plugins.sav_masklets import size_bucket

from .completion import COMPLETED_FIELD, finish_each
from .forms import delegation_notice, frame_field_name, mark_invalid, mark_out_of_range
from .import_sav import STEP as IMPORT_STEP
from .masks import mask_to_detection
from .parameters import MaskGeneratorParams, ModelParams, from_params
from .sharding import execute_sharded, num_shards_input
from .tracks import (
    MASKLET_ATTRIBUTES,
    MASKLETS_FIELD,
    MaskletSummary,
    declare_detection_attributes,
    sav_object_name,
    video_name,
)
from .video_predictions import SAVE_EVERY_FRAMES, frames_source
from .views import videos_error, view_kind

MASKLET_TYPE = "auto"


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


def load_models(params: AutoMaskletsParams):
    """``(video predictor, mask generator)`` sharing one network (this is where torch is first imported)."""
    spec = params.model_spec()
    video_predictor = load_video_predictor(spec)
    return video_predictor, load_mask_generator(video_predictor, **params.generator_options)


def masklet_summary(masklet, areas: list[int], frame_area: int) -> MaskletSummary:
    """The SA-V summary of a library `AutoMasklet` whose visible masks had ``areas`` pixels."""
    size_abs = sum(areas) / len(areas) if areas else 0.0
    visible = masklet.visible_frames
    return MaskletSummary(
        index=masklet.obj_id,
        masklet_id=masklet.obj_id,
        masklet_type=MASKLET_TYPE,
        annotated_frames=[frame_idx + 1 for frame_idx in sorted(masklet.rles)],
        first_appeared_frame=visible[0] + 1 if visible else None,
        frame_count=masklet.frame_count,
        size_rel=size_abs / frame_area,
        size_abs=size_abs,
        size_bucket=size_bucket(size_abs),
        visibility_changes=masklet.visibility_changes,
        predicted_iou=masklet.predicted_iou,
    )


def track_video(
    models,
    sample: fo.Sample,
    params: AutoMaskletsParams,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Find and track every object of one video into ``params.pred_field``; returns the number of masklets."""
    from sam2_plugins.auto_masklets import auto_masklets

    video_predictor, mask_generator = models
    frames = open_frames(frames_source(sample))
    try:
        tracker = auto_masklets(
            video_predictor,
            mask_generator,
            frames,
            reseed_every=params.reseed_every,
            new_object_iou=params.new_object_iou,
            new_object_coverage=params.new_object_coverage,
            min_new_area=params.min_new_area,
            end_after_absent=params.end_after_absent,
        )
        areas: dict[int, list[int]] = {}
        for done, (frame_idx, obj_ids, logits) in enumerate(tracker, start=1):
            detections = []
            for obj_id, mask in zip(obj_ids, (logits > 0).cpu().numpy()):
                masklet = tracker.masklets[obj_id]
                detection = mask_to_detection(
                    mask,
                    label=sav_object_name(obj_id, MASKLET_TYPE),
                    index=obj_id,
                    masklet_id=obj_id,
                    masklet_type=MASKLET_TYPE,
                    predicted_iou=masklet.predicted_iou,
                    stability_score=masklet.stability_scores[frame_idx],
                )
                if detection is not None:
                    detections.append(detection)
                    areas.setdefault(obj_id, []).append(int(mask.sum()))
            sample.frames[frame_idx + 1][params.pred_field] = fo.Detections(detections=detections)
            if done % SAVE_EVERY_FRAMES == 0:
                sample.save()
            if progress is not None:
                progress(done, len(frames))
        frame_area = frames.height * frames.width
        sample[params.masklets_field] = [
            masklet_summary(masklet, areas.get(masklet.obj_id, []), frame_area).to_dict()
            for masklet in tracker.masklets
        ]
        sample.save()
        return len(tracker.masklets)
    finally:
        frames.close()


def track_videos(
    samples: fo.core.collections.SampleCollection,
    params: AutoMaskletsParams,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, int]:
    """Run automatic masklets on every unfinished video of ``samples``: ``{video name: masklets}`` of this run."""
    params.check_samples(samples)
    dataset = samples._dataset
    models = None
    tracked = {}
    for position, total, sample in finish_each(samples, params.step, params.overwrite):
        models = models or load_models(params)
        if dataset.has_frame_field(params.pred_field):  # a video cut off half-way is redone whole
            dataset.select(sample.id).set_field(f"frames.{params.pred_field}", None).save()
            sample.reload(hard=True)
        name = video_name(sample)

        def frame_progress(done: int, num_frames: int, at: int = position, of: int = total, name: str = name) -> None:
            if progress is not None:
                progress((at + done / num_frames) / of, f"{name}: frame {done}/{num_frames}")

        tracked[name] = track_video(models, sample, params, frame_progress)
    if tracked:
        declare_detection_attributes(dataset, params.pred_field, {**MASKLET_ATTRIBUTES, "predicted_iou": fo.FloatField})
    return tracked


def auto_masklets(
    samples: fo.core.collections.SampleCollection,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> dict[str, int]:
    """:func:`track_videos` from the SDK; ``options`` are :class:`AutoMaskletsParams` fields."""
    return track_videos(samples, AutoMaskletsParams(**options), progress)


class AutoMasklets(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="auto_masklets",
            label="SAM 2: automatic masklets",
            description=(
                "Segment everything on the first frame of each video, then track it all; whole videos only "
                "(views of them: match, select, sort; clips, frames and patches views are refused)"
            ),
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = AutoMaskletsParams()
        inputs = types.Object()
        # ctx.target_view() offers FiftyOne's target choice: dataset, current view or selected samples
        view_error = None if ctx.dataset is None else videos_error(ctx.target_view(), "auto_masklets", clips=False)
        if view_error:
            inputs.view("not_videos", types.Error(label=view_error))
            return types.Property(inputs, view=types.View(label="Automatic masklets"))
        defaults.add_model_inputs(inputs, ctx)
        defaults.add_inputs(inputs)
        inputs.int(
            "reseed_every",
            label="Reseed every",
            min=1,
            description="frames between runs of the generator that add new objects; empty: only the first frame",
        )
        if ctx.params.get("reseed_every"):
            inputs.float(
                "new_object_iou",
                label="New object: IoU below",
                default=defaults.new_object_iou,
                min=0,
                max=1,
                description="a generated mask is new when its IoU with every tracked mask is below this",
            )
            inputs.float(
                "new_object_coverage",
                label="New object: covered below",
                default=defaults.new_object_coverage,
                min=0,
                max=1,
                description="... and tracked masks cover less than this fraction of it",
            )
            inputs.int(
                "min_new_area",
                label="New object: area from",
                default=defaults.min_new_area,
                min=0,
                description="... and it has at least this many pixels",
            )
        inputs.int(
            "end_after_absent",
            label="End after absent",
            min=1,
            description="stop tracking an object absent this many frames in a row; empty: track to the end",
        )
        inputs.str("pred_field", label="Prediction field", default=defaults.pred_field)
        inputs.str(
            "masklets_field",
            label="Masklet summaries field",
            default=defaults.masklets_field,
            description="sample field of one summary per masklet, as import_sav writes",
        )
        try:
            error = from_params(AutoMaskletsParams, ctx.params).samples_error(ctx.target_view())
        except ValueError:  # a bad value elsewhere, which its own input reports
            error = None
        if error:
            mark_invalid(inputs, "masklets_field", error)
        inputs.bool("overwrite", label="Redo videos already done", default=defaults.overwrite)
        num_shards_input(inputs, defaults.num_shards)
        mark_out_of_range(inputs, ctx)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Automatic masklets"))

    def execute(self, ctx) -> dict:
        params = from_params(AutoMaskletsParams, ctx.params)

        def progress(fraction: float, label: str) -> None:
            ctx.set_progress(progress=fraction, label=label)

        return execute_sharded(
            ctx, self.uri, params, params.check_samples, lambda view: {"tracked": track_videos(view, params, progress)}
        )
