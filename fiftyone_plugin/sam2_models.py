"""What SAM 2's FiftyOne models share: the model parameters, the prompt field ``apply_model`` names, no batching
and no preprocessing of FiftyOne's (each model reads its media itself); torch loads on the first prediction."""

from __future__ import annotations

import fiftyone.core.models as fom

from sam2_plugins.model.official import DEFAULT_CHECKPOINT

from .parameters import ModelParams

PROMPT_FIELD_KEY = "prompt_field"
"""The ``apply_model`` keyword naming the field of prompts."""


class Sam2Model(fom.SamplesMixin, fom.Model):
    """A SAM 2 / 2.1 model from an official checkpoint name or a local ``.pt`` file (``Sam2VideoModel``,
    ``Sam2ImageModel``); ``_predictor`` is loaded by the subclass on its first prediction."""

    def __init__(
        self,
        checkpoint: str = DEFAULT_CHECKPOINT,
        config: str | None = None,
        image_size: int = 1024,
        device: str | None = None,
    ):
        fom.SamplesMixin.__init__(self)
        self.params = ModelParams(checkpoint=checkpoint, config=config, image_size=image_size, device=device)
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
