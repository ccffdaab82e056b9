"""FiftyOne operators, panel, J&F evaluation and FiftyOne models for SAM 2 (plugin ``@sam2-plugins/sam2``).

Registering the plugin imports no torch: it loads when a run starts, so the App server stays light.
"""

from __future__ import annotations

from .image_model import Sam2ImageModel
from .video_model import Sam2VideoModel

__all__ = ["Sam2ImageModel", "Sam2VideoModel", "register"]


def register(plugin) -> None:
    """Register every operator and panel listed in ``fiftyone.yml``."""
    from .apply_sam2 import ApplySam2
    from .auto_masklets import AutoMasklets
    from .evaluate_ctc import EvaluateCtc
    from .evaluate_jf import EvaluateJF
    from .export_ctc import ExportCtc
    from .export_sav_predictions import ExportSavPredictions
    from .finetune_sam2 import FinetuneSam2
    from .import_ctc import ImportCtc
    from .import_vos import ImportSav, ImportVos
    from .jf_panel import JFPanel
    from .recover_runs import RecoverRuns

    for operator in (
        ImportVos,
        ImportSav,
        ApplySam2,
        AutoMasklets,
        RecoverRuns,
        EvaluateJF,
        ExportSavPredictions,
        ImportCtc,
        ExportCtc,
        EvaluateCtc,
        FinetuneSam2,
        JFPanel,
    ):
        plugin.register(operator)
