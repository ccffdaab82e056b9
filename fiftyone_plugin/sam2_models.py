"""What SAM 2's FiftyOne models share: their ``config``, the prompt field ``apply_model`` names, no preprocessing
of FiftyOne's (each model reads its media itself), and the views they refuse; torch loads on the first prediction.

``apply_model``'s standard arguments work as for FiftyOne's zoo models: ``confidence_thresh`` and ``classes`` are
applied by FiftyOne to the Detections it stores (``config`` has no ``confidence_thresh`` of its own, so FiftyOne
keeps detections whose ``confidence`` is at least the threshold), ``batch_size`` feeds the model batches that it
predicts one item at a time, ``skip_failures`` and ``progress`` are FiftyOne's.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.core.models as fom

from sam2_plugins.model.official import DEFAULT_CHECKPOINT

from .parameters import ModelParams

PROMPT_FIELD_KEY = "prompt_field"
"""The ``apply_model`` keyword naming the field of prompts."""


class Sam2Model(fom.SamplesMixin, fom.Model):
    """A SAM 2 / 2.1 model from an official checkpoint name or a local ``.pt`` file (``Sam2VideoModel``,
    ``Sam2ImageModel``); ``config`` holds the checkpoint, the SAM 2 config name, the input size, the device, the
    precision and whether the predictor's interactive post-processing runs (see the library's `ModelSpec`), and
    ``_predictor`` is loaded by the subclass on its first prediction."""

    def __init__(
        self,
        checkpoint: str = DEFAULT_CHECKPOINT,
        config: str | None = None,
        image_size: int = 1024,
        device: str | None = None,
        precision: str | None = None,
        apply_postprocessing: bool = True,
    ):
        fom.SamplesMixin.__init__(self)
        self.config = ModelParams(checkpoint, config, image_size, device, precision, apply_postprocessing)
        self._predictor = None

    @property
    def ragged_batches(self) -> bool:
        return False

    @property
    def transforms(self) -> None:
        return None

    @property
    def preprocess(self) -> bool:
        return False

    @preprocess.setter
    def preprocess(self, value: bool) -> None:
        if value:
            raise ValueError(f"{type(self).__name__} reads its media itself; it has no preprocessing to turn on")

    @property
    def named_prompt_field(self) -> str | None:
        """The field ``apply_model`` was given as ``prompt_field=`` (or under another key), None without one."""
        return self.needs_fields.get(PROMPT_FIELD_KEY) or next(iter(self.needs_fields.values()), None)

    def check_view(self, sample: fo.core.document.Document) -> None:
        """Refuse a sample of a patches view: labels FiftyOne stores on patches never reach the dataset."""
        dataset = sample.dataset
        if dataset is not None and dataset._is_patches:
            prompt = self.named_prompt_field or "<field of the patches>"
            raise ValueError(
                f"{type(self).__name__} cannot be applied to a patches view (to_patches, to_evaluation_patches): "
                "predictions stored on patches are not saved to the dataset. Apply it to the images the patches "
                "come from, e.g. "
                f"dataset.apply_model(model, label_field, prompt_field='{prompt}') (a filter_labels view of it "
                "prompts only the objects it keeps)"
            )
