"""J&F by each benchmark's protocol as a FiftyOne evaluation method: registered runs, stored results, per-video
and per-frame fields.

The scores come from ``sam2_plugins.evaluate.score_video``, the evaluator behind ``sam2-plugins evaluate``, fed
with masks rendered by FiftyOne's own ``Detection.to_segmentation``: one implementation, the same numbers. The
protocol is that of the layout the videos were imported from (``vos_layout``): SA-V's rules, or DAVIS 2017's
(objects 1..N of the first frame on every frame but the first and last, J and F Mean, Recall and Decay; MOSE the
same), or LVOS's (each object's valid range, and V); a run records it in its config and its results carry the
statistics it reports. Fields written for ``eval_key``: sample ``{eval_key}_J``, ``{eval_key}_F``,
``{eval_key}_JF`` (means over the video's scored objects, x 100) and ``{eval_key}_J`` / ``{eval_key}_F`` (0..1)
on each ground-truth Detection of a scored frame.

The run's type is FiftyOne's ``"segmentation"``: FiftyOne's Model Evaluation panel opens classification, detection
and segmentation runs only (it fails on any other type), so a J&F run is a segmentation run of method ``sav_jf``
that shows J&F, J and F as the panel's metric rows, its objects as the panel's classes (with their pixel
precision, recall and F1 on the scored frames, as FiftyOne's segmentation runs report) and no confusion matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import fiftyone as fo
import fiftyone.utils.eval.base as foueb
import numpy as np

from sam2_plugins.datasets import get_layout
from sam2_plugins.evaluate import PROTOCOLS, EvaluationResult, ObjectScore, Protocol, get_protocol, score_video
from sam2_plugins.frame_names import frame_name, object_name

from .jf_charts import jf_distribution_figure
from .jf_checks import check_predictions
from .masks import detection_to_mask
from .tracks import (
    annotated_frames,
    detection_object_name,
    detections_by_frame,
    frame_index,
    frame_size,
    masklet_summaries,
    video_name,
)
from .views import VideoSpan, check_videos, filters_labels, held_span
from .vos_import import LAYOUT_FIELD

METHOD = "sav_jf"
RUN_TYPE = "segmentation"
SCORES = ("J&F", "J", "F")
"""The scores every protocol reports; DAVIS adds J/F Recall and Decay, LVOS Recall and V (``global_scores``)."""
LOWER_IS_BETTER = ("J-Decay", "F-Decay", "V")
AUTO_PROTOCOL = "auto"
DEFAULT_PROTOCOL = "sav"
"""The protocol of videos whose layout is not recorded."""


class JFEvaluationConfig(foueb.BaseEvaluationMethodConfig):
    """J&F of ``pred_field`` against ``gt_field`` (frame-level Detections with masks, matched by ``index``) under the
    scoring ``protocol`` (a name of ``sam2_plugins.evaluate.PROTOCOLS``)."""

    def __init__(
        self, gt_field: str, pred_field: str, skip_first_and_last: bool = True, protocol: str = "sav", **kwargs
    ):
        super().__init__(**kwargs)
        self.gt_field = gt_field
        self.pred_field = pred_field
        self.skip_first_and_last = skip_first_and_last
        self.protocol = protocol

    @property
    def type(self) -> str:
        return RUN_TYPE

    @property
    def method(self) -> str:
        return METHOD


class JFEvaluation(foueb.BaseEvaluationMethod):
    """Runs the J&F evaluation and owns its fields (listed, renamed and deleted with the run)."""

    @staticmethod
    def sample_fields(eval_key: str) -> list[str]:
        return [f"{eval_key}_J", f"{eval_key}_F", f"{eval_key}_JF"]

    def detection_fields(self, eval_key: str) -> list[str]:
        """Frame-field paths of the per-frame scores on the ground-truth Detections."""
        return [f"{self.config.gt_field}.detections.{eval_key}_{m}" for m in ("J", "F")]

    def get_fields(self, samples, eval_key, include_custom_metrics=True) -> list[str]:
        return self.sample_fields(eval_key) + [f"frames.{path}" for path in self.detection_fields(eval_key)]

    def rename(self, samples, eval_key, new_eval_key) -> None:
        dataset = samples._dataset
        dataset.rename_sample_fields(dict(zip(self.sample_fields(eval_key), self.sample_fields(new_eval_key))))
        dataset.rename_frame_fields(dict(zip(self.detection_fields(eval_key), self.detection_fields(new_eval_key))))
        samples._rename_sidebar_group(eval_key, new_eval_key)

    def cleanup(self, samples, eval_key) -> None:
        dataset = samples._dataset
        dataset.delete_sample_fields(self.sample_fields(eval_key), error_level=1)
        dataset.delete_frame_fields(self.detection_fields(eval_key), error_level=1)
        samples._delete_empty_sidebar_group(eval_key)

    def declare_fields(self, samples, eval_key: str) -> None:
        """Put the score fields in the schema as floats (a video may have no score), renamable and filterable."""
        dataset = samples._dataset
        for name in self.sample_fields(eval_key):
            if not dataset.has_sample_field(name):
                dataset.add_sample_field(name, fo.FloatField)
        for path in self.detection_fields(eval_key):
            if not dataset.has_frame_field(path):
                dataset.add_frame_field(path, fo.FloatField)

    def _validate_run(self, samples, eval_key, existing_info) -> None:
        self._validate_fields_match(eval_key, "gt_field", existing_info)
        self._validate_fields_match(eval_key, "pred_field", existing_info)


def _score_records(global_scores: dict) -> dict:
    """The run's global scores (J&F, J, F and the protocol's other statistics) as FiftyOne custom-metric records:
    the rows the Model Evaluation panel lists for a run."""
    return {
        f"{METHOD}/{name}": {"key": name, "value": value, "label": name, "lower_is_better": name in LOWER_IS_BETTER}
        for name, value in global_scores.items()
    }


def _mean_scores(scores: Sequence[dict]) -> dict:
    """J&F, J, F and the protocol's other statistics of a group of objects: means over the objects, as the
    evaluators average."""
    means = {name: float(np.mean([score[name] for score in scores])) for name in scores[0]}
    return {"J&F": (means["J"] + means["F"]) / 2, **means}


def _pixel_scores(counts: Sequence[dict]) -> dict:
    """Pixel precision, recall and f1-score (0..1, 0 when undefined) and support (ground-truth pixels) of summed
    counts: the per-class numbers of FiftyOne's segmentation reports."""
    if not counts:
        return {}
    tp, fp, fn = (sum(c[k] for c in counts) for k in ("tp", "fp", "fn"))
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "f1-score": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
        "support": tp + fn,
    }


class JFEvaluationResults(foueb.BaseEvaluationResults):
    """Stored J&F: ``metrics()`` gives the global 'J&F', 'J', 'F'; ``objects`` the per-object J and F; ``pixels``
    the per-object pixel counts on the scored frames.

    ``report()`` / ``print_report()`` break the scores down per video and object, ``plot_jf_distribution()``
    draws the per-video distribution, as FiftyOne's own evaluation results do.
    """

    missing = "(none)"
    ytrue_ids = ypred_ids = None
    """No pixel confusion ids: FiftyOne's Model Evaluation panel then offers no confusion-matrix filtering."""

    def __init__(
        self,
        samples,
        config,
        eval_key,
        global_scores: dict,
        objects: dict,
        unscored: dict,
        pixels: dict | None = None,
        custom_metrics=None,
        backend=None,
    ):
        custom_metrics = {**_score_records(global_scores), **(custom_metrics or {})}
        super().__init__(samples, config, eval_key, custom_metrics=custom_metrics, backend=backend)
        self.global_scores = global_scores
        self.objects = objects
        self.unscored = unscored
        self.pixels = pixels or {}

    @property
    def classes(self) -> list[str]:
        """The scored objects ``"<video>/<obj>"`` (FiftyOne's Model Evaluation panel charts them as classes)."""
        return [key for key in self.objects if key in self.pixels]

    def metrics(self, *args, **kwargs) -> dict:
        return {**self.global_scores, **self._get_custom_metrics()}

    def report(self) -> dict[str, dict]:
        """One row per video (``"<video>"``, means of its objects), then its objects (``"<video>/<obj>"``), then
        ``"global"``: J&F, J, F (x 100) and the pixel precision, recall, f1-score and support, keyed like FiftyOne's
        classification and segmentation reports. ``unscored`` lists the objects that have no row."""
        by_video: dict[str, list[str]] = {}
        for key in self.objects:
            by_video.setdefault(key.rsplit("/", 1)[0], []).append(key)
        rows: dict[str, dict] = {}
        for video, keys in by_video.items():
            counts = [self.pixels[key] for key in keys if key in self.pixels]
            rows[video] = {**_mean_scores([self.objects[key] for key in keys]), **_pixel_scores(counts)}
            for key in keys:
                score = self.objects[key]
                pixels = _pixel_scores([self.pixels[key]] if key in self.pixels else [])
                rows[key] = {"J&F": (score["J"] + score["F"]) / 2, **score, **pixels}
        rows["global"] = {**self.global_scores, **_pixel_scores(list(self.pixels.values()))}
        return rows

    def print_report(self, digits: int = 1) -> None:
        """Prints ``report()``: each video, its objects indented below it, the global score, then the unscored."""
        report = self.report()
        statistics = [name for name in self.global_scores if name not in SCORES]
        pixel_columns = [m for m in ("precision", "recall", "f1-score", "support") if m in report["global"]]
        columns = [*SCORES, *statistics, *pixel_columns]
        names = {row: ("Global score" if row == "global" else row.split("/")[-1]) for row in report}
        names = {row: (f"  {name}" if "/" in row else name) for row, name in names.items()}
        width = max(len(name) for name in ["video / object", *names.values()])
        column_width = max(len(f"{100:.{digits}f}"), *(len(c) for c in columns)) + 2

        def cell(metric: str, value) -> str:
            if metric == "support":
                return f"{value:>{column_width}d}"
            value = value if metric in self.global_scores else value * 100
            return f"{value:>{column_width}.{digits}f}"

        lines = [f"{'video / object':<{width}}" + "".join(f"{c:>{column_width}}" for c in columns)]
        lines += [
            f"{names[row]:<{width}}" + "".join(cell(c, scores[c]) for c in columns) for row, scores in report.items()
        ]
        if "precision" in report["global"]:
            scores = ", ".join([*SCORES, *statistics])
            lines.append(f"{scores}, precision, recall and f1-score x 100; support: ground-truth pixels")
        if self.unscored:
            lines.append(f"{len(self.unscored)} objects not scored:")
            lines.extend(f"  {key}: {reason}" for key, reason in self.unscored.items())
        lines.append(f"Scored by {get_protocol(self.config.protocol).title}")
        print("\n".join(lines))

    def video_scores(self) -> dict[str, float]:
        """Each video's J&F (x 100): the values ``{eval_key}_JF`` holds on the samples."""
        videos = {key.rsplit("/", 1)[0] for key in self.objects}
        return {row: scores["J&F"] for row, scores in self.report().items() if row in videos}

    def plot_jf_distribution(self, other: JFEvaluationResults | None = None, **layout):
        """A Plotly figure of how many videos score each J&F (bins of 5 on 0-100); ``other`` overlays a second run.

        ``layout`` goes to ``figure.update_layout``; in a notebook the figure is FiftyOne's notebook plot.
        """
        import fiftyone.core.context as foc
        import fiftyone.core.plots.plotly as foplotly

        runs = [self] if other is None else [self, other]
        figure = jf_distribution_figure({run.key: list(run.video_scores().values()) for run in runs}, **layout)
        return foplotly.PlotlyNotebookPlot(figure) if foc.is_jupyter_context() else figure

    def _confusion_matrix(self, include_other=False, include_missing=True, tabulate_ids=False):
        """An empty 1x1 matrix over no classes: objects are instances, not confusable classes (FiftyOne's Model
        Evaluation panel draws a confusion matrix for every segmentation run)."""
        return np.zeros((1, 1), dtype=int), [], None

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key, **kwargs):
        return cls(
            samples,
            config,
            eval_key,
            d["global_scores"],
            d["objects"],
            d.get("unscored", {}),
            pixels=d.get("pixels"),
            custom_metrics=d.get("custom_metrics"),
            **kwargs,
        )


class _RenderedMasks(Mapping):
    """One object's masks by frame index, each rendered from its Detection when read (None where it has none)."""

    def __init__(self, detections: dict[int, fo.Detection | None], size: tuple[int, int]):
        self._detections = detections
        self._size = size

    def __getitem__(self, frame: int) -> np.ndarray | None:
        detection = self._detections[frame]
        return None if detection is None else detection_to_mask(detection, self._size) > 0

    def __iter__(self):
        return iter(self._detections)

    def __len__(self) -> int:
        return len(self._detections)


def _object_names(sample: fo.Sample, gt_by_frame: dict[int, dict[int, fo.Detection]]) -> dict[int, str]:
    """Each track index's object name, as ``sam2-plugins evaluate`` names it in the layout's files: from the
    import's ``sav_masklets`` (objects with no Detection in the view included), else the Detections' masklet
    attributes (``003``, ``auto_003``; a DAVIS label 3 is ``003``)."""
    names = {m.index: m.object_name for m in masklet_summaries(sample)}
    for objects in gt_by_frame.values():
        for index, detection in objects.items():
            names.setdefault(index, detection_object_name(detection))
    return names


def score_sample(
    sample: fo.Sample,
    gt_field: str,
    pred_field: str,
    protocol: Protocol,
    skip_first_and_last: bool | None = None,
    pixels: dict[str, dict[str, int]] | None = None,
    span: VideoSpan | None = None,
    filtered: bool = False,
) -> tuple[list[ObjectScore], dict[str, int], dict[str, int]]:
    """Every ground-truth object's scores in one video sample under ``protocol`` (with the scored frames' values),
    each scored object's track index by name and each annotated frame's number by its name in the scores;
    ``pixels`` gets each object's pixel counts on the scored frames (``{"<video>/<obj>": {"tp", "fp", "fn"}}``).

    ``skip_first_and_last``: None keeps the protocol's rule. ``span``: the frames of a view's sample (a clip is
    scored as a video of its own frames, named after its video and range); ``filtered``: the view filters the
    ground truth, so only the objects it keeps are scored.
    """
    size = frame_size(sample)
    gt_by_frame = detections_by_frame(sample, gt_field)
    pred_by_frame = detections_by_frame(sample, pred_field)
    names = _object_names(sample, gt_by_frame)
    kept = {index for objects in gt_by_frame.values() for index in objects}
    summaries = {m.index: m for m in masklet_summaries(sample)}

    def held(numbers) -> list[int]:
        return [n for n in numbers if span is None or (span.first <= n and (span.last is None or n <= span.last))]

    gt, ranges, indices = {}, {}, {}
    for index, numbers in annotated_frames(sample, gt_by_frame).items():
        if filtered and index not in kept:
            continue  # an object the view's filter leaves out
        name = names.get(index, object_name(index))
        indices[name] = index
        gt[name] = _RenderedMasks({frame_index(n): gt_by_frame.get(n, {}).get(index) for n in held(numbers)}, size)
        frame_range = summaries[index].frame_range if index in summaries else None
        if frame_range is not None:
            ranges[name] = tuple(frame_range)
    # LVOS places its ranges by the numbers in the frame files' names; other protocols by position
    stems = {number: Path(frame.filepath).stem for number, frame in sample.frames.items()} if ranges else {}
    frame_names = (lambda index: stems[index + 1]) if ranges else frame_name
    numbers_of = {frame_names(frame_index(n)): n for n in gt_by_frame}
    annotated = [frame_index(n) for n in held(sorted(gt_by_frame))]
    counts = {name: {"tp": 0, "fp": 0, "fn": 0} for name in gt}

    def prediction(name: str, frame: int) -> np.ndarray | None:
        detection = pred_by_frame.get(frame + 1, {}).get(indices.get(name))
        pred_mask = None if detection is None else detection_to_mask(detection, size) > 0
        if name in counts:
            gt_mask = gt[name].get(frame)
            gt_mask = np.zeros(size[::-1], bool) if gt_mask is None else gt_mask
            pred_or_empty = np.zeros_like(gt_mask) if pred_mask is None else pred_mask
            counts[name]["tp"] += int(np.count_nonzero(gt_mask & pred_or_empty))
            counts[name]["fp"] += int(np.count_nonzero(pred_or_empty & ~gt_mask))
            counts[name]["fn"] += int(np.count_nonzero(gt_mask & ~pred_or_empty))
        return pred_mask

    scores = score_video(
        protocol,
        video_name(sample) if span is None else span.name,
        gt,
        prediction,
        annotated=annotated,
        object_ranges=ranges,
        frame_names=frame_names,
        skip_first_and_last=skip_first_and_last,
    )
    if filtered:  # DAVIS numbers objects 1..N: those the filter leaves out are not this view's objects
        scores = [score for score in scores if score.obj in gt]
    if pixels is not None:
        pixels.update({score.key: counts[score.obj] for score in scores if score.scored and score.obj in counts})
    return scores, indices, numbers_of


def _store_video_scores(
    sample: fo.Sample,
    eval_key: str,
    gt_field: str,
    scores: list[ObjectScore],
    indices: dict[str, int],
    numbers_of: dict[str, int],
) -> None:
    video_result = EvaluationResult(scores)
    means = (video_result.j, video_result.f, video_result.jf) if video_result.scored else (None, None, None)
    for path, value in zip(JFEvaluation.sample_fields(eval_key), means):
        sample[path] = value
    by_index = {
        indices[score.obj]: {numbers_of[fs.frame]: fs for fs in score.frames}
        for score in video_result.scored
        if score.obj in indices
    }
    for number, frame in sample.frames.items():
        detections = frame[gt_field] if frame.has_field(gt_field) else None
        for detection in detections.detections if detections is not None else []:
            frame_score = by_index.get(detection.index, {}).get(number)
            detection[f"{eval_key}_J"] = None if frame_score is None else frame_score.j
            detection[f"{eval_key}_F"] = None if frame_score is None else frame_score.f


def resolve_protocol(samples: fo.core.collections.SampleCollection, protocol: str = AUTO_PROTOCOL) -> Protocol:
    """The scoring protocol of ``samples``: ``protocol`` when named, else that of the layout their videos were
    imported from (``vos_layout``; SA-V's for videos imported before layouts were recorded or made otherwise).

    Videos of layouts scored differently, or of a layout whose ground truth is scored on a server (YouTube-VOS),
    need a protocol named, as the error says."""
    if protocol != AUTO_PROTOCOL:
        return get_protocol(protocol)
    layouts = (
        [name for name in samples.distinct(LAYOUT_FIELD) if name] if samples.has_sample_field(LAYOUT_FIELD) else []
    )
    protocols = {name: get_layout(name).protocol for name in layouts}
    if len(set(protocols.values())) > 1:
        raise ValueError(
            "the target holds videos of layouts scored by different protocols ("
            + ", ".join(f"{name}: {rules}" for name, rules in protocols.items())
            + f"); evaluate a view of one layout (match {LAYOUT_FIELD}), or name the protocol"
        )
    name = next(iter(protocols.values()), DEFAULT_PROTOCOL)
    if name not in PROTOCOLS:
        raise ValueError(
            f"{', '.join(protocols)} ground truth is scored by its benchmark's server ({name}), not here: export the "
            "predictions with a submission_zip (export_sav_predictions) and upload it, or name a protocol "
            f"({', '.join(PROTOCOLS)}) to score the annotated frames by its rules"
        )
    return get_protocol(name)


def empty_collection_error(samples: fo.core.collections.SampleCollection) -> str:
    """Why an evaluation of ``samples``, which holds no sample, has nothing to score: the view or the dataset."""
    dataset = samples._root_dataset.name
    if isinstance(samples, fo.DatasetView) and samples._stages:
        stages = ", ".join(type(stage).__name__ for stage in samples._stages)
        return (
            f"the view of dataset '{dataset}' ({stages}) has no samples: nothing to evaluate; "
            "evaluate the whole dataset or a view that matches some videos"
        )
    return f"dataset '{dataset}' has no samples: nothing to evaluate; import videos first (import_vos)"


def evaluate_jf(
    samples: fo.core.collections.SampleCollection,
    gt_field: str,
    pred_field: str,
    eval_key: str,
    skip_first_and_last: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    allow_missing: bool = False,
    protocol: str = AUTO_PROTOCOL,
) -> JFEvaluationResults:
    """Score every video of ``samples`` under ``protocol`` (:func:`resolve_protocol`: by default the one of the
    layout the videos were imported from), then register the run under ``eval_key`` and store the fields.

    ``skip_first_and_last`` applies to SA-V's rules (each object's first and last annotated frame); DAVIS, MOSE and
    LVOS fix which frames count. Nothing is registered or written when the fields, the key or the scores are
    unusable, or the predictions are missing or unmatched (:func:`.jf_checks.check_predictions`; ``allow_missing``
    scores unpredicted videos as empty).
    """
    dataset = samples._root_dataset.name
    check_videos(samples, "evaluate_jf", clips=True)
    if not len(samples):
        raise ValueError(empty_collection_error(samples))
    for field in (gt_field, pred_field):
        if not samples.has_frame_field(field):
            raise ValueError(
                f"'{field}' is not a frame field of dataset '{dataset}': "
                "pass a frame-level Detections field with masks (e.g. the one import_vos wrote)"
            )
    rules = resolve_protocol(samples, protocol)
    skip = skip_first_and_last if rules.name == DEFAULT_PROTOCOL else rules.skip_first_and_last
    check_predictions(samples, gt_field, pred_field, allow_missing)
    config = JFEvaluationConfig(gt_field, pred_field, skip_first_and_last=skip, protocol=rules.name)
    method = config.build()
    method.validate_run(samples, eval_key)
    scores_by_sample: dict[str, tuple[list[ObjectScore], dict[str, int], dict[str, int]]] = {}
    pixels: dict[str, dict[str, int]] = {}
    total = len(samples)
    filtered = filters_labels(samples, gt_field)
    for done, sample in enumerate(samples.iter_samples()):
        span = held_span(samples, sample)
        scores_by_sample[sample.id] = score_sample(sample, gt_field, pred_field, rules, skip, pixels, span, filtered)
        if progress is not None:
            progress(done + 1, total, span.name)
    objects = [score for scores, *_ in scores_by_sample.values() for score in scores]
    result = EvaluationResult(objects, skip, protocol=rules.name)
    if not result.scored:
        where = f"'{gt_field}' in the {total} videos or clips of the target"
        skipped = (
            "each object's first and last annotated frame in a video or clip are skipped unless skip_first_and_last "
            "is off"
            if rules.name == DEFAULT_PROTOCOL
            else f"{rules.title} skips each video's first and last frame"
        )
        why = (
            f"none of the {len(result.objects)} objects of {where} has a mask on its scored frames ({skipped})"
            if result.objects
            else f"no object of {where}" + (" is kept by the view's label filter" if filtered else "")
        )
        raise ValueError(
            f"nothing to score in dataset '{dataset}': {why}; pass a ground-truth field with masks (e.g. the one "
            "import_vos wrote), a view that keeps some objects, or longer clips"
        )
    method.register_run(samples, eval_key)
    method.declare_fields(samples, eval_key)
    method.add_fields_to_sidebar_group(samples, eval_key)
    for sample in samples.iter_samples(autosave=True):
        _store_video_scores(sample, eval_key, gt_field, *scores_by_sample[sample.id])
    summary = result.to_json()
    results = JFEvaluationResults(
        samples,
        config,
        eval_key,
        summary["global"],
        summary["objects"],
        summary["unscored"],
        pixels=pixels,
        backend=method,
    )
    method.save_run_results(samples, eval_key, results)
    return results
