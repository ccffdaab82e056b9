"""SAM 2 as a FiftyOne image model: ``dataset.apply_model(model, "sam2", prompt_field="boxes")``.

Like the zoo's SAM 2 image models (a :class:`fiftyone.core.models.Model` with ``SamplesMixin``), it prompts each
image from a field of Detections (boxes) or Keypoints (clicks), or without ``prompt_field`` segments everything
with the automatic mask generator; the predictions are those of ``apply_sam2`` on image datasets (same rules, same
Detections). It serves image datasets, frames views (``to_frames``: each frame is an image) and filtered or
selected views of them, reading each image from its file by the library's rule (16-bit and float ones by
percentiles); applied to a video dataset or a clips view it segments each frame FiftyOne decodes
(``prompt_field="frames.<field>"``; ``frames.`` is optional for the label field). Patches
views are refused (see :meth:`Sam2Model.check_view`). torch and the weights load on the first prediction.
"""

from __future__ import annotations

import fiftyone as fo

from sam2_plugins.model.official import DEFAULT_CHECKPOINT
from sam2_plugins.model_loading import load_image_predictor, load_mask_generator

from .forms import frame_field_name
from .image_predictions import image_detections, read_image
from .image_prompt_checks import AUTOMATIC
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
        precision: str | None = None,
        apply_postprocessing: bool = True,
    ):
        super().__init__(checkpoint, config, image_size, device, precision, apply_postprocessing)
        self.generator = generator or MaskGeneratorParams()
        self._mask_generator = None

    @property
    def media_type(self) -> str:
        return "image"

    @property
    def prompt(self) -> str:
        """The field of prompts ``apply_model`` was given (``prompt_field=``), or ``automatic`` without one."""
        return self.named_prompt_field or AUTOMATIC

    def predict(self, arg, sample: fo.core.document.Document | None = None) -> fo.Detections:
        """The image's Detections with masks.

        ``arg`` is FiftyOne's 8-bit decoding of the image: used for the frames of a video (``sample`` is then a
        frame, with no file of its own), otherwise the image is read from ``sample.filepath``.
        """
        if sample is None:
            raise ValueError("Sam2ImageModel reads each sample's file and prompts: use dataset.apply_model(...)")
        self.check_view(sample)
        is_video_frame = isinstance(sample, (fo.Frame, fo.core.frame.FrameView))
        image = arg if is_video_frame else read_image(sample.filepath)
        if self._predictor is None:
            self._predictor = load_image_predictor(self.config.model_spec())
        if self.prompt != AUTOMATIC:
            prompt = frame_field_name(self.prompt) if is_video_frame else self.prompt
            return image_detections(self._predictor, image, sample, prompt)
        if self._mask_generator is None:
            self._mask_generator = load_mask_generator(self._predictor, **self.generator.generator_options)
        return image_detections(self._mask_generator, image, sample, AUTOMATIC)
