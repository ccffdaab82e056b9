"""SA-V J&F as a FiftyOne evaluation method: registered runs, stored results, per-video and per-frame fields.

The scores come from ``sam2_plugins.evaluate.evaluate_object``, the evaluator behind ``sam2-plugins evaluate``,
fed with masks rendered by FiftyOne's own ``Detection.to_segmentation``: one implementation, the same numbers.
Fields written for ``eval_key``: sample ``{eval_key}_J``, ``{eval_key}_F``, ``{eval_key}_JF`` (means over the
video's scored objects, x 100) and ``{eval_key}_J`` / ``{eval_key}_F`` (0..1) on each ground-truth Detection of
a scored frame.

The run's type is FiftyOne's ``"segmentation"``: FiftyOne's Model Evaluation panel opens classification, detection
and segmentation runs only (it fails on any other type), so a J&F run is a segmentation run of method ``sav_jf``
that shows J&F, J and F as the panel's metric rows and has no classes or confusion matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import fiftyone as fo
import fiftyone.utils.eval.base as foueb
import numpy as np

from sam2_plugins.evaluate import EvaluationResult, ObjectScore, evaluate_object
from sam2_plugins.frames import frame_name

from .jf_charts import jf_distribution_figure
from .jf_checks import check_predictions
from .masks import detection_to_mask
from .tracks import (
    annotated_frames,
    detection_object_name,
    detections_by_frame,
    frame_index,
    frame_size,
    video_name,
)

METHOD = "sav_jf"
RUN_TYPE = "segmentation"
SCORES = ("J&F", "J", "F")


class JFEvaluationConfig(foueb.BaseEvaluationMethodConfig):
    """SA-V J&F of ``pred_field`` against ``gt_field`` (frame-level Detections with masks, matched by ``index``)."""

    def __init__(self, gt_field: str, pred_field: str, skip_first_and_last: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.gt_field = gt_field
        self.pred_field = pred_field
        self.skip_first_and_last = skip_first_and_last

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
    """J&F, J and F as FiftyOne custom-metric records: the rows the Model Evaluation panel lists for a run."""
    return {
        f"{METHOD}/{name}": {"key": name, "value": global_scores[name], "label": name, "lower_is_better": False}
        for name in SCORES
        if name in global_scores
    }


def _mean_scores(scores: Sequence[dict]) -> dict:
    """J&F, J and F of a group of objects: means of their J and F, as the SA-V evaluator averages."""
    j = float(np.mean([score["J"] for score in scores]))
    f = float(np.mean([score["F"] for score in scores]))
    return {"J&F": (j + f) / 2, "J": j, "F": f}


class JFEvaluationResults(foueb.BaseEvaluationResults):
    """Stored J&F: ``metrics()`` gives the global 'J&F', 'J', 'F'; ``objects`` the per-object J and F.

    ``report()`` / ``print_report()`` break the scores down per video and object, ``plot_jf_distribution()``
    draws the per-video distribution, as FiftyOne's own evaluation results do.
    """

    classes: tuple[str, ...] = ()
    """No classes: SA-V objects are instances, not categories (read by FiftyOne's Model Evaluation panel)."""
    missing = "(none)"
    ytrue_ids = ypred_ids = None
    """No pixel confusion ids: the Model Evaluation panel then offers no confusion-matrix filtering."""

    def __init__(
        self,
        samples,
        config,
        eval_key,
        global_scores: dict,
        objects: dict,
        unscored: dict,
        custom_metrics=None,
        backend=None,
    ):
        custom_metrics = {**_score_records(global_scores), **(custom_metrics or {})}
        super().__init__(samples, config, eval_key, custom_metrics=custom_metrics, backend=backend)
        self.global_scores = global_scores
        self.objects = objects
        self.unscored = unscored

    def metrics(self, *args, **kwargs) -> dict:
        return {**self.global_scores, **self._get_custom_metrics()}

    def report(self) -> dict:
        """``{"videos": {video: {"J&F", "J", "F", "objects": {obj: {"J&F", "J", "F"}}}}, "global": {...},
        "unscored": {"<video>/<obj>": reason}}``, scores x 100; a video's scores are means over its objects."""
        by_video: dict[str, dict[str, dict]] = {}
        for key, score in self.objects.items():
            video, obj = key.rsplit("/", 1)
            by_video.setdefault(video, {})[obj] = {"J&F": (score["J"] + score["F"]) / 2, **score}
        videos = {
            video: {**_mean_scores(list(objects.values())), "objects": objects} for video, objects in by_video.items()
        }
        return {"videos": videos, "global": dict(self.global_scores), "unscored": dict(self.unscored)}

    def print_report(self, digits: int = 1) -> None:
        """Prints J&F, J and F per video, each video's objects below it, then the global score and unscored."""
        report = self.report()
        names = [*report["videos"], *(f"  {o}" for v in report["videos"].values() for o in v["objects"])]
        width = max(len(name) for name in ["video / object", "Global score", *names])
        columns = len(f"{100:.{digits}f}") + 2

        def line(name: str, scores: dict) -> str:
            return f"{name:<{width}}" + "".join(f"{scores[m]:>{columns}.{digits}f}" for m in SCORES)

        lines = [f"{'video / object':<{width}}" + "".join(f"{m:>{columns}}" for m in SCORES)]
        for video, scores in report["videos"].items():
            lines.append(line(video, scores))
            lines.extend(line(f"  {obj}", object_scores) for obj, object_scores in scores["objects"].items())
        lines.append(line("Global score", report["global"]))
        if report["unscored"]:
            lines.append(f"{len(report['unscored'])} objects not scored:")
            lines.extend(f"  {key}: {reason}" for key, reason in report["unscored"].items())
        print("\n".join(lines))

    def video_scores(self) -> dict[str, float]:
        """Each video's J&F (x 100): the values ``{eval_key}_JF`` holds on the samples."""
        return {video: scores["J&F"] for video, scores in self.report()["videos"].items()}

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
        """An empty 1x1 matrix over no classes: the Model Evaluation panel draws one for every segmentation run."""
        return np.zeros((1, 1), dtype=int), list(self.classes), None

    @classmethod
    def _from_dict(cls, d, samples, config, eval_key, **kwargs):
        return cls(
            samples,
            config,
            eval_key,
            d["global_scores"],
            d["objects"],
            d.get("unscored", {}),
            custom_metrics=d.get("custom_metrics"),
            **kwargs,
        )


class _RenderedMasks(Sequence):
    """An object's masks on its annotated frames, rendered on access (empty where it has no Detection)."""

    def __init__(self, detections: list[fo.Detection | None], size: tuple[int, int]):
        self._detections = detections
        self._size = size

    def __len__(self) -> int:
        return len(self._detections)

    def __getitem__(self, position: int) -> np.ndarray:
        detection = self._detections[position]
        if detection is None:
            return np.zeros(self._size[::-1], bool)
        return detection_to_mask(detection, self._size)


def _object_names(gt_by_frame: dict[int, dict[int, fo.Detection]]) -> dict[int, str]:
    names: dict[int, str] = {}
    for objects in gt_by_frame.values():
        for index, detection in objects.items():
            names.setdefault(index, detection_object_name(detection))
    return names


def score_video(sample: fo.Sample, gt_field: str, pred_field: str, skip_first_and_last: bool) -> list[ObjectScore]:
    """Every ground-truth object's J&F in one video sample, with the scored frames' values."""
    size = frame_size(sample)
    gt_by_frame = detections_by_frame(sample, gt_field)
    pred_by_frame = detections_by_frame(sample, pred_field)
    names = _object_names(gt_by_frame)
    scores = []
    for index, numbers in annotated_frames(sample, gt_by_frame).items():
        gt = [gt_by_frame.get(n, {}).get(index) for n in numbers]
        pred = [pred_by_frame.get(n, {}).get(index) for n in numbers]
        scores.append(
            evaluate_object(
                _RenderedMasks(gt, size),
                _RenderedMasks(pred, size),
                frame_names=[frame_name(frame_index(n)) for n in numbers],
                video=video_name(sample),
                obj=names.get(index, f"{index:03d}"),
                skip_first_and_last=skip_first_and_last,
            )
        )
    return scores


def _store_video_scores(sample: fo.Sample, eval_key: str, gt_field: str, scores: list[ObjectScore]) -> None:
    video_result = EvaluationResult(scores)
    means = (video_result.j, video_result.f, video_result.jf) if video_result.scored else (None, None, None)
    for path, value in zip(JFEvaluation.sample_fields(eval_key), means):
        sample[path] = value
    by_name = {score.obj: {int(fs.frame) + 1: fs for fs in score.frames} for score in video_result.scored}
    for number, frame in sample.frames.items():
        detections = frame[gt_field] if frame.has_field(gt_field) else None
        for detection in detections.detections if detections is not None else []:
            frame_score = by_name.get(detection_object_name(detection), {}).get(number)
            detection[f"{eval_key}_J"] = None if frame_score is None else frame_score.j
            detection[f"{eval_key}_F"] = None if frame_score is None else frame_score.f


def evaluate_jf(
    samples: fo.core.collections.SampleCollection,
    gt_field: str,
    pred_field: str,
    eval_key: str,
    skip_first_and_last: bool = True,
    progress: Callable[[int, int, str], None] | None = None,
    allow_missing: bool = False,
) -> JFEvaluationResults:
    """Score every video of ``samples``, then register the run under ``eval_key`` and store the fields.

    Nothing is registered or written when the fields, the key or the scores are unusable, or the predictions
    are missing or unmatched (:func:`.jf_checks.check_predictions`; ``allow_missing`` scores unpredicted videos
    as empty).
    """
    dataset = samples._dataset.name
    for field in (gt_field, pred_field):
        if not samples.has_frame_field(field):
            raise ValueError(
                f"'{field}' is not a frame field of dataset '{dataset}': "
                "pass a frame-level Detections field with masks (e.g. the one import_sav wrote)"
            )
    check_predictions(samples, gt_field, pred_field, allow_missing)
    config = JFEvaluationConfig(gt_field, pred_field, skip_first_and_last=skip_first_and_last)
    method = config.build()
    method.validate_run(samples, eval_key)
    scores_by_sample: dict[str, list[ObjectScore]] = {}
    total = len(samples)
    for done, sample in enumerate(samples.iter_samples()):
        scores_by_sample[sample.id] = score_video(sample, gt_field, pred_field, skip_first_and_last)
        if progress is not None:
            progress(done + 1, total, video_name(sample))
    result = EvaluationResult([s for scores in scores_by_sample.values() for s in scores], skip_first_and_last)
    if not result.scored:
        raise ValueError(
            f"nothing to score in dataset '{dataset}': none of the {len(result.objects)} objects of "
            f"'{gt_field}' in {total} videos has a mask on its scored frames; pass a ground-truth "
            "field with masks (e.g. the one import_sav wrote)"
        )
    method.register_run(samples, eval_key)
    method.declare_fields(samples, eval_key)
    method.add_fields_to_sidebar_group(samples, eval_key)
    for sample in samples.iter_samples(autosave=True):
        _store_video_scores(sample, eval_key, gt_field, scores_by_sample[sample.id])
    summary = result.to_json()
    results = JFEvaluationResults(
        samples, config, eval_key, summary["global"], summary["objects"], summary["unscored"], backend=method
    )
    method.save_run_results(samples, eval_key, results)
    return results
