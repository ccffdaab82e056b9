"""Operator ``import_sav``: ``import_vos`` for the SA-V layouts (train shards, val/test folders), under the name and
the dataset name (``sa-v``) it has always had."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from .forms import delegation_notice, progress_reporter
from .parameters import from_params
from .vos_import import (
    STEP,
    ImportReport,
    ImportVosParams,
    VosImportError,
    import_inputs,
    import_outputs,
    import_result,
    import_vos,
    overwrite_losses,
)

__all__ = ["SAV_LAYOUTS", "SAV_SPLIT_FOLDER", "STEP", "SavImportError", "import_sav", "overwrite_losses"]

SAV_LAYOUTS = ("sav-train", "sav-val")
SAV_DATASET_NAME = "sa-v"
SAV_SPLIT_FOLDER = (
    "an SA-V split folder: a train root (with sav_NNN shards) or a val/test root (with sav_val.txt or sav_test.txt)"
)
SavImportError = VosImportError


def import_sav(
    dataset_dir: str | Path, *, progress: Callable[[int, int, str], None] | None = None, **options
) -> tuple[fo.Dataset, ImportReport]:
    """:func:`.vos_import.import_vos` of an SA-V root (its layout detected), into ``sa-v`` by default."""
    options["dataset_name"] = options.get("dataset_name") or SAV_DATASET_NAME
    return import_vos(dataset_dir, progress=progress, layouts=SAV_LAYOUTS, expected=SAV_SPLIT_FOLDER, **options)


class ImportSav(foo.Operator):
    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="import_sav",
            label="SAM 2: import SA-V",
            description="Import SA-V train/val/test as videos (import_vos reads every VOS layout)",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        import_inputs(
            inputs, ctx, ImportVosParams(dataset_dir="", dataset_name=SAV_DATASET_NAME), SAV_LAYOUTS, SAV_SPLIT_FOLDER
        )
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Import SA-V"))

    def execute(self, ctx) -> dict:
        params = from_params(ImportVosParams, ctx.params)
        options = {name: value for name, value in vars(params).items() if name != "dataset_dir"}
        dataset, report = import_sav(params.dataset_dir, progress=progress_reporter(ctx, "imported"), **options)
        return import_result(dataset, report)

    def resolve_output(self, ctx) -> types.Property:
        return import_outputs()
