"""SAM 2 as a FiftyOne video model: ``dataset.apply_model(model, "sam2", prompt_field="frames.user_boxes")``.

Like the zoo's SAM 2 video models (a :class:`fiftyone.core.models.Model` with ``SamplesMixin``), it prompts each
video from a frame field of Detections (boxes, or masks) or Keypoints (clicks) and returns the propagated masks
of every frame; the prompts follow the rules of :mod:`.video_prompts` and the predictions are those of the
``apply_sam2`` operator (same core, same Detections). On a clips view (``to_clips``, the App's "to clips") each
clip is tracked as a video of its own: prompts come from the clip's frames only and only its frames get labels.
Views of videos (filtered labels, match, select, sort) prompt from the labels they hold; frames and patches views
hold images, which FiftyOne refuses for video models. Name the label field without ``frames.``: FiftyOne (1.22)
stores a video model's frame labels under ``label_field`` as given, and a ``frames.`` name stores nothing, for its
zoo video models too. torch and the weights load on the first prediction.
"""

from __future__ import annotations

import fiftyone as fo

from sam2_plugins.model_loading import load_video_predictor

from .forms import frame_field_name
from .sam2_models import Sam2Model
from .tracks import video_name
from .video_predictions import predicted_frames
from .video_prompts import label_field_prompts


class Sam2VideoModel(Sam2Model):
    """SAM 2 / 2.1 video segmentation from an official checkpoint name or a local ``.pt`` file."""

    @property
    def media_type(self) -> str:
        return "video"

    @property
    def needs_fields(self) -> dict[str, str]:
        return self._fields

    @needs_fields.setter
    def needs_fields(self, needed: dict[str, str]) -> None:
        """Prompts are frame fields: a name given without FiftyOne's ``frames.`` prefix gets it."""
        self._fields = {key: f"frames.{frame_field_name(name)}" for key, name in (needed or {}).items()}

    @property
    def prompt_field(self) -> str:
        """The frame field of prompts ``apply_model`` was given (``prompt_field=``), without ``frames.``."""
        name = self.named_prompt_field
        if not name:
            raise ValueError(
                "Sam2VideoModel needs prompts: call dataset.apply_model(model, label_field, "
                "prompt_field='frames.<field of Detections or Keypoints>')"
            )
        return frame_field_name(name)

    def predict(self, arg, sample: fo.Sample | None = None) -> dict[int, fo.Detections]:
        """``{frame number: Detections}`` for every frame from the video's first prompt on; ``arg`` is unused.

        The frames are read as ``apply_sam2`` reads them (the frames' own images when they have them).
        """
        if sample is None:
            raise ValueError("Sam2VideoModel predicts from a sample's prompts: use dataset.apply_model(...)")
        first, last = sample.support if sample.dataset._is_clips else (1, None)
        prompted = label_field_prompts(sample, self.prompt_field)
        if not prompted.prompts:
            where = (
                f"video {video_name(sample)}"
                if last is None
                else f"the clip {first}..{last} of video {video_name(sample)}"
            )
            raise ValueError(
                f"{where} has no prompt in frame field '{self.prompt_field}'; add a box, mask or click on one of "
                "its frames, or apply the model to a view without it (apply_model's skip_failures=True skips "
                "such videos with a warning)"
            )
        if self._predictor is None:
            self._predictor = load_video_predictor(self.config.model_spec())
        frames = predicted_frames(self._predictor, sample, prompted, last=last)
        return {number: detections for number, _, detections in frames}
