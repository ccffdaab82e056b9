"""SAM 2 on image datasets, for ``apply_sam2``: each image's boxes or clicks as prompts, or every object it holds.

``prompt`` is a sample field of Detections (one object per box) or Keypoints (one object per Keypoint, its clicks
read as for videos: ``sam2_labels`` / ``sam_labels`` per point, NaN points skipped), or ``automatic`` (the mask
generator's objects). Each image gets a Detections in ``pred_field`` with one Detection per non-empty mask,
pixel-exact: ``confidence`` is SAM 2's predicted IoU, prompted objects keep their prompt's ``label`` and ``index``,
automatic ones are indexed in the generator's order and carry its ``stability_score``. A box gives one mask, clicks
the best of three by predicted IoU (SAM's rule for ambiguous clicks, as FiftyOne's zoo models do).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import fiftyone as fo
import fiftyone.operators.types as types
import numpy as np

from sam2_plugins.bounded_files import read_image_file
from sam2_plugins.frames import image_to_rgb_uint8
from sam2_plugins.model_loading import load_image_predictor, load_mask_generator
from sam2_plugins.prompts import ObjectPrompt

from .completion import finish_each
from .forms import mark_invalid
from .image_prompt_checks import AUTOMATIC, image_prompt_error, image_prompt_fields
from .masks import mask_to_detection
from .tracks import declare_detection_attributes
from .video_prompts import LabelPrompts, keypoint_clicks

if TYPE_CHECKING:
    from .parameters import ApplySam2Params

HIGH_BIT_DEPTH_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N", "F")
"""PIL modes read by the library's percentile rule; every other mode is 8-bit and read as RGB."""


def read_image(path: str | Path) -> np.ndarray:
    """An image file as ``(H, W, 3)`` uint8 RGB: 8-bit images as they are, 16-bit and float ones by the library's
    percentile rule (``image_to_rgb_uint8``). Only a regular file within Pillow's pixel limit is read
    (``read_image_file``): a FIFO, a device or a huge header is an error naming the file."""
    image = read_image_file(path, "sample image", ValueError)
    if image.mode in HIGH_BIT_DEPTH_MODES:
        return image_to_rgb_uint8(np.asarray(image))
    return np.array(image.convert("RGB"))


def image_prompt_input(inputs: types.Object, ctx, name: str, default: str) -> None:
    """The prompt of an image dataset: ``automatic`` or one of its fields of Detections / Keypoints, checked."""
    choices = types.AutocompleteView()
    for value in (AUTOMATIC, *image_prompt_fields(ctx.dataset)):
        choices.add_choice(value, label=value)
    inputs.str(
        name,
        label="Prompt",
        default=default,
        view=choices,
        description=f"{AUTOMATIC} (segment everything), or a field of your boxes (Detections) or clicks (Keypoints)",
    )
    error = image_prompt_error(ctx.dataset, ctx.params.get(name) or default)
    if error:
        mark_invalid(inputs, name, error)


def image_prompts(sample: fo.Sample, prompt_field: str, width: int, height: int) -> LabelPrompts:
    """One prompt per box or Keypoint of ``prompt_field`` (a Keypoint whose points are all NaN gives none)."""
    found = LabelPrompts()
    labels = sample[prompt_field]
    if labels is None:
        return found
    items = labels.detections if isinstance(labels, fo.Detections) else labels.keypoints
    used = [item.index for item in items if item.index is not None]
    next_index = max(used, default=-1) + 1
    for item in items:
        if item.index is None:
            obj_id, next_index = next_index, next_index + 1
        else:
            obj_id = item.index
        if isinstance(item, fo.Detection):
            x, y, w, h = item.bounding_box
            found.prompts.append(
                ObjectPrompt(0, obj_id, box=(x * width, y * height, (x + w) * width, (y + h) * height))
            )
        else:
            points, point_labels = keypoint_clicks(item, width, height)
            if not points:
                continue
            found.prompts.append(ObjectPrompt(0, obj_id, points=points, labels=point_labels))
        found.attributes[obj_id] = {"label": item.label} if item.label is not None else {}
    return found


def _detections(
    masks: np.ndarray, scores: list[float], prompts: list[ObjectPrompt], attributes: dict[int, dict]
) -> list[fo.Detection]:
    detections = [
        mask_to_detection(mask, index=prompt.obj_id, confidence=score, **attributes[prompt.obj_id])
        for mask, score, prompt in zip(masks, scores, prompts)
    ]
    return [d for d in detections if d is not None]


def prompted_detections(predictor, image: np.ndarray, prompted: LabelPrompts) -> fo.Detections:
    """SAM 2's mask for each prompt on ``image``: boxes decoded in one batch, each object's clicks on their own."""
    if not prompted.prompts:
        return fo.Detections()
    predictor.set_image(image)
    boxed = [prompt for prompt in prompted.prompts if prompt.box is not None]
    clicked = [prompt for prompt in prompted.prompts if prompt.box is None]
    detections = []
    if boxed:
        masks, ious, _ = predictor.predict(box=np.array([p.box for p in boxed]), multimask_output=False)
        masks = masks.reshape(len(boxed), -1, *image.shape[:2])[:, 0]
        scores = np.asarray(ious).reshape(len(boxed), -1)[:, 0].tolist()
        detections += _detections(masks > 0, scores, boxed, prompted.attributes)
    for prompt in clicked:
        masks, ious, _ = predictor.predict(
            point_coords=np.array(prompt.points), point_labels=np.array(prompt.labels), multimask_output=True
        )
        best = int(np.argmax(ious))
        detections += _detections(masks[best : best + 1] > 0, [float(ious[best])], [prompt], prompted.attributes)
    return fo.Detections(detections=sorted(detections, key=lambda d: d.index))


def generated_detections(mask_generator, image: np.ndarray) -> fo.Detections:
    """Every object the mask generator finds on ``image``, indexed in its record order."""
    detections = []
    for index, record in enumerate(mask_generator.generate(image)):
        detection = mask_to_detection(
            record["segmentation"],
            index=index,
            confidence=record["predicted_iou"],
            stability_score=record["stability_score"],
        )
        if detection is not None:
            detections.append(detection)
    return fo.Detections(detections=detections)


def image_detections(model, image: np.ndarray, sample: fo.core.document.Document, prompt: str) -> fo.Detections:
    """The Detections of ``image`` (the media of ``sample``, an image sample or a video frame) for ``prompt``:
    ``model`` is the mask generator for ``automatic``, the image predictor for a field of prompts of ``sample``."""
    if prompt == AUTOMATIC:
        return generated_detections(model, image)
    height, width = image.shape[:2]
    return prompted_detections(model, image, image_prompts(sample, prompt, width, height))


def predict_images(
    samples: fo.core.collections.SampleCollection,
    params: ApplySam2Params,
    progress: Callable[[float, str], None] | None = None,
) -> list[str]:
    """Predict every image of ``samples`` not yet finished into ``params.pred_field``; returns their file names.

    ``params`` are ``apply_sam2``'s: the model, the mask generator's settings (`MaskGeneratorParams`), ``prompt``,
    ``pred_field``, ``overwrite`` and the finished mark ``step``; ``apply_sam2`` has checked the prompt.
    """
    model = None
    predicted = []
    for position, total, sample in finish_each(samples, params.step, params.overwrite):
        name = Path(sample.filepath).name
        if progress is not None:
            progress(position / total, f"{name}: image {position + 1}/{total}")
        if model is None:
            spec = params.model_spec()
            automatic = params.prompt == AUTOMATIC
            model = load_mask_generator(spec, **params.generator_options) if automatic else load_image_predictor(spec)
        sample[params.pred_field] = image_detections(model, read_image(sample.filepath), sample, params.prompt)
        sample.save()
        predicted.append(name)
    if predicted and params.prompt == AUTOMATIC:
        declare_detection_attributes(samples._dataset, params.pred_field, {"stability_score": fo.FloatField})
    return predicted
