"""Operator ``import_ctc``: Cell Tracking Challenge sequences as FiftyOne video samples (see :mod:`.ctc_videos`).

One video sample per sequence of a CTC dataset folder (``01``, ``02``... with ``01_GT`` and ``01_RES`` when there),
``video_id`` ``<folder>_<sequence>``; a rerun skips sequences already imported unless ``overwrite``. A sequence that
cannot be read is reported as failed with the file and reason while the others import; an import where every
sequence failed raises, naming each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from sam2_plugins.ctc import CtcFormatError, find_ctc_sequences
from sam2_plugins.lineage import LineageError

from .ctc_videos import CELL_LABEL, GT_FIELD, RESULT_FIELD, ctc_video_sample
from .forms import delegation_notice, folder_input, progress_reporter
from .parameters import from_params

CTC_FOLDER = "a CTC dataset folder (holding 01 with t000.tif ..., and 01_GT and/or 01_RES)"


@dataclass
class ImportCtcParams:
    """What ``import_ctc`` imports; the operator's form and the SDK share these defaults."""

    dataset_dir: str
    dataset_name: str = "ctc"
    overwrite: bool = False


@dataclass
class CtcImportReport:
    """Sequences added, skipped as already there, and failed (video id -> file and reason)."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def failures(self) -> list[str]:
        return [f"{video_id}: {reason}" for video_id, reason in self.failed.items()]


def import_ctc(
    dataset_dir: str | Path, *, progress: Callable[[int, int, str], None] | None = None, **options
) -> tuple[fo.Dataset, CtcImportReport]:
    """Import the sequences of a CTC dataset folder into a persistent dataset; ``options`` are
    :class:`ImportCtcParams`. Raises CtcFormatError naming each failed sequence when none could be imported."""
    params = ImportCtcParams(dataset_dir=str(dataset_dir), **options)
    root = Path(params.dataset_dir).expanduser()
    sequences = find_ctc_sequences(root)
    report = CtcImportReport()
    existed = fo.dataset_exists(params.dataset_name)
    dataset = fo.load_dataset(params.dataset_name) if existed else fo.Dataset(params.dataset_name)
    dataset.persistent = True
    mp4_dir = Path(fo.config.default_dataset_dir) / "sam2-plugins" / dataset.slug
    for position, sequence in enumerate(sequences, start=1):
        video_id = f"{root.name}_{sequence.name}"
        previous = dataset.match(F("video_id") == video_id).values("id") if len(dataset) else []
        if previous and not params.overwrite:
            report.skipped.append(video_id)
            continue
        try:
            sample = ctc_video_sample(sequence, root.name, mp4_dir / f"{video_id}.mp4")
        except (CtcFormatError, LineageError, FileNotFoundError) as error:
            report.failed[video_id] = str(error)
            continue
        dataset.add_sample(sample)  # the previous sample goes only once the new one is in
        if previous:
            dataset.delete_samples(previous)
        report.imported.append(video_id)
        if progress is not None:
            progress(position, len(sequences), video_id)
    if report.failed and not report.imported and not report.skipped:
        if not existed:
            dataset.delete()
        raise CtcFormatError(f"{root}: no sequence imported:\n" + "\n".join(report.failures()))
    return dataset, report


class ImportCtc(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="import_ctc",
            label="SAM 2: import Cell Tracking Challenge sequences",
            description="Import CTC time-lapses with their tracked cells and lineage as videos",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        defaults = ImportCtcParams(dataset_dir="")
        inputs = types.Object()
        folder_input(
            inputs,
            ctx,
            "dataset_dir",
            "CTC dataset folder",
            f"e.g. Fluo-N2DH-SIM+: its sequences 01, 02, ... with ground truth (01_GT) to '{GT_FIELD}' and "
            f"results (01_RES) to '{RESULT_FIELD}', one '{CELL_LABEL}' Detection per cell with its track id",
            CTC_FOLDER,
        )
        inputs.str("dataset_name", label="Dataset name", default=defaults.dataset_name)
        inputs.bool("overwrite", label="Re-import sequences already imported", default=defaults.overwrite)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Import CTC sequences"))

    def execute(self, ctx) -> dict:
        params = from_params(ImportCtcParams, ctx.params)
        dataset, report = import_ctc(
            params.dataset_dir,
            progress=progress_reporter(ctx, "imported"),
            dataset_name=params.dataset_name,
            overwrite=params.overwrite,
        )
        return {
            "dataset": dataset.name,
            "imported": report.imported,
            "skipped": report.skipped,
            "failures": report.failures(),
            "summary": f"{len(report.imported)} imported, {len(report.skipped)} skipped, {len(report.failed)} failed",
        }

    def resolve_output(self, ctx) -> types.Property:
        outputs = types.Object()
        outputs.str("dataset", label="Dataset")
        outputs.str("summary", label="Result")
        outputs.list("imported", types.String(), label="Imported sequences")
        outputs.list("skipped", types.String(), label="Skipped: already imported")
        outputs.list("failures", types.String(), label="Failed sequences (file and reason)")
        return types.Property(outputs)
