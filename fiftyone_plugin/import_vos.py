"""Operators ``import_vos`` (a VOS benchmark download of any layout: SA-V, DAVIS, MOSE, LVOS, YouTube-VOS) and
``import_sav`` (the same for SA-V roots only, into ``sa-v`` by default), as FiftyOne video datasets
(:mod:`.vos_import` says what each sample holds)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from sam2_plugins.datasets import LAYOUTS

from .forms import delegation_notice, progress_reporter
from .import_sav import SAV_DATASET_NAME, SAV_LAYOUTS, SAV_SPLIT_FOLDER
from .parameters import from_params
from .vos_import import VOS_ROOT, ImportVosParams, import_inputs, import_outputs, import_result, import_vos


class ImportVos(foo.Operator):
    layouts: tuple[str, ...] = tuple(LAYOUTS)
    """The layouts it imports (others are refused naming the operator that imports them)."""
    expected: str = VOS_ROOT
    """What the root must be, as errors name it."""
    dataset_name: str | None = None
    """The default dataset (None: ``<layout>-<split>``)."""
    title = "Import a VOS dataset"

    @property
    def config(self) -> foo.OperatorConfig:
        return foo.OperatorConfig(
            name="import_vos",
            label="SAM 2: import a VOS dataset",
            description="Import SA-V, DAVIS, MOSE, LVOS or YouTube-VOS as videos with their ground-truth masklets",
            dynamic=True,
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
        )

    def resolve_input(self, ctx) -> types.Property:
        inputs = types.Object()
        defaults = ImportVosParams(dataset_dir="", dataset_name=self.dataset_name)
        import_inputs(inputs, ctx, defaults, self.layouts, self.expected)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label=self.title))

    def execute(self, ctx) -> dict:
        params = from_params(ImportVosParams, ctx.params)
        options = {name: value for name, value in vars(params).items() if name != "dataset_dir"}
        options["dataset_name"] = params.dataset_name or self.dataset_name
        dataset, report = import_vos(
            params.dataset_dir,
            progress=progress_reporter(ctx, "imported"),
            layouts=self.layouts,
            expected=self.expected,
            **options,
        )
        return import_result(dataset, report)

    def resolve_output(self, ctx) -> types.Property:
        return import_outputs()


class ImportSav(ImportVos):
    layouts = SAV_LAYOUTS
    expected = SAV_SPLIT_FOLDER
    dataset_name = SAV_DATASET_NAME
    title = "Import SA-V"

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
