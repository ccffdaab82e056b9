"""The fine-tuning loop: clips -> simulated prompts -> tracking -> Meta's loss -> AdamW, checkpointed and resumable.

Single process, or one process per GPU under `torchrun` (DistributedDataParallel; each process draws its own clips
and seeds torch with seed + rank as Meta's trainer does, the loss normalizer is averaged over processes as Meta's is,
process 0 writes, the training state holds every process's random generators). On CUDA the forward pass runs in
bfloat16 autocast; `activation_checkpointing` recomputes the image encoder in the backward pass.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.checkpoint import checkpoint

from .. import __version__
from ..datasets import VosVideo
from ..model.sam2_model import FrameFeatures, Sam2Model
from .augmentation import Augmentation
from .checkpoints import (
    TrainingState,
    load_training_state,
    resume_path,
    save_checkpoint,
    save_training_state,
)
from .clip_tracking import track_clip
from .clips import Clip, ClipSampler
from .loss import LOSS_TERMS, LossWeights, clip_loss
from .optimizer import OptimizerRecipe, build_optimizer
from .prompting import PromptRecipe, PromptSampler

RECENT_STEPS = 20
FREEZABLE = ("image_encoder", "memory_attention", "memory_encoder", "sam_prompt_encoder", "sam_mask_decoder")


@dataclass(frozen=True)
class FinetuneSettings:
    """What a run trains with; a resumed run must be started with the same."""

    steps: int
    frames_per_clip: int = 8
    objects_per_clip: int = 3
    batch_size: int = 1
    freeze: tuple[str, ...] = ("image_encoder",)  # the small-data default
    augment: bool = True
    seed: int = 0
    checkpoint_every: int = 50
    activation_checkpointing: bool = False
    optimizer: OptimizerRecipe = field(default_factory=OptimizerRecipe)
    prompts: PromptRecipe = field(default_factory=PromptRecipe)
    loss: LossWeights = field(default_factory=LossWeights)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.checkpoint_every < 1:
            raise ValueError(
                f"steps, batch_size and checkpoint_every must be >= 1, got {self.steps}, {self.batch_size}, "
                f"{self.checkpoint_every}"
            )
        unknown = sorted(set(self.freeze) - set(FREEZABLE))
        if unknown:
            raise ValueError(f"cannot freeze {', '.join(unknown)}: choose among {', '.join(FREEZABLE)}")


@dataclass
class StepReport:
    """One optimizer step: its losses, their recent mean and the speed so far."""

    step: int
    steps: int
    losses: dict[str, float]
    steps_per_second: float
    recent_loss: float  # mean loss of the last RECENT_STEPS steps: single steps swing with the prompts drawn

    @property
    def seconds_left(self) -> float:
        return (self.steps - self.step) / self.steps_per_second if self.steps_per_second > 0 else float("inf")


class _ClipBatchLoss(nn.Module):
    """The model and the training forward in one module, so DistributedDataParallel can wrap it."""

    def __init__(self, model: Sam2Model, settings: FinetuneSettings) -> None:
        super().__init__()
        self.model = model
        self.settings = settings

    def forward(self, clips: list[Clip], prompts_sampler: PromptSampler) -> dict[str, torch.Tensor]:
        images = torch.stack([clip.images for clip in clips], dim=1).to(self.model.device)  # (T, V, 3, S, S)
        masks = torch.cat([clip.masks for clip in clips], dim=1).to(self.model.device)  # (T, O, S, S)
        object_clips = torch.cat(
            [torch.full((len(clip.objects),), i, dtype=torch.long) for i, clip in enumerate(clips)]
        ).to(self.model.device)
        prompts = prompts_sampler.sample(masks)
        frames = track_clip(self.model, images, masks, prompts, prompts_sampler, object_clips, self._encode)
        return clip_loss(frames, masks, self.settings.loss)

    def _encode(self, images: torch.Tensor) -> FrameFeatures:
        if "image_encoder" in self.settings.freeze:
            with torch.no_grad():
                return self.model.encode_image(images)
        if self.settings.activation_checkpointing:
            return checkpoint(self.model.encode_image, images, use_reentrant=False)
        return self.model.encode_image(images)


class Finetuner:
    """Trains `model` on clips of `videos`; `run` writes `out` (and its sidecar) and returns the loss history."""

    def __init__(
        self,
        model: Sam2Model,
        videos: Sequence[VosVideo],
        settings: FinetuneSettings,
        out: Path,
        sidecar: dict[str, Any],
        device: torch.device,
    ) -> None:
        self.settings = settings
        self.out = out
        self.sidecar = sidecar
        self.device = device
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.model = model.to(device)
        for name in settings.freeze:
            getattr(model, name).requires_grad_(False)
        self.clips = ClipSampler(
            videos,
            image_size=model.image_size,
            frames_per_clip=settings.frames_per_clip,
            objects_per_clip=settings.objects_per_clip,
            augmentation=Augmentation() if settings.augment else None,
            seed=settings.seed + self.rank,
        )
        self.prompts = PromptSampler(settings.prompts)
        self.optimizer, self.scheduler = build_optimizer(model, settings.optimizer, settings.steps)
        self.forward = _ClipBatchLoss(model, settings)
        if dist.is_initialized():
            device_ids = [device.index] if device.type == "cuda" else None
            self.forward = DistributedDataParallel(self.forward, device_ids=device_ids, find_unused_parameters=True)
        self.step = 0
        self.history: list[dict[str, float]] = []
        self.stop_requested = False  # set (e.g. by a signal handler) to end `run` after the current step
        torch.manual_seed(settings.seed + self.rank)

    @property
    def recorded_settings(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self.settings)))

    def resume(self) -> bool:
        """Continue from the training state beside `out`, if there is one; True when one was found."""
        path = resume_path(self.out)
        if not path.is_file():
            return False
        state = load_training_state(path)
        recorded = ((state.settings, self.recorded_settings, "settings"), (state.run, self.sidecar, "data"))
        for started, now, what in recorded:
            changed = sorted(key for key in started.keys() | now.keys() if started.get(key) != now.get(key))
            if changed:
                raise ValueError(
                    f"{path}: was started with other {what} ({', '.join(changed)} differ); resume with the same "
                    "model, checkpoint, data and settings, or delete it to start over"
                )
        processes, world = len(state.torch_rng), dist.get_world_size() if dist.is_initialized() else 1
        if processes != world:
            raise ValueError(
                f"{path}: was started with {processes} process(es), this run has {world}; resume with as many "
                "(torchrun's --nnodes x --nproc_per_node; 1 is without torchrun), or delete it to start over"
            )
        self.model.load_state_dict(state.model, strict=True)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        # a copy of this process's row: set_rng_state reads from the start of the storage, not of the view
        torch.set_rng_state(state.torch_rng[self.rank].clone())
        if state.cuda_rng is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state.cuda_rng[self.rank].clone(), self.device)
        self.clips.rng.bit_generator.state = state.generators["clips"][self.rank]
        self.prompts.rng.bit_generator.state = state.generators["prompts"][self.rank]
        self.step, self.history = state.step, state.history
        return True

    def run(self, progress: Callable[[StepReport], None] | None = None) -> list[dict[str, float]]:
        """Train up to `settings.steps`, saving the training state every `checkpoint_every` steps, after the
        last one and when `stop_requested` ends the run early (`finish` writes the checkpoint); returns the loss
        history."""
        self.model.train()
        started, first_step = time.perf_counter(), self.step
        while self.step < self.settings.steps:
            if self.stop_requested:
                self._save_state()
                break
            record = self.train_step([self.clips.sample() for _ in range(self.settings.batch_size)])
            self.history.append({"step": self.step, **record})
            if progress is not None and self.rank == 0:
                rate = (self.step - first_step) / (time.perf_counter() - started)
                recent = [entry["loss"] for entry in self.history[-RECENT_STEPS:]]
                report = StepReport(self.step, self.settings.steps, record, rate, sum(recent) / len(recent))
                progress(report)
            if self.step % self.settings.checkpoint_every == 0 or self.step == self.settings.steps:
                self._save_state()
        return self.history

    def train_step(self, batch: list[Clip]) -> dict[str, float]:
        """One optimizer step on a batch of clips (the model in train mode); returns its losses (under torchrun,
        averaged over the processes)."""
        with self._autocast():
            losses = self.forward(batch, self.prompts)
        # a clip whose every frame took its mask as the prompt has nothing to learn from: the step passes (on every
        # process alike: the prompt generator, seeded the same everywhere, draws in step on all of them)
        if losses["loss"].requires_grad:
            self.optimizer.zero_grad(set_to_none=True)
            with warnings.catch_warnings():  # DDP flags grads whose strides differ only along a dimension of size 1
                warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
                losses["loss"].backward()
            parameters = [p for p in self.model.parameters() if p.requires_grad]
            torch.nn.utils.clip_grad_norm_(parameters, self.settings.optimizer.max_grad_norm)
            self.optimizer.step()
        with warnings.catch_warnings():  # the schedule counts steps, with or without an optimizer step
            warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler.step\(\)` before")
            self.scheduler.step()
        self.step += 1
        terms = ("loss", *LOSS_TERMS)
        values = torch.stack([losses[term].detach().float() for term in terms])
        if dist.is_initialized():  # the step's loss is the mean over processes, whose gradient DDP applies
            dist.all_reduce(values)
            values /= dist.get_world_size()
        if not torch.isfinite(values).all():  # the state saved last stays as it was: nothing diverged is written
            raise FloatingPointError(
                f"step {self.step}: the loss is {values[0].item()}: training diverged; lower the learning rate "
                f"(now {self.settings.optimizer.lr:g})"
            )
        return dict(zip(terms, values.tolist(), strict=True))

    def finish(self, metrics: dict[str, float]) -> None:
        """Write the checkpoint and its sidecar (with `metrics`), then remove the training state."""
        if self.rank != 0:
            return
        sidecar = {
            **self.sidecar,
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device": str(self.device),
            "processes": dist.get_world_size() if dist.is_initialized() else 1,
            "versions": {"sam2_plugins": __version__, "torch": torch.__version__},
            "steps": self.step,
            "settings": self.recorded_settings,
            "metrics": metrics,
            "history": self.history,
        }
        save_checkpoint(self.out, self.model, sidecar)
        resume_path(self.out).unlink(missing_ok=True)

    def _save_state(self) -> None:
        """Process 0 writes the training state with every process's random generators (gathered to it)."""
        generators = {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            "clips": self.clips.rng.bit_generator.state,
            "prompts": self.prompts.rng.bit_generator.state,
        }
        processes = [generators]
        if dist.is_initialized():
            processes = [None] * dist.get_world_size() if self.rank == 0 else None
            dist.gather_object(generators, processes, dst=0)
        if self.rank != 0:
            return
        state = TrainingState(
            step=self.step,
            model=self.model.state_dict(),
            optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            torch_rng=torch.stack([process["torch"] for process in processes]),
            cuda_rng=None if generators["cuda"] is None else torch.stack([process["cuda"] for process in processes]),
            generators={name: [process[name] for process in processes] for name in ("clips", "prompts")},
            settings=self.recorded_settings,
            run=self.sidecar,
            history=self.history,
        )
        save_training_state(resume_path(self.out), state)

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast(self.device.type, enabled=False)


def init_distributed() -> torch.device | None:
    """Join the process group `torchrun` describes (its environment variables); the process's device, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")
