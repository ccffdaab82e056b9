"""Operator ``import_vos``: a VOS benchmark download of any layout (SA-V, DAVIS, MOSE, LVOS, YouTube-VOS) as a
FiftyOne video dataset (:mod:`.vos_import` says what each sample holds)."""

from __future__ import annotations

import fiftyone.operators as foo
import fiftyone.operators.types as types

from sam2_plugins.datasets import LAYOUTS

from .forms import delegation_notice, progress_reporter
from .parameters import from_params
from .vos_import import VOS_ROOT, ImportVosParams, import_inputs, import_outputs, import_result, import_vos


class ImportVos(foo.Operator):
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
        import_inputs(inputs, ctx, ImportVosParams(dataset_dir=""), tuple(LAYOUTS), VOS_ROOT)
        delegation_notice(inputs)
        return types.Property(inputs, view=types.View(label="Import a VOS dataset"))

    def execute(self, ctx) -> dict:
        params = from_params(ImportVosParams, ctx.params)
        options = {name: value for name, value in vars(params).items() if name != "dataset_dir"}
        dataset, report = import_vos(params.dataset_dir, progress=progress_reporter(ctx, "imported"), **options)
        return import_result(dataset, report)

    def resolve_output(self, ctx) -> types.Property:
        return import_outputs()
