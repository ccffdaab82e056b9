"""Operator ``apply_sam2``: SAM 2 video predictions for every video of the current view.

Each video is prompted (ground-truth masks, boxes or simulated clicks, or a field of user labels), propagated
forward from its first prompt, and written frame by frame to ``pred_field`` as Detections with masks: ``index``
is the prompt's track id, ``confidence`` the object score as a presence probability (sigmoid of SAM 2's
object-score logit). Frames are saved in batches as they come and only the memories the model can still attend
to are kept, so memory does not grow with the video. Finished videos are marked; a rerun skips them unless
``overwrite``. ``num_shards`` > 1 splits the view into that many delegated operations, for as many workers running
``fiftyone delegated launch`` against the same database.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np
import torch

from sam2_plugins.frames import open_frames
from sam2_plugins.model.official import DEFAULT_CHECKPOINT, DEVICE_CHOICES

from .completion import mark_finished, mark_unfinished, unfinished
from .forms import detections_field_input
from .masks import mask_to_detection
from .prompts import corrective_click, interior_center
from .sharding import queue_shards, shard_view
from .tracks import video_name
from .video_prompts import GT_PROMPTS, ObjectPrompt, ground_truth_prompts, label_field_prompts

CLICK_COUNTS = (1, 3, 5)
SAVE_EVERY_FRAMES = 16
"""Predicted frames are written to the database in batches of this many."""


def _step(pred_field: str) -> str:
    return f"apply_sam2/{pred_field}"


def _object_mask(frame_masks, obj_id: int) -> np.ndarray:
    """One object's boolean mask from a prompt call's ``(obj_ids, (N, H, W) logits)``."""
    obj_ids, logits = frame_masks
    return (logits[obj_ids.index(obj_id)] > 0).cpu().numpy()


def _add_clicks(session, prompt: ObjectPrompt, num_clicks: int) -> None:
    """The paper's click simulation: the interior center, then the largest error's center; ``num_clicks`` in all."""
    points, labels = [interior_center(prompt.gt_mask)], [1]
    output = session.add_points(prompt.frame_idx, prompt.obj_id, points, labels)
    for _ in range(num_clicks - 1):
        click = corrective_click(prompt.gt_mask, _object_mask(output, prompt.obj_id))
        if click is None:
            return
        points.append(click[0])
        labels.append(click[1])
        output = session.add_points(prompt.frame_idx, prompt.obj_id, points, labels)


def _add_prompt(session, prompt: ObjectPrompt, num_clicks: int) -> None:
    if prompt.gt_mask is not None:
        _add_clicks(session, prompt, num_clicks)
        return
    if prompt.mask is not None:
        session.add_mask(prompt.frame_idx, prompt.obj_id, prompt.mask)
    elif prompt.box is not None:
        clicks = (prompt.points, prompt.labels) if prompt.points else (None, None)
        session.add_box(prompt.frame_idx, prompt.obj_id, prompt.box, *clicks)
    elif prompt.points:
        session.add_points(prompt.frame_idx, prompt.obj_id, prompt.points, prompt.labels)


def frames_source(sample: fo.Sample) -> str:
    """What the predictor reads: the folder of the frames' own images (SA-V val/test JPEGs) or the video file."""
    first = sample.frames.first() if len(sample.frames) else None
    if first is not None and first.has_field("filepath") and first["filepath"]:
        return str(Path(first["filepath"]).parent)
    return sample.filepath


def predict_video(
    predictor,
    sample: fo.Sample,
    prompts: list[ObjectPrompt],
    pred_field: str,
    num_clicks: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Prompt, propagate and stream every frame's Detections into ``pred_field`` of ``sample``."""
    if not prompts:
        return
    frames = open_frames(frames_source(sample))
    session = predictor.init_video(frames, prune_memories=True)
    try:
        for prompt in prompts:
            _add_prompt(session, prompt, num_clicks)
        attributes = {prompt.obj_id: prompt.attributes for prompt in prompts}
        for done, (frame_idx, obj_ids, logits) in enumerate(session.propagate(), start=1):
            presence = torch.sigmoid(session.object_scores(frame_idx)).tolist()
            masks = (logits > 0).cpu().numpy()
            detections = [
                mask_to_detection(mask, index=int(obj_id), confidence=score, **attributes.get(obj_id, {}))
                for obj_id, mask, score in zip(obj_ids, masks, presence)
            ]
            frame_detections = [d for d in detections if d is not None]
            sample.frames[frame_idx + 1][pred_field] = fo.Detections(detections=frame_detections)
            if done % SAVE_EVERY_FRAMES == 0:
                sample.save()
            if progress is not None:
                progress(done, session.num_frames)
        sample.save()
    finally:
        session.close()
        frames.close()


def video_prompts(sample: fo.Sample, prompt: str, gt_field: str) -> list[ObjectPrompt]:
    if prompt in GT_PROMPTS:
        return ground_truth_prompts(sample, gt_field, prompt)
    return label_field_prompts(sample, prompt)


def apply_sam2(
    samples: fo.core.collections.SampleCollection,
    checkpoint: str = DEFAULT_CHECKPOINT,
    config: str | None = None,
    image_size: int = 1024,
    device: str | None = None,
    prompt: str = "gt_masks",
    num_clicks: int = 1,
    gt_field: str = "ground_truth",
    pred_field: str = "sam2",
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> list[str]:
    """Run SAM 2 over every unfinished video of ``samples``; returns the ids of the videos predicted now."""
    from sam2_plugins.model import Sam2VideoPredictor

    if prompt not in GT_PROMPTS and not samples.has_frame_field(prompt):
        raise ValueError(
            f"prompt '{prompt}' is neither one of {GT_PROMPTS} nor a frame field of dataset "
            f"'{samples._dataset.name}'; pick a prompt mode or the field holding your clicks/boxes"
        )
    if prompt == "gt_clicks" and num_clicks not in CLICK_COUNTS:
        raise ValueError(f"num_clicks must be one of {CLICK_COUNTS} (the SAM 2 paper's protocol), got {num_clicks}")
    if prompt in GT_PROMPTS and not samples.has_frame_field(gt_field):
        raise ValueError(
            f"'{gt_field}' is not a frame field of dataset '{samples._dataset.name}'; "
            "pass the ground-truth field (import_sav writes 'ground_truth')"
        )
    step = _step(pred_field)
    if overwrite:
        mark_unfinished(samples, step)
    todo = unfinished(samples, step)
    if not len(todo):
        return []
    predictor = Sam2VideoPredictor.from_checkpoint(checkpoint, config=config, image_size=image_size, device=device)
    predicted = []
    sample_ids = todo.values("id")
    total = len(sample_ids)
    dataset = samples._dataset
    for position, sample_id in enumerate(sample_ids):
        if dataset.has_frame_field(pred_field):  # a video cut off half-way is redone whole
            dataset.select(sample_id).set_field(f"frames.{pred_field}", None).save()
        sample = dataset[sample_id]
        name = video_name(sample)

        def frame_progress(done: int, num_frames: int, position: int = position, name: str = name) -> None:
            if progress is not None:
                progress((position + done / num_frames) / total, f"{name}: frame {done}/{num_frames}")

        predict_video(
            predictor, sample, video_prompts(sample, prompt, gt_field), pred_field, num_clicks, frame_progress
        )
        mark_finished(sample, step)
        predicted.append(name)
    return predicted


class ApplySam2(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="apply_sam2",
            label="SAM 2: segment videos",
            description="Propagate SAM 2 masklets over videos",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        inputs.str(
            "checkpoint",
            label="Checkpoint",
            default=DEFAULT_CHECKPOINT,
            description="an official name (downloaded to the cache) or a local .pt path",
        )
        inputs.str("config", label="Config", description="e.g. sam2.1_hiera_t; empty: inferred from the checkpoint")
        inputs.int(
            "image_size",
            label="Image size",
            default=1024,
            min=64,
            description="model input resolution; lower is faster and less accurate",
        )
        inputs.enum("device", list(DEVICE_CHOICES), label="Device", default="auto")
        choices = types.AutocompleteView()
        for mode in GT_PROMPTS:
            choices.add_choice(mode, label=mode)
        inputs.str(
            "prompt",
            label="Prompt",
            default="gt_masks",
            view=choices,
            description="gt_masks, gt_boxes, gt_clicks, or a frame field of your Detections/Keypoints",
        )
        inputs.enum("num_clicks", list(CLICK_COUNTS), label="Clicks (gt_clicks)", default=1)
        detections_field_input(inputs, ctx, "gt_field", "Ground truth", "ground_truth")
        inputs.str("pred_field", label="Prediction field", default="sam2")
        inputs.bool("overwrite", label="Redo videos already predicted", default=False)
        inputs.int(
            "num_shards",
            label="Shards",
            default=1,
            min=1,
            description="split the view into this many delegated runs, one per GPU worker",
        )
        return types.Property(inputs, view=types.View(label="Segment videos with SAM 2"))

    def execute(self, ctx) -> dict:
        params = ctx.params
        num_shards = int(params.get("num_shards") or 1)
        shard_index = params.get("shard_index")
        if num_shards > 1 and shard_index is None:
            return {"queued": queue_shards(ctx, self.uri, num_shards)}
        view = shard_view(ctx.view, shard_index, num_shards) if shard_index is not None else ctx.view
        device = params.get("device")
        predicted = apply_sam2(
            view,
            checkpoint=params.get("checkpoint") or DEFAULT_CHECKPOINT,
            config=params.get("config") or None,
            image_size=int(params.get("image_size") or 1024),
            device=device,
            prompt=params.get("prompt") or "gt_masks",
            num_clicks=int(params.get("num_clicks") or 1),
            gt_field=params.get("gt_field") or "ground_truth",
            pred_field=params.get("pred_field") or "sam2",
            overwrite=bool(params.get("overwrite")),
            progress=lambda fraction, label: ctx.set_progress(progress=fraction, label=label),
        )
        return {"predicted": predicted}
