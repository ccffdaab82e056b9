"""``import_sav``: :func:`.vos_import.import_vos` for the SA-V layouts (train shards, val/test folders), under the
name and the dataset name (``sa-v``) it has always had; the operator is :class:`.import_vos.ImportSav`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import fiftyone as fo

from .vos_import import STEP, ImportReport, VosImportError, import_vos, overwrite_losses

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
