"""Operator ``export_sav_predictions``: predictions in the layout of the dataset the videos were imported from, as
that benchmark's tools read them.

Videos imported by ``import_vos`` are written by their layout (``Layout.write_predictions``): DAVIS, MOSE, LVOS and
YouTube-VOS as ``<output_dir>/<video>/<frame>.png`` palette label maps (object ``k`` = label ``k``, the input's
palette), SA-V as ``<output_dir>/<video>/<object>/<frame>.png`` per-object folders (0/1 with the palette, as Meta's
``vos_inference.py --per_obj_png_file`` writes them), the frames named as in the dataset; the layout reopens the
root the video came from (``vos_source``) for its frame names and palette. Other videos (made with
``auto_masklets``, or imported before layouts were recorded) are written as SA-V per-object folders
(``<masklet_id:03d>``, ``auto_<masklet_id:03d>`` for automatic masklets, 0/255) for every frame. Every object of
``sav_masklets`` gets its PNGs, an object predicted empty everywhere too. For a hidden test set (YouTube-VOS, MOSE)
``submission_zip`` also zips the predictions as the benchmark's server takes them.

A video is written to a temporary folder and renamed when complete, so a rerun skips finished videos and never
sees a half-written one; ``overwrite`` replaces the frame PNGs and keeps any other file in the video's folder.
Each video id must be a plain folder name of one sample only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np

from sam2_plugins.datasets import Layout, VosVideo, get_layout
from sam2_plugins.safe_names import safe_component
from sam2_plugins.sav_writer import write_sav_predictions

from .forms import delegation_notice, frame_field_input, progress_reporter
from .masks import detection_to_mask
from .parameters import from_params
from .tracks import (
    MASKLETS_FIELD,
    detection_object_name,
    frame_index,
    frame_size,
    masklet_summaries,
    video_name,
)
from .views import check_videos
from .vos_import import LAYOUT_FIELD, SOURCE_FIELD


class _PredictedMasks(Mapping):
    """Frame index -> object id -> mask of a sample's predictions, rendered one frame at a time when read."""

    def __init__(self, sample: fo.Sample, pred_field: str, object_ids: dict[int, str]):
        self._size = frame_size(sample)
        self._object_ids = object_ids
        self._frames = {}
        for number, frame in sample.frames.items():
            detections = frame[pred_field] if frame.has_field(pred_field) else None
            if detections is not None and detections.detections:
                self._frames[frame_index(number)] = detections.detections

    def _object_id(self, detection: fo.Detection) -> str:
        return self._object_ids.get(detection.index) or detection_object_name(detection)

    def __getitem__(self, frame: int) -> dict[str, np.ndarray]:
        return {self._object_id(d): detection_to_mask(d, self._size) > 0 for d in self._frames[frame]}

    def __iter__(self) -> Iterator[int]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)


class _SourceVideos:
    """The videos of the roots samples were imported from, each root listed once."""

    def __init__(self):
        self._videos: dict[tuple[str, str, str | None], dict[str, VosVideo]] = {}

    def find(self, sample: fo.Sample) -> tuple[Layout, VosVideo] | None:
        """The layout and video ``sample`` was imported from; None for a sample with no recorded layout."""
        name = sample[LAYOUT_FIELD] if sample.has_field(LAYOUT_FIELD) else None
        if not name:
            return None
        layout, root, split = get_layout(name), sample[SOURCE_FIELD], sample["video_split"]
        video_id = video_name(sample)
        if not Path(root).is_dir():
            raise FileNotFoundError(
                f"{root}: the {name} root video {video_id} was imported from is gone, and the export reads its frame "
                "names and palette there; restore it, or re-import the video from where it is now"
            )
        key = (name, root, split)
        if key not in self._videos:
            listed = layout.videos(root, split=split, on_skip=lambda *skipped: None)
            self._videos[key] = {video.video_id: video for video in listed}
        video = self._videos[key].get(video_id)
        if video is None:
            raise FileNotFoundError(
                f"{root}: no video {video_id} in split {split} any more, where sample {sample.id} was imported from; "
                "restore it or export a view without this video"
            )
        return layout, video


def _write_video(sample: fo.Sample, pred_field: str, output_dir: Path, sources: _SourceVideos) -> Path:
    summaries = masklet_summaries(sample)
    object_ids = {m.index: m.object_id or m.object_name for m in summaries}
    masks = _PredictedMasks(sample, pred_field, object_ids)
    source = sources.find(sample)
    if source is not None:
        layout, video = source
        return layout.write_predictions(output_dir, video, masks)
    size = frame_size(sample)
    video_id = video_name(sample)
    frames = sample.metadata.total_frame_count
    with write_sav_predictions(output_dir, video_id, frames, (size[1], size[0]), object_ids.values()) as writer:
        for frame, frame_masks in masks.items():
            for obj, mask in frame_masks.items():
                writer.add(frame, obj, mask)
    return output_dir / video_id


def _check_video_names(samples: fo.core.collections.SampleCollection) -> None:
    """Before anything is written: every video's folder name is a single file name and names one video only."""
    fields = ["video_id"] if samples.has_sample_field("video_id") else []
    exporting: dict[str, str] = {}
    for sample in samples.select_fields(fields).iter_samples():
        name = safe_component(video_name(sample), f"video_id of sample {sample.id}")
        if name in exporting:
            raise ValueError(
                f"samples {exporting[name]} and {sample.id} both have video_id {name!r}, so both would be written to "
                f"one folder; give each video its own video_id, or export a view without one of them"
            )
        exporting[name] = sample.id


def export_sav_predictions(
    samples: fo.core.collections.SampleCollection,
    pred_field: str,
    output_dir: str | Path,
    overwrite: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
    submission_zip: str | Path | None = None,
) -> list[Path]:
    """Write every video's predicted masks in its layout; returns the video folders written in this call.

    Whole videos only (a view of them: the objects a filter keeps, the videos matched or selected): a clips, frames
    or patches view is refused, as every layout holds every frame of a video. Video ids that cannot name a folder
    (``/``, ``..``, control characters) or that two samples share are refused before anything is written; a rewrite
    replaces only the frame PNGs, never other files in a video's folder. ``submission_zip``: also zip the videos
    of ``samples`` (all of one layout whose benchmark scores on a server) as that server takes them.
    """
    check_videos(samples, "export_sav_predictions", clips=False)
    if not samples.has_frame_field(pred_field):
        raise ValueError(
            f"'{pred_field}' is not a frame field of dataset '{samples._dataset.name}': pass the field apply_sam2 wrote"
        )
    if len(samples) == 0:
        raise ValueError(f"nothing to export: the target view of dataset '{samples._dataset.name}' has no videos")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise NotADirectoryError(f"{output_dir}: a file, not a folder; pass the folder to write the videos into")
    _check_video_names(samples)
    layout = _submission_layout(samples) if submission_zip else None
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    total = len(samples)
    recorded = ("video_id", "video_split", MASKLETS_FIELD, LAYOUT_FIELD, SOURCE_FIELD)
    fields = [f for f in recorded if samples.has_sample_field(f)] + [f"frames.{pred_field}"]
    sources = _SourceVideos()
    videos = []
    for done, sample in enumerate(samples.select_fields(fields).iter_samples(), start=1):
        video_id = video_name(sample)
        if layout is not None:
            videos.append(sources.find(sample)[1])
        if (output_dir / video_id).exists() and not overwrite:
            continue
        written.append(_write_video(sample, pred_field, output_dir, sources))
        if progress is not None:
            progress(done, total, video_id)
    if layout is not None:
        layout.write_submission(output_dir, videos, submission_zip)
    return written


def _submission_layout(samples: fo.core.collections.SampleCollection) -> Layout:
    """The one layout of ``samples``, whose benchmark takes a zip; else an error saying why no zip can be made."""
    names = samples.distinct(LAYOUT_FIELD) if samples.has_sample_field(LAYOUT_FIELD) else []
    if len(names) != 1 or samples.exists(LAYOUT_FIELD, False).count():
        raise ValueError(
            "a submission zip holds the videos of one imported layout; the target holds "
            + (f"videos of {', '.join(names)}" if names else "no videos imported by import_vos")
            + ": export a view of one layout's videos (match vos_layout)"
        )
    layout = get_layout(names[0])
    if layout.submission_folder is None:
        raise ValueError(
            f"the {layout.name} benchmark is scored locally (evaluate_jf, sam2-plugins evaluate), not on a server "
            "that takes a zip; leave submission_zip empty"
        )
    return layout


@dataclass
class ExportSavPredictionsParams:
    """What ``export_sav_predictions`` writes; the operator's form and its run share these defaults."""

    output_dir: str
    pred_field: str = "sam2"
    overwrite: bool = False
    submission_zip: str | None = None
    """Also zip the predictions as the benchmark's server takes them (YouTube-VOS, MOSE test sets)."""


class ExportSavPredictions(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="export_sav_predictions",
            label="SAM 2: export predictions (the dataset's layout)",
            description=(
                "Write predicted masklets as the benchmark the videos came from lays them out: DAVIS/MOSE/LVOS/"
                "YouTube-VOS palette PNGs, SA-V per-object folders (whole videos), and a server's submission zip"
            ),
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = ExportSavPredictionsParams(output_dir="")
        ctx.target_view()  # offers FiftyOne's target choice: dataset, current view or selected samples
        inputs = types.Object()
        frame_field_input(inputs, ctx, "pred_field", "Predictions", defaults.pred_field)
        inputs.str(
            "output_dir",
            label="Output folder",
            required=True,
            description=(
                "gets `<video_id>/<frame>.png` label maps (DAVIS, MOSE, LVOS, YouTube-VOS) or "
                "`<video_id>/<object>/<frame>.png` (SA-V) for every frame"
            ),
        )
        inputs.bool("overwrite", label="Rewrite videos already exported", default=defaults.overwrite)
        inputs.str(
            "submission_zip",
            label="Submission zip",
            description="for a hidden test set (YouTube-VOS, MOSE): the zip to upload to its server; empty: none",
        )
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Export predictions"))

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("summary", label="Result")
        return types.Property(outputs)

    def execute(self, ctx) -> dict:
        params = from_params(ExportSavPredictionsParams, ctx.params)
        folders = export_sav_predictions(
            ctx.target_view(),
            params.pred_field,
            params.output_dir,
            overwrite=params.overwrite,
            progress=progress_reporter(ctx, "exported"),
            submission_zip=params.submission_zip,
        )
        skipped = len(ctx.target_view()) - len(folders)
        summary = f"{len(folders)} videos written to {params.output_dir}"
        if skipped:
            summary += f"; {skipped} skipped: their folders exist (tick overwrite to rewrite them)"
        if params.submission_zip:
            summary += f"; submission zipped to {params.submission_zip}"
        return {
            "videos_written": len(folders),
            "videos_skipped": skipped,
            "output_dir": params.output_dir,
            "summary": summary,
        }
