"""SAM 2 as a FiftyOne image model: ``dataset.apply_model(model, "sam2", prompt_field="boxes")``.

Like the zoo's SAM 2 image models (a :class:`fiftyone.core.models.Model` with ``SamplesMixin``), it prompts each
image from a field of Detections (boxes) or Keypoints (clicks), or without ``prompt_field`` segments everything
with the automatic mask generator; the predictions are those of ``apply_sam2`` on image datasets (same rules, same
Detections). Images are read from their files by the library's rule (16-bit and float ones by percentiles), not
from FiftyOne's 8-bit decoding. torch and the weights load on the first prediction.
"""

from __future__ import annotations

import fiftyone as fo

from sam2_plugins.model.official import DEFAULT_CHECKPOINT

from .image_predictions import AUTOMATIC, image_detections, load_image_predictor
from .parameters import MaskGeneratorParams
from .sam2_models import Sam2Model


class Sam2ImageModel(Sam2Model):
    """SAM 2 / 2.1 image segmentation from an official checkpoint name or a local ``.pt`` file; ``generator``
    holds the mask generator's settings for images applied without ``prompt_field``."""

    def __init__(
        self,
        checkpoint: str = DEFAULT_CHECKPOINT,
        config: str | None = None,
        image_size: int = 1024,
        device: str | None = None,
        generator: MaskGeneratorParams | None = None,
    ):
        super().__init__(checkpoint, config, image_size, device)
        self.generator = generator or MaskGeneratorParams()
        self._mask_generator = None

    @property
    def media_type(self) -> str:
        return "image"

    @property
    def prompt(self) -> str:
        """The field of prompts ``apply_model`` was given (``prompt_field=``), or ``automatic`` without one."""
        return self.named_prompt_field or AUTOMATIC

    def predict(self, arg, sample: fo.Sample | None = None) -> fo.Detections:
        """The image's Detections with masks; ``arg`` (FiftyOne's 8-bit decoding of the image) is unused."""
        if sample is None:
            raise ValueError("Sam2ImageModel reads each sample's file and prompts: use dataset.apply_model(...)")
        if self._predictor is None:
            self._predictor = load_image_predictor(self.params)
        if self.prompt != AUTOMATIC:
            return image_detections(self._predictor, sample, self.prompt)
        if self._mask_generator is None:
            self._mask_generator = self.generator.mask_generator(self._predictor)
        return image_detections(self._mask_generator, sample, AUTOMATIC)
