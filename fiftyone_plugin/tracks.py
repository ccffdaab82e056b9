"""Object tracks in a video sample: SA-V object names, per-object annotated frames, Detections by track id.

A track is the set of Detections sharing an ``index`` across a video's frames. FiftyOne frame numbers are SA-V
frame indices + 1. ``sav_masklets`` (written by ``import_sav``) lists each object's annotated frames, including
those where it is absent: the frames the official evaluator scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import fiftyone as fo

from sam2_plugins.frame_names import object_name

MASKLETS_FIELD = "sav_masklets"
"""Sample field: one :class:`MaskletSummary` per object, stored as a dict."""
MASKLET_ATTRIBUTES = {"masklet_id": fo.IntField, "masklet_type": fo.StringField, "stability_score": fo.FloatField}
"""The SA-V attributes of masklet Detections (``import_sav``, ``auto_masklets``) and their field types."""


@dataclass
class MaskletSummary:
    """One object of an imported video: its track ``index``, SA-V identity, frames it is scored on, SA-V stats.

    ``annotated_frames`` are FiftyOne frame numbers, including those where the object is absent; the SA-V
    statistics are those of the train JSON (None for val/test objects, which have no such fields);
    ``predicted_iou`` is the mask generator's score of an automatic masklet's seeding mask (``auto_masklets``).
    """

    index: int
    masklet_id: int
    masklet_type: str
    annotated_frames: list[int] = field(default_factory=list)
    first_appeared_frame: int | None = None
    frame_count: int | None = None
    size_rel: float | None = None
    size_abs: float | None = None
    size_bucket: str | None = None
    visibility_changes: int | None = None
    edited_frame_count: int | None = None
    predicted_iou: float | None = None
    object_id: str | None = None
    """The object's id in its dataset's layout (DAVIS label ``"2"``, SA-V folder ``"001"``): what exports write."""
    frame_range: list[int] | None = None
    """LVOS: the object's ``frame_range`` of its meta JSON, ``[start, end, frame_nums]`` (numbers of its frame
    files), which its protocol scores it on; None for other layouts."""

    @property
    def object_name(self) -> str:
        """The object's folder name in SA-V layout."""
        return sav_object_name(self.masklet_id, self.masklet_type)

    def to_dict(self) -> dict:
        return {name: value for name, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, stored: dict) -> MaskletSummary:
        names = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in stored.items() if name in names})


def masklet_summaries(sample: fo.Sample) -> list[MaskletSummary]:
    """The objects ``import_vos`` stored on ``sample``; empty for samples it did not import."""
    stored = sample[MASKLETS_FIELD] if sample.has_field(MASKLETS_FIELD) else None
    return [MaskletSummary.from_dict(masklet) for masklet in stored or []]


def video_name(sample: fo.Sample) -> str:
    """The SA-V video id of a sample, or its sample id when it has none."""
    return (sample["video_id"] if sample.has_field("video_id") else None) or str(sample.id)


def frame_index(frame_number: int) -> int:
    """The SA-V frame index (0-based) of a FiftyOne frame number (1-based)."""
    return frame_number - 1


def sav_object_name(masklet_id: int, masklet_type: str | None) -> str:
    """The object's folder name in SA-V layout; automatic masklets, whose ids restart at 0, are prefixed."""
    return f"auto_{object_name(masklet_id)}" if masklet_type == "auto" else object_name(masklet_id)


def detection_object_name(detection: fo.Detection) -> str:
    """The SA-V object name of a Detection from its masklet attributes, or its track index if it has none."""
    masklet_id = detection.get_field("masklet_id") if detection.has_field("masklet_id") else None
    if masklet_id is None:
        return sav_object_name(detection.index, None)
    masklet_type = detection.get_field("masklet_type") if detection.has_field("masklet_type") else None
    return sav_object_name(int(masklet_id), masklet_type)


def frame_size(sample: fo.Sample) -> tuple[int, int]:
    """``(width, height)`` of a video sample's frames, from its metadata (computed when missing)."""
    if sample.metadata is None or sample.metadata.frame_width is None:
        sample.compute_metadata()
    return int(sample.metadata.frame_width), int(sample.metadata.frame_height)


def detections_by_frame(sample: fo.Sample, field: str) -> dict[int, dict[int, fo.Detection]]:
    """``{frame_number: {track index: Detection}}`` for the frames where ``field`` is set (maybe to no objects)."""
    tracks: dict[int, dict[int, fo.Detection]] = {}
    for number, frame in sample.frames.items():
        detections = frame[field] if frame.has_field(field) else None
        if detections is not None:
            tracks[number] = {d.index: d for d in detections.detections if d.index is not None}
    return tracks


def annotated_frames(sample: fo.Sample, gt_by_frame: dict[int, dict[int, fo.Detection]]) -> dict[int, list[int]]:
    """``{track index: sorted frame numbers}`` each object is annotated on.

    From ``sav_masklets`` when the import stored it; otherwise every frame where the ground-truth field is set
    counts as annotated for every object seen in it.
    """
    masklets = masklet_summaries(sample)
    if masklets:
        return {m.index: sorted(m.annotated_frames) for m in masklets}
    indices = sorted({index for objects in gt_by_frame.values() for index in objects})
    return {index: sorted(gt_by_frame) for index in indices}


def declare_detection_attributes(dataset: fo.Dataset, field: str, attributes: dict[str, type]) -> None:
    """Put ``attributes`` of the Detections in ``field`` (a frame field of a video dataset, else a sample field) in
    the schema, so the App filters by them, without scanning every label."""
    video = dataset.media_type == "video"
    for name, field_type in attributes.items():
        path = f"{field}.detections.{name}"
        if video and not dataset.has_frame_field(path):
            dataset.add_frame_field(path, field_type)
        elif not video and not dataset.has_sample_field(path):
            dataset.add_sample_field(path, field_type)
