"""Fine-tuning benchmark: training speed against Meta's training loop, and proof that training learns.

1. Speed: the same pre-sampled clips (synthetic SA-V train videos, augmentation off), the same seeded weights and
   prompt recipe, CPU float32: our `Finetuner.train_step` against Meta's loop body (`SAM2Train` forward,
   `MultiStepMultiMasksAndIous`, backward, gradient clipping at 0.1, AdamW), with the image encoder frozen (our
   default) and trained. Steps per CPU-second of one thread, the two loops' steps interleaved (the machine may be
   shared), and the ratio ours / Meta's.
2. Learning: `sam2-plugins finetune` from seeded random weights (tiny config, lr 3e-4, Meta's 8 frames x 3
   objects per clip, prompted by their masks) on 4 synthetic SA-V train videos of moving shapes (33 frames, 9 of
   them annotated), held-out J&F on 2 synthetic SA-V val videos before and after N steps, and the gain.

    python benchmarks/bench_finetune.py [--image_size 256] [--timed_steps 12] [--train_steps 600] [--seed 0]
                                        [--skip_speed] [--skip_learning]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from meta_training import build_meta_model, meta_batch, meta_loss
from random_checkpoint import write_random_checkpoint

from sam2_plugins.cli import main as cli_main
from sam2_plugins.datasets import get_layout
from sam2_plugins.model.predictor import load_model
from sam2_plugins.sample_data import write_sav_train, write_sav_val
from sam2_plugins.training.clips import ClipSampler
from sam2_plugins.training.trainer import Finetuner, FinetuneSettings

CONFIG = "sam2.1_hiera_t"
FRAMES, OBJECTS = 8, 3  # Meta's defaults


def speed(folder: Path, image_size: int, timed_steps: int, frozen: bool) -> tuple[float, float]:
    """Steps per CPU-second of ours and of Meta's loop, their steps interleaved clip by clip (after one warm-up
    step each) so that a change in the machine's load falls on both alike."""
    checkpoint = write_random_checkpoint(folder, CONFIG, image_size)
    videos = get_layout("sav-train").videos(folder / "train")
    clips = ClipSampler(videos, image_size, FRAMES, OBJECTS, augmentation=None, seed=1)
    batch = [clips.sample() for _ in range(timed_steps + 1)]
    settings = FinetuneSettings(steps=len(batch), freeze=("image_encoder",) if frozen else (), augment=False)

    model = load_model(checkpoint, CONFIG, image_size=image_size, apply_postprocessing=False)
    ours = Finetuner(model, videos, settings, folder / "unused.pt", {}, torch.device("cpu"))
    ours.model.train()

    meta = build_meta_model(checkpoint, CONFIG, image_size, settings.prompts, freeze_image_encoder=frozen)
    meta.rng = np.random.default_rng(42)
    loss = meta_loss()
    parameters = [p for p in meta.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=settings.optimizer.lr, weight_decay=settings.optimizer.weight_decay)

    def meta_step(clip) -> None:
        losses = loss(meta(meta_batch(clip.images, clip.masks)), clip.masks)
        optimizer.zero_grad(set_to_none=True)
        if losses["core_loss"].requires_grad:
            losses["core_loss"].backward()
            torch.nn.utils.clip_grad_norm_(parameters, settings.optimizer.max_grad_norm)
            optimizer.step()

    def our_step(clip) -> None:
        ours.train_step([clip])

    cpu_seconds = {our_step: 0.0, meta_step: 0.0}
    for i, clip in enumerate(batch):
        for step in cpu_seconds:
            torch.manual_seed(i)
            started = time.process_time()
            step(clip)
            if i > 0:  # the first step of each warms up
                cpu_seconds[step] += time.process_time() - started
    return timed_steps / cpu_seconds[our_step], timed_steps / cpu_seconds[meta_step]


def learning(folder: Path, image_size: int, steps: int, lr: float, seed: int) -> dict:
    """`sam2-plugins finetune` from seeded random weights, clips prompted by their masks (as held-out J&F is)."""
    checkpoint = write_random_checkpoint(folder, CONFIG, image_size, seed=seed)
    out = folder / "tuned.pt"
    arguments = [
        "finetune",
        "--train_root", str(folder / "train"),
        "--val_root", str(folder / "val"),
        "--checkpoint", str(checkpoint),
        "--out", str(out),
        "--steps", str(steps),
        "--image_size", str(image_size),
        "--frames_per_clip", str(FRAMES),
        "--objects_per_clip", str(OBJECTS),
        "--lr", str(lr),
        "--point_probability", "0",
        "--device", "cpu",
        "--checkpoint_every", str(steps),
    ]  # fmt: skip
    print("sam2-plugins", " ".join(arguments), flush=True)
    cli_main(arguments)
    return json.loads(out.with_suffix(".json").read_text())["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image_size", type=int, default=256)
    parser.add_argument("--timed_steps", type=int, default=12)
    parser.add_argument("--train_steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=3e-4, help="learning rate of the learning run (3e-4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights and of the synthetic videos")
    parser.add_argument("--skip_speed", action="store_true")
    parser.add_argument("--skip_learning", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)  # CPU-seconds of one thread: no idle spinning of a thread pool counted on a shared machine
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_sav_train(folder / "train", num_videos=4, num_frames=33, size=(96, 128), seed=args.seed)
        write_sav_val(folder / "val", num_videos=2, num_frames=33, size=(96, 128), seed=100 + args.seed)
        print(f"{CONFIG}, {args.image_size} px, {FRAMES} frames x {OBJECTS} objects per clip, CPU float32", flush=True)
        if not args.skip_speed:
            for frozen in (True, False):
                ours, meta = speed(folder, args.image_size, args.timed_steps, frozen)
                name = "frozen image encoder" if frozen else "everything trained"
                rates = f"ours {ours:.3f} steps/CPU-s   Meta {meta:.3f}   ratio {ours / meta:.2f}x"
                print(f"  {name:<22} {rates}", flush=True)
        if not args.skip_learning:
            metrics = learning(folder, args.image_size, args.train_steps, args.lr, args.seed)
            print(
                f"  held-out J&F from seeded random weights after {args.train_steps} steps (lr {args.lr}): "
                f"before {metrics['jf_before']:.2f}  after {metrics['jf_after']:.2f}  gain {metrics['jf_gain']:+.2f}"
            )


if __name__ == "__main__":
    main()
