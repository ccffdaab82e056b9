"""Operator ``apply_sam2``: SAM 2 video predictions for every video or clip of the target view.

Each video is prompted (ground-truth masks, boxes or simulated clicks, or a field of user labels), each object
propagated forward from its first prompt (Meta's VOS protocol; ground-truth prompts also leave the predictor's
interactive post-processing off unless ``apply_postprocessing``), and written frame by frame to ``pred_field`` as
Detections with masks: ``index``
is the prompt's track id, ``confidence`` the object score as a presence probability (sigmoid of SAM 2's
object-score logit). Prompts are read as the view holds them: a filtered-labels view prompts only the objects it
keeps; a clip of a clips view is prompted only from its own frames (ground-truth prompts: the objects whose first
visible frame, where the SA-V protocol prompts them, lies in the clip) and propagated to its last frame, its
predictions written to those frames of its video. The prompted objects' earlier predictions on the frames
predicted are replaced; other objects' stay. Frames, patches views and grouped datasets are refused, naming what
to target. Frames are saved in batches as they come and only the memories the model can still attend
to are kept, so memory does not grow with the video. Finished videos are marked; a rerun skips them unless
``overwrite``. ``num_shards`` > 1 splits the view into that many delegated operations, fixed when queued, for as
many workers running ``fiftyone delegated launch`` against the same database. torch loads only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from sam2_plugins.model_loading import load_video_predictor
from sam2_plugins.prompt_simulation import CLICK_COUNTS

from .app_colors import distinguish_field_colors
from .completion import mark_finished, mark_unfinished, unfinished
from .forms import (
    delegation_notice,
    frame_field_error,
    frame_field_input,
    frame_field_name,
    frame_label_fields,
    mark_invalid,
    mark_out_of_range,
)
from .image_predictions import image_prompt_input, predict_images
from .image_prompt_checks import AUTOMATIC, is_image_collection
from .parameters import (
    ApplySam2Params,
    default_postprocessing,
    from_params,
    pred_field_is_prompt_source,
    prompt_source_field,
)
from .sharding import execute_sharded, num_shards_input
from .video_predictions import SAVE_EVERY_FRAMES, predicted_frames
from .video_prompts import GT_PROMPTS, LabelPrompts, ground_truth_prompts, label_field_prompts
from .views import VideoSpan, flat_videos, video_span, videos_error

PROMPT_LABEL_TYPES = (fo.Detections, fo.Keypoints)
POSTPROCESSING_DESCRIPTION = (
    "fill small holes and fall back to the best of three masks when one is unstable, as SAM 2's interactive "
    "predictor does; Meta's VOS benchmark runs (vos_inference.py) leave it off, and so do ground-truth prompts here "
    "by default, so their masks are that script's"
)


def video_prompts(span: VideoSpan, params: ApplySam2Params) -> LabelPrompts:
    """The prompts the view holds for one video or clip.

    Ground-truth prompts stay where the VOS protocol puts them, on each object's first visible frame of the whole
    video: a clip is prompted with the objects whose first frame lies inside it (a later frame of a clip is scored
    by the evaluator, so a ground-truth prompt there would inflate J&F).
    """
    if params.prompt not in GT_PROMPTS:
        return label_field_prompts(span.held, params.prompt)
    prompted = ground_truth_prompts(span.held, params.gt_field, params.prompt, params.num_clicks)
    if span.last is None:
        return prompted
    firsts = {
        prompt.obj_id: prompt.frame for prompt in ground_truth_prompts(span.video, params.gt_field, "gt_boxes").prompts
    }
    prompted.prompts = [prompt for prompt in prompted.prompts if firsts.get(prompt.obj_id) == prompt.frame]
    return prompted


def delete_object_predictions(span: VideoSpan, pred_field: str, indices: list[int]) -> None:
    """Delete the Detections of objects ``indices`` from ``pred_field`` on the frames of ``span`` (a video cut off
    half-way is redone whole; other objects' predictions stay)."""
    dataset = span.video.dataset
    if not dataset.has_frame_field(pred_field):
        return
    numbers = F("frame_number") >= span.first
    if span.last is not None:
        numbers &= F("frame_number") <= span.last
    frames = flat_videos(dataset).select(span.video.id).match_frames(numbers)
    field = f"frames.{pred_field}"
    dataset.delete_labels(view=frames.filter_labels(field, F("index").is_in(indices)), fields=field)
    span.video.reload(hard=True)


def predict_video(
    predictor,
    span: VideoSpan,
    params: ApplySam2Params,
    progress: Callable[[int, int], None] | None = None,
) -> bool:
    """Prompt from ``span.held``, propagate over the span and stream every frame's Detections into
    ``params.pred_field`` of ``span.video``, beside other objects' Detections; False when nothing was prompted."""
    prompted = video_prompts(span, params)
    if not prompted.prompts:
        return False
    delete_object_predictions(span, params.pred_field, sorted({prompt.obj_id for prompt in prompted.prompts}))
    video = span.video
    frames = predicted_frames(predictor, video, prompted, span.last)
    for done, (number, num_frames, detections) in enumerate(frames, start=1):
        frame = video.frames[number]
        others = frame[params.pred_field] if frame.has_field(params.pred_field) else None
        kept = others.detections if others is not None else []
        frame[params.pred_field] = fo.Detections(
            detections=sorted([*kept, *detections.detections], key=lambda detection: detection.index)
        )
        if done % SAVE_EVERY_FRAMES == 0:
            video.save()
        if progress is not None:
            progress(done, num_frames)
    video.save()
    return True


def apply_sam2(
    samples: fo.core.collections.SampleCollection,
    *,
    progress: Callable[[float, str], None] | None = None,
    **options,
) -> list[str]:
    """Run SAM 2 over every unfinished video of ``samples``; ``options`` are :class:`ApplySam2Params` fields.

    Returns the names of the videos (and clips: ``<video> frames <first>-<last>``) predicted now.
    """
    return predict_videos(samples, ApplySam2Params(**options), progress)[0]


def predict_videos(
    samples: fo.core.collections.SampleCollection,
    params: ApplySam2Params,
    progress: Callable[[float, str], None] | None = None,
) -> tuple[list[str], list[str]]:
    """:func:`apply_sam2` with its parameters built: the names predicted and those the view holds no prompt in."""
    params.check_fields(samples)
    distinguish_field_colors(samples, params.pred_field, params.prompt_source)
    if is_image_collection(samples):
        return predict_images(samples, params, progress), []
    if params.overwrite:
        mark_unfinished(samples, params.step)
    todo = unfinished(samples, params.step)
    if not len(todo):
        return [], []
    predictor = load_video_predictor(params.model_spec())
    predicted, unprompted = [], []
    sample_ids = todo.values("id")
    total = len(sample_ids)
    for position, sample_id in enumerate(sample_ids):
        span = video_span(samples, sample_id)

        def frame_progress(done: int, num_frames: int, position: int = position, name: str = span.name) -> None:
            if progress is not None:
                progress((position + done / num_frames) / total, f"{name}: frame {done}/{num_frames}")

        if predict_video(predictor, span, params, frame_progress):
            mark_finished(span.held, params.step)
            predicted.append(span.name)
        else:
            unprompted.append(span.name)
    return predicted, unprompted


class ApplySam2(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="apply_sam2",
            label="SAM 2: segment videos",
            description=(
                "Propagate SAM 2 masklets over videos, or over each clip of a clips view (prompted from its frames, "
                "ground truth only where an object shows first; written to its frames); filtered labels prompt only "
                "the objects kept; frames and patches views and grouped datasets are refused"
            ),
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = ApplySam2Params()
        inputs = types.Object()
        # ctx.target_view() offers FiftyOne's target choice: dataset, current view or selected samples
        view_error = videos_error(ctx.target_view(), "apply_sam2", clips=True, images=True)
        if view_error:
            inputs.view("view_error", types.Error(label=view_error))
            return types.Property(inputs, view=types.View(label="Segment videos with SAM 2"))
        defaults.add_model_inputs(inputs, ctx)
        if is_image_collection(ctx.dataset):
            image_prompt_input(inputs, ctx, "prompt", AUTOMATIC)
            if (ctx.params.get("prompt") or AUTOMATIC) == AUTOMATIC:
                defaults.add_inputs(inputs)
        else:
            prompt_choices = types.AutocompleteView()
            for mode in (*GT_PROMPTS, *frame_label_fields(ctx, *PROMPT_LABEL_TYPES)):
                prompt_choices.add_choice(mode, label=mode)
            inputs.str(
                "prompt",
                label="Prompt",
                default=defaults.prompt,
                view=prompt_choices,
                description="gt_masks, gt_boxes, gt_clicks, or a frame field of your Detections/Keypoints",
            )
            prompt = ctx.params.get("prompt") or defaults.prompt
            if prompt not in GT_PROMPTS:
                error = frame_field_error(ctx, prompt, *PROMPT_LABEL_TYPES)
                if error:
                    mark_invalid(inputs, "prompt", error)
            if prompt == "gt_clicks":
                inputs.enum("num_clicks", list(CLICK_COUNTS), label="Clicks", default=defaults.num_clicks)
            if prompt in GT_PROMPTS:
                frame_field_input(inputs, ctx, "gt_field", "Ground truth", defaults.gt_field)
        prompt = ctx.params.get("prompt") or (AUTOMATIC if is_image_collection(ctx.dataset) else defaults.prompt)
        inputs.bool(
            "apply_postprocessing",
            label="Interactive post-processing",
            default=default_postprocessing(prompt),
            description=POSTPROCESSING_DESCRIPTION,
        )
        inputs.str("pred_field", label="Prediction field", default=defaults.pred_field)
        prompt_source = prompt_source_field(prompt, ctx.params.get("gt_field") or defaults.gt_field)
        pred_field = ctx.params.get("pred_field") or defaults.pred_field
        if frame_field_name(pred_field) == frame_field_name(prompt_source):
            mark_invalid(inputs, "pred_field", pred_field_is_prompt_source(pred_field))
        inputs.bool("overwrite", label="Redo videos already predicted", default=defaults.overwrite)
        num_shards_input(inputs, defaults.num_shards)
        mark_out_of_range(inputs, ctx)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Segment videos with SAM 2"))

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)

    def execute(self, ctx) -> dict:
        params = from_params(ApplySam2Params, ctx.params)

        def run(view) -> dict:
            if not len(view):
                raise ValueError(f"nothing to predict: the target view of dataset '{ctx.dataset.name}' has no samples")
            progress = lambda fraction, label: ctx.set_progress(progress=fraction, label=label)
            predicted, unprompted = predict_videos(view, params, progress)
            summary = f"{len(predicted)} predicted into '{params.pred_field}'"
            if unprompted:
                where = (
                    f"no object's first visible frame of '{params.gt_field}' (ground-truth prompts go there)"
                    if params.prompt in GT_PROMPTS
                    else f"no prompt in '{params.prompt}'"
                )
                summary += f"; {len(unprompted)} hold {where} in the view, nothing predicted: " + ", ".join(unprompted)
            skipped = len(view) - len(predicted) - len(unprompted)
            if skipped:
                summary += f"; {skipped} skipped: already predicted (tick overwrite to redo them)"
            return {"predicted": predicted, "summary": summary} | ({"unprompted": unprompted} if unprompted else {})

        return execute_sharded(ctx, self.uri, params, params.check_fields, run)
