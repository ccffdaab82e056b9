"""Training clips drawn from a VOS dataset's masklets, as Meta's `RandomUniformSampler` draws them.

A clip is `frames_per_clip` consecutive annotated frames of a random video from a random start, with up to
`objects_per_clip` random objects among those visible on its first frame; an object absent from a later frame has
an empty mask there. Frames are resized to the model's square input (bilinear, masks nearest), optionally
augmented, and normalized by the ImageNet statistics the model expects.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..datasets import VosVideo
from ..model.frame_features import IMAGENET_MEAN, IMAGENET_STD
from .augmentation import Augmentation

CACHED_VIDEOS = 8  # videos whose resized annotated frames stay in memory between clips
DRAWS_PER_VIDEO = 50  # draws without a visible object after which the videos are taken to have none


@dataclass
class Clip:
    """One training clip: normalized frames and its objects' masks at the model's input size."""

    images: torch.Tensor  # (T, 3, S, S) float32
    masks: torch.Tensor  # (T, O, S, S) bool
    video_id: str
    frames: list[int]  # video frame indices
    objects: list[str]


class ClipSampler:
    """Random clips from `videos`; `rng` (a numpy generator) decides everything, so its state resumes a run."""

    def __init__(
        self,
        videos: Sequence[VosVideo],
        image_size: int,
        frames_per_clip: int = 8,
        objects_per_clip: int = 3,
        augmentation: Augmentation | None = None,
        seed: int = 0,
    ) -> None:
        if frames_per_clip < 1 or objects_per_clip < 1:
            raise ValueError(
                f"frames_per_clip and objects_per_clip must be >= 1, got {frames_per_clip}, {objects_per_clip}"
            )
        self.image_size = image_size
        self.frames_per_clip = frames_per_clip
        self.objects_per_clip = objects_per_clip
        self.augmentation = augmentation
        self.rng = np.random.default_rng(seed)
        self.videos = [video for video in videos if len(video.annotated_frames()) >= frames_per_clip]
        if not self.videos:
            counts = ", ".join(f"{video.video_id}: {len(video.annotated_frames())}" for video in videos[:5]) or "none"
            raise ValueError(
                f"no video has {frames_per_clip} annotated frames for a clip (annotated frames per video: {counts}): "
                "lower frames_per_clip or add longer videos"
            )
        self._frames: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()

    def sample(self) -> Clip:
        """A clip whose first frame shows at least one object."""
        for _ in range(DRAWS_PER_VIDEO * len(self.videos)):
            video = self.videos[int(self.rng.integers(len(self.videos)))]
            annotated = video.annotated_frames()
            start = int(self.rng.integers(len(annotated) - self.frames_per_clip + 1))
            frames = annotated[start : start + self.frames_per_clip]
            first = video.masks(frames[0])
            visible = [obj for obj in video.object_ids if obj in first and first[obj].any()]
            if visible:
                break
        else:
            names = ", ".join(video.video_id for video in self.videos[:5])
            raise ValueError(
                f"no object is visible on the first frame of {DRAWS_PER_VIDEO * len(self.videos)} clips drawn from "
                f"{len(self.videos)} videos ({names}): their annotations hold no masks; check the ground truth"
            )
        count = min(len(visible), self.objects_per_clip)
        objects = [visible[i] for i in sorted(self.rng.choice(len(visible), count, replace=False).tolist())]
        return self._clip(video, frames, objects)

    def _clip(self, video: VosVideo, frames: list[int], objects: list[str]) -> Clip:
        size = (self.image_size, self.image_size)
        pictures = self._resized_frames(video)
        images = torch.stack([torch.from_numpy(pictures[t]).permute(2, 0, 1) for t in frames]).float() / 255.0
        height, width = video.frame_size
        masks = torch.zeros(len(frames), len(objects), height, width, dtype=torch.bool)
        for i, t in enumerate(frames):
            on_frame = video.masks(t, objects)
            for j, obj in enumerate(objects):
                if obj in on_frame:
                    masks[i, j] = torch.from_numpy(np.asarray(on_frame[obj], dtype=bool))
        masks = F.interpolate(masks.float(), size=size, mode="nearest") > 0
        if self.augmentation is not None:
            images, masks = self.augmentation.apply(images, masks, self.rng)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return Clip((images - mean) / std, masks, video.video_id, frames, objects)

    def _resized_frames(self, video: VosVideo) -> dict[int, np.ndarray]:
        """The video's annotated frames at the input size (uint8), kept for the last few videos."""
        if video.video_id in self._frames:
            self._frames.move_to_end(video.video_id)
            return self._frames[video.video_id]
        size = (self.image_size, self.image_size)
        with video.frames() as source:
            resized = {
                t: np.array(Image.fromarray(source[t]).resize(size, Image.Resampling.BILINEAR))
                for t in video.annotated_frames()
            }
        self._frames[video.video_id] = resized
        if len(self._frames) > CACHED_VIDEOS:
            self._frames.popitem(last=False)
        return resized
