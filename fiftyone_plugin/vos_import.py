"""A VOS benchmark download (SA-V, DAVIS, MOSE, LVOS, YouTube-VOS) as a FiftyOne video dataset.

The layouts are read by :mod:`sam2_plugins.datasets`; this module only turns their videos into samples. One video
sample per video; frame field ``ground_truth`` holds one Detection per visible object on each annotated frame
(pixel-exact masks, ``index`` = the object's track id in the video, ``label`` its id in the layout, ``masklet_id``,
``masklet_type``, and for SA-V's automatic masklets their ``stability_score`` on that frame) and an empty
Detections on annotated frames with no visible object. FiftyOne frame number = frame position in the video + 1
(the position in the layout's sorted frame names: YouTube-VOS's ``00005.jpg`` is frame 2 of a 5-frame-stride
folder). ``sav_masklets`` holds each object's annotated frames, its first annotated frame (where SAM 2 is prompted:
an object appearing later is prompted there), its id in the layout and, for LVOS, its meta ``frame_range``.
Each sample records ``video_split``, ``vos_layout`` (the layout's name, from which evaluate_jf takes the scoring
protocol) and ``vos_source`` (the root it came from, which export_sav_predictions reopens for the layout's frame
names and palette); ``dataset.info["vos_imports"]`` lists every (layout, split, root, protocol) imported.
JPEG sequences get an H.264 mp4 for the App; each frame keeps its JPEG in ``filepath``, the frames predictions
are made on.

Nothing fails silently: a video with a missing, corrupt or mismatched file is reported as failed with the reason
while the others import; an import that imports nothing because every video failed raises, naming each. A video is
added whole or not at all, and a rerun skips the videos already imported. An overwrite replaces a video's sample
only once its new sample is fully added (a failed one keeps the previous), and so drops what later steps stored on
it: :func:`overwrite_losses` says which prediction fields and finished marks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo
import fiftyone.operators.types as types
from eta.core.utils import ExecutableRuntimeError
from fiftyone import ViewField as F

from sam2_plugins.atomic import atomic_write
from sam2_plugins.datasets import LAYOUTS, Layout, ObjectFolderVideo, PaletteVideo, detect_layout, get_layout
from sam2_plugins.datasets.lvos import LvosVideo
from sam2_plugins.datasets.sav_eval import EvalVideo
from sam2_plugins.datasets.sav_train import ANNOTATION_STRIDE, TrainVideo
from sam2_plugins.evaluate import lvos_ranges
from sam2_plugins.frame_names import is_number_name
from sam2_plugins.frames import FrameSource, FrameSourceError
from sam2_plugins.masks import MaskFormatError
from sam2_plugins.video_writer import FPS, write_mp4

from .completion import COMPLETED_FIELD, mark_finished, unfinished
from .forms import folder_error, folder_input, mark_invalid, mark_out_of_range
from .masks import mask_to_detection
from .tracks import MASKLET_ATTRIBUTES, MASKLETS_FIELD, MaskletSummary, declare_detection_attributes

STEP = "import_sav"
"""The finished mark of an imported video (named when SA-V was the only layout; kept so reruns of earlier imports
skip their finished videos)."""
GT_FIELD = "ground_truth"
LAYOUT_FIELD = "vos_layout"
SOURCE_FIELD = "vos_source"
IMPORTS_INFO = "vos_imports"
"""``dataset.info`` key: the (layout, split, root, protocol) of every import into the dataset."""
AUTO_LAYOUT = "auto"
IMPORTED_SAMPLE_FIELDS = (
    "video_id",
    "video_environment",
    "video_split",
    LAYOUT_FIELD,
    SOURCE_FIELD,
    "masklet_num",
    MASKLETS_FIELD,
)
IMPORTED_FRAME_FIELDS = (GT_FIELD, "filepath")
VOS_ROOT = (
    "a VOS dataset root: SA-V train (sav_NNN shards) or val/test (sav_val.txt / sav_test.txt), DAVIS or MOSE "
    "(JPEGImages + Annotations), LVOS (with its meta JSON) or YouTube-VOS (meta.json)"
)
"""What ``dataset_dir`` must be, as its errors name it."""


@dataclass
class ImportVosParams:
    """What ``import_vos`` imports, and how; the operators' forms and the SDK share these defaults.

    ``layout``: one of :data:`sam2_plugins.datasets.LAYOUTS` or ``"auto"`` (detected from the folder); ``split``:
    the layout's split to read (None: the one the folder holds, or all its videos); ``dataset_name`` None:
    ``<layout>-<split>``; ``include_auto``: SA-V train's automatic masklets.
    """

    dataset_dir: str
    layout: str = AUTO_LAYOUT
    split: str | None = None
    dataset_name: str | None = None
    include_auto: bool = True
    max_videos: int | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.layout != AUTO_LAYOUT and self.layout not in LAYOUTS:
            raise ValueError(f"layout {self.layout!r} is unknown; pick {AUTO_LAYOUT!r} or one of {', '.join(LAYOUTS)}")


@dataclass
class ImportReport:
    """What an import did: videos added, skipped as already there, and failed (video id -> file and reason)."""

    layout: str = ""
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    replaced: list[str] = field(default_factory=list)
    """Videos re-imported over a previous sample, which took with it the fields and marks of ``deleted``."""
    deleted: tuple[list[str], list[str]] = ([], [])
    """``(fields, finished marks)`` the replaced samples held besides the import's own (:func:`overwrite_losses`)."""

    def failures(self) -> list[str]:
        return [f"{video_id}: {reason}" for video_id, reason in self.failed.items()]


class VosImportError(RuntimeError):
    """No video could be imported; the message names each failed video and why."""


class _VideoError(Exception):
    """One video cannot be imported; the message says which file and why."""


VIDEO_ERRORS = (_VideoError, MaskFormatError, FrameSourceError, FileNotFoundError)
"""What makes one video fail while the others import: its files are missing, corrupt or do not match."""


def _add_detection(frames: dict[int, fo.Detections], number: int, mask, **attributes) -> bool:
    """Add the mask's Detection to frame ``number`` (an empty Detections marks an annotated frame); True if visible."""
    detections = frames.setdefault(number, fo.Detections())
    detection = mask_to_detection(mask, **attributes)
    if detection is not None:
        detections.detections.append(detection)
    return detection is not None


def _video_metadata(path: Path) -> fo.VideoMetadata:
    try:
        return fo.VideoMetadata.build_for(str(path))
    except ExecutableRuntimeError as error:
        raise _VideoError(
            f"{path}: not a readable video (ffprobe cannot read its streams: cut off or corrupt); "
            "re-download this shard"
        ) from error


def _train_sample(video: TrainVideo, include_auto: bool) -> fo.Sample:
    """An SA-V train video: its mp4 as the sample, every masklet of its JSON files with SA-V's statistics."""
    metadata = _video_metadata(video.video_path)
    files = video.annotations(include_auto)
    frames: dict[int, fo.Detections] = {}
    masklets = []
    for masklet_file in files:
        for masklet in masklet_file.masklets:
            index = len(masklets)
            summary = MaskletSummary(
                index=index,
                masklet_id=masklet.masklet_id,
                masklet_type=masklet.masklet_type,
                annotated_frames=[t + 1 for t in masklet.annotated_frames],
                first_appeared_frame=ANNOTATION_STRIDE * masklet.first_appeared_frame + 1,
                frame_count=masklet.frame_count,
                size_rel=masklet.size_rel,
                size_abs=masklet.size_abs,
                size_bucket=masklet.size_bucket,
                visibility_changes=masklet.visibility_changes,
                edited_frame_count=masklet.edited_frame_count,
            )
            summary.object_id = summary.object_name
            for k, number in enumerate(summary.annotated_frames):
                mask = masklet.mask(k)
                if mask is None:
                    frames.setdefault(number, fo.Detections())
                    continue
                score = None if masklet.stability_scores is None else masklet.stability_scores[k]
                _add_detection(
                    frames,
                    number,
                    mask,
                    label=summary.object_id,
                    index=index,
                    masklet_id=masklet.masklet_id,
                    masklet_type=masklet.masklet_type,
                    **({} if score is None else {"stability_score": score}),
                )
            masklets.append(summary.to_dict())
    manual = files[0]
    sample = fo.Sample(
        filepath=str(video.video_path),
        metadata=metadata,
        video_id=video.video_id,
        video_environment=manual.video_environment,
        video_split=manual.video_split,
        masklet_num=sum(f.masklet_num for f in files),
        **{MASKLETS_FIELD: masklets},
    )
    for number, detections in frames.items():
        sample.frames[number] = fo.Frame(**{GT_FIELD: detections})
    return sample


def _masklet_ids(video: ObjectFolderVideo | PaletteVideo) -> dict[str, int]:
    """Each object's masklet id: its number (SA-V names objects 000, 001, ..., DAVIS 1, 2, ...), else its position.
    Two object folders of one id (``1`` and ``001``) are refused naming both: exported, they would be merged into
    one (palette labels are distinct numbers)."""
    ids: dict[str, int] = {}
    for index, obj in enumerate(video.object_ids):
        masklet_id = int(obj) if is_number_name(obj) else index
        same = [other for other, taken in ids.items() if taken == masklet_id]
        if same:
            raise MaskFormatError(
                f"{video.annotations_folder}: object folders {same[0]!r} and {obj!r} both give masklet id "
                f"{masklet_id}, so they would be exported as one object; rename one of them"
            )
        ids[obj] = masklet_id
    return ids


def _ground_truth(video: ObjectFolderVideo | PaletteVideo) -> tuple[dict[int, fo.Detections], list[dict]]:
    """The video's ground-truth Detections by frame number (every mask file decoded once) and its objects'
    summaries (annotated frames, first visible frame, id in the layout, LVOS's frame range)."""
    ranges = lvos_ranges(video) if isinstance(video, LvosVideo) else {}
    ids = _masklet_ids(video)
    indices = {obj: index for index, obj in enumerate(video.object_ids)}
    frames: dict[int, fo.Detections] = {}
    first_visible: dict[str, int] = {}
    for frame in video.annotated_frames():
        frames.setdefault(frame + 1, fo.Detections())
        for obj, mask in video.masks(frame).items():
            attributes = {"label": obj, "index": indices[obj], "masklet_id": ids[obj], "masklet_type": "manual"}
            if _add_detection(frames, frame + 1, mask, **attributes):
                first_visible.setdefault(obj, frame + 1)
    masklets = []
    for obj, index in indices.items():
        numbers = [frame + 1 for frame in video.annotated_frames(obj)]
        summary = MaskletSummary(
            index=index,
            masklet_id=ids[obj],
            masklet_type="manual",
            annotated_frames=numbers,
            first_appeared_frame=first_visible.get(obj),
            frame_count=len(numbers),
            object_id=obj,
            frame_range=list(ranges[obj]) if obj in ranges else None,
        )
        masklets.append(summary.to_dict())
    return frames, masklets


def _frame_sample(video: ObjectFolderVideo | PaletteVideo, mp4_dir: Path) -> fo.Sample:
    """A video of frame files (every layout but SA-V train): an mp4 for the App, each frame's file on its frame."""
    mp4 = mp4_dir / f"{video.video_id}.mp4"
    with video.frames() as source:
        if isinstance(video, EvalVideo):
            video.check_fits(source)  # SA-V names frames by index: a gap would put masks on the wrong frames
        frames, masklets = _ground_truth(video)
        _write_mp4_whole(source, mp4)
        size, paths = (source.width, source.height), list(source.paths)
    metadata = fo.VideoMetadata(
        frame_width=size[0],
        frame_height=size[1],
        frame_rate=FPS,
        total_frame_count=len(paths),
        duration=len(paths) / FPS,
        mime_type="video/mp4",
        size_bytes=mp4.stat().st_size,
    )
    sample = fo.Sample(
        filepath=str(mp4),
        metadata=metadata,
        video_id=video.video_id,
        video_split=video.split,
        masklet_num=len(masklets),
        **{MASKLETS_FIELD: masklets},
    )
    for number, path in enumerate(paths, start=1):  # the frames, in the order of the mp4 and the predictor
        frame = fo.Frame(filepath=str(path))
        if number in frames:
            frame[GT_FIELD] = frames[number]
        sample.frames[number] = frame
    return sample


def _write_mp4_whole(source: FrameSource, mp4: Path) -> None:
    """Encode the frames to ``mp4`` through a temporary file: a failed encode leaves a previous ``mp4`` untouched."""
    mp4.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(mp4) as partial:
        write_mp4(iter(source), partial)


def resolve_layout(
    dataset_dir: Path, layout: str, layouts: tuple[str, ...] = tuple(LAYOUTS), expected: str = VOS_ROOT
) -> Layout:
    """The layout ``layout`` names, or the one detected in ``dataset_dir`` for ``"auto"``; one of ``layouts``, else
    an error naming the folder, what it holds and the operator that imports it; ``expected`` names the folder."""
    if not dataset_dir.is_dir():
        raise FileNotFoundError(folder_error(str(dataset_dir), expected))
    found = detect_layout(dataset_dir) if layout == AUTO_LAYOUT else get_layout(layout)
    if found.name not in layouts:
        raise ValueError(
            f"{dataset_dir} is a {found.name} root, not {expected}; import it with import_vos (layout {found.name})"
        )
    return found


def overwrite_losses(dataset: fo.Dataset) -> tuple[list[str], list[str]]:
    """What re-importing a video deletes from its sample: ``(frame and sample fields, finished marks)``.

    The fields are those later steps added (predictions, evaluation scores); the marks their finished steps.
    """
    frame_fields = [f"frames.{name}" for name in dataset.get_frame_field_schema() or {}]
    sample_fields = list(dataset.get_field_schema())
    ours = {*IMPORTED_SAMPLE_FIELDS, COMPLETED_FIELD, *(f"frames.{name}" for name in IMPORTED_FRAME_FIELDS)}
    defaults = {*dataset._get_default_sample_fields(), *(f"frames.{n}" for n in dataset._get_default_frame_fields())}
    lost_fields = [name for name in sample_fields + frame_fields if name not in ours | defaults and name != "frames"]
    marks = dataset.distinct(COMPLETED_FIELD) if dataset.has_sample_field(COMPLETED_FIELD) else []
    return lost_fields, [mark for mark in marks if mark != STEP]


def describe_losses(lost_fields: list[str], marks: list[str]) -> str:
    """What :func:`overwrite_losses` found, in words."""
    return f"fields: {', '.join(lost_fields) or 'none'}; finished marks: {', '.join(marks) or 'none'}"


def _record_import(dataset: fo.Dataset, layout: Layout, split: str | None, root: Path) -> None:
    entry = {"layout": layout.name, "split": split, "root": str(root), "protocol": layout.protocol}
    imports = list(dataset.info.get(IMPORTS_INFO, []))
    if entry not in imports:
        dataset.info[IMPORTS_INFO] = [*imports, entry]
        dataset.save()


def import_vos(
    dataset_dir: str | Path,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    layouts: tuple[str, ...] = tuple(LAYOUTS),
    expected: str = VOS_ROOT,
    **options,
) -> tuple[fo.Dataset, ImportReport]:
    """Import (or resume importing) a VOS dataset root of one of ``layouts`` into a persistent dataset; ``options``
    are :class:`ImportVosParams`, ``expected`` what errors call the root. Raises :class:`VosImportError` naming each
    failed video when none could be imported.
    """
    params = ImportVosParams(dataset_dir=str(dataset_dir), **options)
    root = Path(params.dataset_dir).expanduser()
    layout = resolve_layout(root, params.layout, layouts, expected)
    report = ImportReport(layout=layout.name)
    videos = layout.videos(root, split=params.split, on_skip=report.failed.__setitem__)
    videos = videos[: params.max_videos] if params.max_videos else videos
    split = params.split or next((video.split for video in videos), None)
    name = params.dataset_name or "-".join(part for part in (layout.name, split) if part)
    existed = fo.dataset_exists(name)
    dataset = fo.load_dataset(name) if existed else fo.Dataset(name)
    dataset.persistent = True
    for sample_field in ("video_id", LAYOUT_FIELD, SOURCE_FIELD):
        if not dataset.has_sample_field(sample_field):
            dataset.add_sample_field(sample_field, fo.StringField)
    dataset.create_index("video_id")  # one lookup per video on reruns
    mp4_dir = Path(fo.config.default_dataset_dir) / "sam2-plugins" / dataset.slug  # a dataset name may hold '/'
    if params.overwrite and existed:
        report.deleted = overwrite_losses(dataset)
    for position, video in enumerate(videos):
        previous_ids = dataset.match(F("video_id") == video.video_id).values("id")
        if previous_ids and not params.overwrite and not len(unfinished(dataset.select(previous_ids), STEP)):
            report.skipped.append(video.video_id)
            continue
        try:
            sample = (
                _train_sample(video, params.include_auto)
                if isinstance(video, TrainVideo)
                else _frame_sample(video, mp4_dir)
            )
        except VIDEO_ERRORS as error:
            report.failed[video.video_id] = str(error)
            continue
        sample[LAYOUT_FIELD] = layout.name
        sample[SOURCE_FIELD] = str(root.resolve())
        # the previous samples (and their frames) go only once the new one is in; it is marked finished last, so a
        # job cut off in between leaves an unfinished sample that a rerun replaces
        dataset.add_sample(sample)
        if previous_ids:
            dataset.delete_samples(previous_ids)
            report.replaced.append(video.video_id)
        mark_finished(sample, STEP)
        report.imported.append(video.video_id)
        if progress is not None:
            progress(position + 1, len(videos), video.video_id)
    if report.failed and not report.imported and not report.skipped:
        if not existed and not len(dataset):
            dataset.delete()
        raise VosImportError(
            f"{params.dataset_dir}: no video imported, all {len(report.failed)} failed ({layout.name} layout):\n"
            + "\n".join(report.failures())
        )
    if dataset.media_type == "video":
        declare_detection_attributes(dataset, GT_FIELD, MASKLET_ATTRIBUTES)
    _record_import(dataset, layout, split, root.resolve())
    return dataset, report


def import_inputs(
    inputs: types.Object, ctx, defaults: ImportVosParams, layouts: tuple[str, ...], expected: str
) -> None:
    """The import form: the root (its layout detected among ``layouts`` unless one is picked, and named), split,
    dataset, options, and a warning of what an overwrite deletes; ``expected`` names the root in errors."""
    folder_input(inputs, ctx, "dataset_dir", "Dataset folder", "the root of the download", expected)
    if len(layouts) > 1:
        inputs.enum(
            "layout",
            [AUTO_LAYOUT, *layouts],
            label="Layout",
            default=defaults.layout,
            description="auto: detected from the folder",
            view=types.DropdownView(),
        )
    folder = ctx.params.get("dataset_dir")
    if folder and Path(folder).expanduser().is_dir():
        try:
            found = resolve_layout(
                Path(folder).expanduser(), ctx.params.get("layout") or AUTO_LAYOUT, layouts, expected
            )
        except (ValueError, FileNotFoundError) as error:  # no layout matches, or not one of ``layouts``
            mark_invalid(inputs, "dataset_dir", str(error))
        else:
            notice = f"{found.name} layout, scored by the {found.protocol} protocol"
            inputs.view("detected_layout", types.Notice(label=notice))
    inputs.str("split", label="Split", description="e.g. val or train; empty: the split the folder holds")
    inputs.str(
        "dataset_name", label="Dataset name", default=defaults.dataset_name, description="empty: <layout>-<split>"
    )
    inputs.bool("include_auto", label="Include SA-V's automatic masklets (SA-V train)", default=defaults.include_auto)
    inputs.int("max_videos", label="Maximum videos", min=1, description="leave empty for all")
    inputs.bool("overwrite", label="Re-import videos already imported", default=defaults.overwrite)
    name = ctx.params.get("dataset_name") or defaults.dataset_name
    if ctx.params.get("overwrite") and name and fo.dataset_exists(name):
        lost_fields, marks = overwrite_losses(fo.load_dataset(name))
        if lost_fields or marks:
            inputs.view(
                "overwrite_warning",
                types.Warning(
                    label="Re-importing a video deletes what later steps stored on it",
                    description=describe_losses(lost_fields, marks),
                ),
            )
    mark_out_of_range(inputs, ctx)


def import_result(dataset: fo.Dataset, report: ImportReport) -> dict:
    """An import's report as the operators return it."""
    return {
        "dataset": dataset.name,
        "layout": report.layout,
        "imported": report.imported,
        "skipped": report.skipped,
        "failed": report.failed,
        "failures": report.failures(),
        "summary": f"{len(report.imported)} imported, {len(report.skipped)} skipped, {len(report.failed)} failed",
        "replaced": report.replaced,
        "deleted": describe_losses(*report.deleted) if report.replaced else "nothing",
    }


def import_outputs() -> types.Property:
    outputs = types.Object()
    outputs.str("dataset", label="Dataset")
    outputs.str("layout", label="Layout")
    outputs.str("summary", label="Result")
    outputs.list("imported", types.String(), label="Imported videos")
    outputs.list("skipped", types.String(), label="Skipped: already imported")
    outputs.list("replaced", types.String(), label="Re-imported over their previous sample")
    outputs.str("deleted", label="Deleted with the previous samples")
    outputs.list("failures", types.String(), label="Failed videos (file and reason)")
    return types.Property(outputs)
