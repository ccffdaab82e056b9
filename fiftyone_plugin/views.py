"""What a FiftyOne view holds, as the operators read it: whole videos, clips of them, or something they refuse.

A view of a video dataset (filtered labels, match, sort, limit, skip, select, select/exclude fields) holds whole
videos, its labels as the view filters them. A clips view (``to_clips``, ``to_trajectories``, the App's "to clips")
holds frame ranges ``support`` of the videos ``sample_id``: its frames are the videos' own frames, its sample ids
are not video ids. Frames views (``to_frames``), patches views (``to_patches``, ``to_evaluation_patches``) and
grouped datasets are refused by the video operators with the view named and what to target instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import fiftyone as fo
from bson import ObjectId
from fiftyone import ViewField as F

from .tracks import video_name

CLIP_KEY_SEPARATOR = ":"
"""Joins a clip's video id and frame range in a shard key: ``<video id>:<first>:<last>``."""


def view_kind(samples: fo.core.collections.SampleCollection) -> str | None:
    """The kind of generated or grouped collection ``samples`` is, as a user knows it; None for plain videos/images."""
    if samples._is_frames and samples._is_patches:
        return "patches view of video frames (to_frames, then to_patches)"
    if samples._is_frames:
        return "frames view (to_frames)"
    if samples._is_patches:
        return "patches view (to_patches / to_evaluation_patches)"
    if samples._is_clips:
        return "clips view (to_clips / to_trajectories)"
    if samples.media_type == "group":
        return "grouped dataset"
    return None


def label_fields(samples: fo.core.collections.SampleCollection | None, label_types: tuple[type, ...]) -> list[str]:
    """The sample fields of ``samples`` holding any of ``label_types``, sorted ([] without samples)."""
    if samples is None:
        return []
    return sorted(name for t in label_types for name in samples.get_field_schema(embedded_doc_type=t))


def wrong_label_field(
    samples: fo.core.collections.SampleCollection, field: str, label_types: tuple[type, ...]
) -> tuple[str, str] | None:
    """None when ``field`` of ``samples`` holds one of ``label_types``; else what is wrong with it ("is not a
    field", "holds no A or B") and the fields that would do, comma-separated ("none" when none would)."""
    offered = label_fields(samples, label_types)
    if field in offered:
        return None
    names = " or ".join(t.__name__ for t in label_types)
    what = f"holds no {names}" if samples.has_sample_field(field) else "is not a field"
    return what, ", ".join(offered) or "none"


def videos_error(
    samples: fo.core.collections.SampleCollection, operator: str, clips: bool, images: bool = False
) -> str | None:
    """Why ``operator``, which works on videos (and on clips views when ``clips``, on image datasets when
    ``images``), cannot run on ``samples``."""
    kind = view_kind(samples)
    root = samples._root_dataset
    works_on = ("videos and clips of them" if clips else "whole videos") + (" or whole images" if images else "")
    if kind is None:
        if samples.media_type == "video" or (images and samples.media_type == "image"):
            return None
        return f"{operator} works on {works_on}; dataset '{root.name}' holds {samples.media_type}s"
    if kind.startswith("clips") and clips:
        return None
    if images and root.media_type == "image":
        target = "the image dataset itself (prompt='<a Detections field>' segments each of its boxes)"
    elif kind == "grouped dataset":
        target = (
            "its video slices: dataset.select_group_slices('<slice>') in Python, or a SelectGroupSlices stage in the "
            "App's view bar"
        )
    elif kind.startswith("clips"):
        target = "the videos the clips come from (leave the clips view, select those videos or match them)"
    elif clips:
        target = "the video dataset, or a clips view (to_clips) of the frames you want"
    else:
        target = "the video dataset, or a view of its videos (match, select, filter_labels)"
    return f"{operator} works on {works_on}; this is a {kind} of dataset '{root.name}': target {target}"


def check_videos(
    samples: fo.core.collections.SampleCollection, operator: str, clips: bool, images: bool = False
) -> None:
    """Raise :func:`videos_error` if there is one."""
    error = videos_error(samples, operator, clips, images)
    if error:
        raise ValueError(error)


@dataclass
class VideoSpan:
    """The frames ``first``..``last`` of one video that a view holds.

    ``held`` is the view's own sample (a clip, or the video with its labels filtered and fields selected as the
    view has them): prompts and scores are read from it. ``video`` is the dataset's video sample: predictions are
    written to its frames. ``last`` is None for a whole video (to its end).
    """

    held: fo.core.sample.SampleView
    video: fo.Sample
    first: int = 1
    last: int | None = None

    @property
    def name(self) -> str:
        """The video's SA-V name, followed for a clip by its frame range."""
        name = video_name(self.video)
        return name if self.last is None else f"{name} frames {self.first}-{self.last}"


def held_span(samples: fo.core.collections.SampleCollection, held: fo.core.sample.SampleView) -> VideoSpan:
    """The :class:`VideoSpan` of ``held``, a sample of ``samples`` (a clip in a clips view)."""
    if samples._is_clips:
        first, last = held.support
        return VideoSpan(held, samples._root_dataset[str(held.sample_id)], first, last)
    return VideoSpan(held, samples._dataset[held.id])


def video_span(samples: fo.core.collections.SampleCollection, sample_id: str) -> VideoSpan:
    """The :class:`VideoSpan` of the sample ``sample_id`` of ``samples`` (a clip id in a clips view)."""
    return held_span(samples, samples.select(sample_id).first())


def filters_labels(samples: fo.core.collections.SampleCollection, frame_field: str) -> bool:
    """Whether the view ``samples`` filters the labels of the frame field ``frame_field`` (filter_labels, the App's
    label filters, a trajectories view)."""
    if not isinstance(samples, fo.DatasetView):
        return False
    return any(path.split(".")[0] == frame_field for path in samples._get_filtered_fields(frames=True) or ())


def flat_videos(dataset: fo.Dataset) -> fo.core.collections.SampleCollection:
    """``dataset``, or for a grouped dataset its video slices flattened, where ``select(id)`` finds every video."""
    return dataset.select_group_slices(media_type="video") if dataset.media_type == "group" else dataset


def shard_keys(samples: fo.core.collections.SampleCollection) -> list[str]:
    """What identifies each sample of ``samples`` across processes: its id, or for a clip ``<video id>:<first>:<last>``
    (a clips view's sample ids are remade whenever FiftyOne regenerates the clips)."""
    if not samples._is_clips:
        return samples.values("id")
    return [
        CLIP_KEY_SEPARATOR.join((str(video_id), str(first), str(last)))
        for video_id, (first, last) in zip(samples.values("sample_id"), samples.values("support"))
    ]


def samples_of_keys(ctx, keys: list[str]) -> fo.core.collections.SampleCollection:
    """The samples :func:`shard_keys` named, as the operation's target view holds them (its label filters and
    selected fields kept): clips are found in the App's clips view by video and frame range."""
    if not keys or CLIP_KEY_SEPARATOR not in keys[0]:
        return ctx.target_view().select(keys, ordered=True)
    clips = []
    for key in keys:
        video_id, first, last = key.split(CLIP_KEY_SEPARATOR)
        clips.append((F("_sample_id") == ObjectId(video_id)) & (F("support") == [int(first), int(last)]))
    return ctx.view.match(F.any(clips))
