"""FiftyOne image samples as 1-frame VOS videos (:class:`sam2_plugins.datasets.VosVideo`), so the library trains on
an image dataset's instance masks as Meta trains SAM 2 on SA-1B: each image a clip of one frame.

The ground truth is a sample field of Detections carrying instance masks (one object per Detection with a mask,
object id its position in the list; Detections without a mask are left out) or a Segmentation (one object per
non-zero value of its mask). The view decides what is read: a filtered-labels view trains on the objects it keeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import fiftyone as fo
import numpy as np

from sam2_plugins.datasets import VosVideo
from sam2_plugins.frames import ArraySource, FrameSource

from .image_predictions import read_image
from .masks import detection_to_mask
from .views import label_fields, wrong_label_field

IMAGE_GT_TYPES = (fo.Detections, fo.Segmentation)


def image_mask_fields(samples: fo.core.collections.SampleCollection) -> list[str]:
    """The sample fields of ``samples`` that can hold instance masks (Detections, Segmentation), sorted."""
    return label_fields(samples, IMAGE_GT_TYPES)


def image_gt_error(samples: fo.core.collections.SampleCollection, gt_field: str) -> str | None:
    """Why ``gt_field`` is not a field of instance masks of the image collection ``samples``, or None."""
    problem = wrong_label_field(samples, gt_field, IMAGE_GT_TYPES)
    if problem is None:
        return None
    what, offered = problem
    return (
        f"'{gt_field}' {what} of image dataset '{samples._root_dataset.name}'; pass the field of instance masks "
        f"(Detections with masks, or a Segmentation): {offered}"
    )


class SampleImage(VosVideo):
    """One image sample and its ground-truth instance masks in ``gt_field``, as a video of one annotated frame."""

    layout = "fiftyone"
    split = None

    def __init__(self, sample: fo.Sample, gt_field: str, name: str):
        self.video_id = name
        self.sample_id = str(sample.id)
        self.filepath = sample.filepath
        if sample.metadata is None or sample.metadata.width is None:
            sample.compute_metadata()
        self._size = int(sample.metadata.width), int(sample.metadata.height)
        self._masks = _instance_masks(sample[gt_field], self._size, f"sample {name} ('{gt_field}')")

    def frames(self) -> FrameSource:
        image = read_image(self.filepath)
        if image.shape[:2] != self.frame_size:
            raise ValueError(
                f"{self.filepath}: {image.shape[1]}x{image.shape[0]} but its metadata says "
                f"{self._size[0]}x{self._size[1]}; recompute it (dataset.compute_metadata(overwrite=True))"
            )
        return ArraySource(image[None], name=self.filepath)

    @property
    def frame_size(self) -> tuple[int, int]:
        return self._size[1], self._size[0]

    @property
    def object_ids(self) -> list[str]:
        return list(self._masks)

    def annotated_frames(self, obj: str | None = None) -> list[int]:
        return [0]

    def masks(self, frame: int, objects: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        wanted = self.object_ids if objects is None else objects
        return {obj: self._masks[obj] for obj in wanted if frame == 0 and obj in self._masks}

    def first_frame(self, obj: str) -> int:
        return 0


def _instance_masks(label: fo.Label | None, size: tuple[int, int], where: str) -> dict[str, np.ndarray]:
    """Object id -> non-empty ``(H, W)`` mask of a Detections or Segmentation label on a ``size = (W, H)`` image."""
    if label is None:
        return {}
    if isinstance(label, fo.Detections):
        masks = {
            str(position): detection_to_mask(detection, size)
            for position, detection in enumerate(label.detections)
            if detection.has_mask
        }
    else:
        values = label.get_mask()
        if values is None or values.ndim != 2 or values.shape != (size[1], size[0]):
            shape = "none" if values is None else "x".join(map(str, values.shape[::-1]))
            raise ValueError(
                f"{where}: the Segmentation mask is {shape}, not a {size[0]}x{size[1]} array of object values; "
                "store one integer label map per image"
            )
        masks = {str(value): values == value for value in np.unique(values) if value != 0}
    return {obj: mask for obj, mask in masks.items() if mask.any()}


def sample_images(samples: fo.core.collections.SampleCollection, gt_field: str) -> list[SampleImage]:
    """Every image of ``samples`` holding at least one instance mask in ``gt_field``, in view order, named by file
    name (by ``<file name> <sample id>`` where file names repeat)."""
    repeats = Counter(Path(path).name for path in samples.values("filepath"))
    images = []
    for sample in samples.iter_samples():
        name = Path(sample.filepath).name
        image = SampleImage(sample, gt_field, name if repeats[name] == 1 else f"{name} {sample.id}")
        if image.object_ids:
            images.append(image)
    return images
