"""Fine-tuned checkpoints and resumable training state, written atomically.

The checkpoint is `{"model": state_dict}` with the official key set, so Meta's `sam2` and ours load it strictly;
beside it, `<name>.json` records the config, the source checkpoint, the data, the steps and the metrics. While
training runs, `<name>.resume.pt` holds what a killed run needs to continue exactly where it stopped: weights,
optimizer, schedule, step and every random generator.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import torch
from torch import nn

from ..atomic import atomic_write, write_text
from ..model.checkpoint import CheckpointError

try:
    import fcntl
except ImportError:  # Windows: runs are not locked
    fcntl = None

RESUME_SUFFIX = ".resume.pt"
LOCK_SUFFIX = ".finetune.lock"
LOCK_WAIT_SECONDS = 5.0


def checked_output_path(path: str | os.PathLike) -> Path:
    """The checkpoint path to write, an error naming it unless it is a .pt file in an existing folder."""
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"{path}: the fine-tuned checkpoint must be a .pt file (e.g. {path.with_suffix('.pt')})")
    if path.name.endswith(RESUME_SUFFIX):
        raise ValueError(f"{path}: names ending in {RESUME_SUFFIX} are training states; pick another name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{path.parent}: no such folder for the checkpoint {path.name}; create it first")
    return path


def sidecar_path(checkpoint: Path) -> Path:
    return checkpoint.with_suffix(".json")


def resume_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.stem + RESUME_SUFFIX)


@contextmanager
def writer_lock(checkpoint: Path) -> Iterator[None]:
    """Hold `<name>.finetune.lock` while a run writes `checkpoint`: a second run writing it stops with an error
    instead of mixing its training state and checkpoint with the first's. The lock dies with its process (the
    kernel releases a killed holder's lock a moment after it is gone, hence the short wait); the holder removes the
    file when it ends."""
    if fcntl is None:
        yield
        return
    path = checkpoint.with_name(checkpoint.stem + LOCK_SUFFIX)
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        with open(path, "a") as handle:
            if not _try_lock(handle):
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                raise FileExistsError(
                    f"{checkpoint}: another fine-tuning run is writing it (it holds {path}); wait for it to end or "
                    "pass another --out"
                )
            if not _is_the_file_at(handle, path):  # its holder removed it while this run opened it: start over
                continue
            try:
                yield
            finally:
                path.unlink(missing_ok=True)
            return


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _is_the_file_at(handle: IO[str], path: Path) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


def save_checkpoint(path: Path, model: nn.Module, sidecar: dict[str, Any]) -> None:
    """`{"model": state_dict}` at `path` and its JSON sidecar, each replaced atomically."""
    state = {key: value.detach().cpu() for key, value in model.state_dict().items()}
    with atomic_write(path) as partial:
        torch.save({"model": state}, partial)
    write_text(sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")


@dataclass
class TrainingState:
    """Everything a resumed run restores."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: torch.Tensor  # one row per process (rank)
    cuda_rng: torch.Tensor | None  # each process's training device's, on CUDA
    generators: dict[str, list[dict]]  # numpy bit-generator states by name, one per process
    settings: dict[str, Any]  # what the run was started with: a resume must use the same ...
    run: dict[str, Any]  # ... and the same model, source checkpoint and data (the sidecar's record of them)
    history: list[dict[str, float]]  # loss per logged step


def save_training_state(path: Path, state: TrainingState) -> None:
    record = {
        "step": state.step,
        "model": {key: value.detach().cpu() for key, value in state.model.items()},
        "optimizer": state.optimizer,
        "scheduler": state.scheduler,
        "torch_rng": state.torch_rng,
        "cuda_rng": state.cuda_rng,
        # JSON text: numpy's 128-bit generator states and free-form settings stay plain data for weights_only
        "json": json.dumps(
            {"generators": state.generators, "settings": state.settings, "run": state.run, "history": state.history}
        ),
    }
    with atomic_write(path) as partial:
        torch.save(record, partial)


def load_training_state(path: Path) -> TrainingState:
    """The state saved at `path`; an error naming the file if it cannot be read."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        extra = json.loads(record["json"])
        return TrainingState(
            step=int(record["step"]),
            model=record["model"],
            optimizer=record["optimizer"],
            scheduler=record["scheduler"],
            torch_rng=record["torch_rng"],
            cuda_rng=record.get("cuda_rng"),
            generators=extra["generators"],
            settings=extra["settings"],
            run=extra["run"],
            history=extra["history"],
        )
    except (OSError, RuntimeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(
            f"{path}: cannot resume from this training state ({error}); delete it to start over"
        ) from error
