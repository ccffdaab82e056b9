"""Automatic masklets: ours (`auto_masklets`: our mask generator on the start frame, then every mask tracked together)
against Meta's `SAM2AutomaticMaskGenerator` followed by Meta's `SAM2VideoPredictor` with the same masks as
`add_new_mask` prompts (its per-object loop), on the same seeded random weights and frames.

Speed: frames x objects / s for each object count, one run each; the two pipelines are stepped alternately (one
frame each) so that a busy machine slows both alike, and timed end to end (generator on the start frame, frame
loading, prompts, tracking). Random weights give few distinct masks, so both generators keep every mask
(permissive thresholds, no NMS merging) and both pipelines track the first N records. Meta's NMS (torchvision's,
here the tests' pure-Python stand-in) is replaced by ours, so that it is not held against it. The generators run
at 1024 px (Meta's image predictor's only size), the video predictors at --image-size.
Memory: our pipeline alone in a child process per video length; peak memory (CPU: peak RSS, CUDA: peak allocated)
and the ratio between the longest and the shortest video.

    .venv/bin/python benchmarks/bench_auto.py                        # CPU, tiny, 512 px video, 16/64 objects
    .venv/bin/python benchmarks/bench_auto.py --device cuda --image-size 1024 --frames 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path
from unittest import mock

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import torchvision_standin
from bench_model import (
    autocast,
    child_peak_mib,
    official_and_checkpoint,
    print_peak_memory,
    time_alternately,
    write_video,
)

from sam2_plugins.auto_masklets import auto_masklets
from sam2_plugins.frames import frame_name, open_frames
from sam2_plugins.model import Sam2AutomaticMaskGenerator, Sam2VideoPredictor
from sam2_plugins.model.amg import nms

GENERATOR_SIZE = 1024
KEEP_EVERY_MASK = {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0, "box_nms_thresh": 1.0}


class FirstRecords:
    """A generator keeping its first `count` records (the benchmark's object count)."""

    def __init__(self, generator, count: int) -> None:
        self.generator, self.count = generator, count

    def generate(self, image: np.ndarray) -> list[dict]:
        records = self.generator.generate(image)
        if len(records) < self.count:
            raise SystemExit(f"the generator found {len(records)} masks, fewer than {self.count}: raise --points")
        return records[: self.count]


def our_pipeline_parts(args: argparse.Namespace, checkpoint: Path):
    options = {"points_per_side": args.points, **KEEP_EVERY_MASK}
    generator = Sam2AutomaticMaskGenerator.from_checkpoint(
        checkpoint, config=args.config, image_size=GENERATOR_SIZE, device=args.device, **options
    )
    predictor = Sam2VideoPredictor.from_checkpoint(
        checkpoint, config=args.config, image_size=args.image_size, device=args.device
    )
    return generator, predictor


def official_generator(args: argparse.Namespace, checkpoint: Path):
    from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator
    from sam2.build_sam import build_sam2

    folder = "sam2.1" if args.config.startswith("sam2.1") else "sam2"
    model = build_sam2(f"configs/{folder}/{args.config}.yaml", None, device=args.device)
    model.load_state_dict(torch.load(checkpoint, weights_only=True)["model"])
    return SAM2AutomaticMaskGenerator(model, points_per_side=args.points, **KEEP_EVERY_MASK)


def official_run(generator, official, frames: Path, count: int, device: str):
    """A generator: Meta's mask generator on frame 0, then one propagated frame per step."""
    with open_frames(frames) as source:
        first_frame = np.asarray(source[0])
    with torch.inference_mode(), autocast(device):
        records = FirstRecords(generator, count).generate(first_frame)
        yield
        state = official.init_state(str(frames))
        for obj_id, record in enumerate(records):
            official.add_new_mask(state, 0, obj_id, record["segmentation"])
        for _ in official.propagate_in_video(state):
            yield


def our_run(generator, predictor: Sam2VideoPredictor, frames: Path, count: int):
    with open_frames(frames) as source:
        for _ in auto_masklets(predictor, FirstRecords(generator, count), source):
            yield


def speed(args: argparse.Namespace, workdir: Path) -> None:
    frames = workdir / f"video_{args.frames}"
    write_video(frames, args.frames)
    official, checkpoint = official_and_checkpoint(args.config, args.image_size, args.device, workdir)
    their_generator = official_generator(args, checkpoint)
    our_generator, ours = our_pipeline_parts(args, checkpoint)
    print(
        f"speed: {args.config}, generators at {GENERATOR_SIZE} px ({args.points}^2 points), video predictors at "
        f"{args.image_size} px, {args.device}, {args.frames} frames, frames x objects / s"
    )
    print(f"{'objects':>8} {'official':>10} {'ours':>10} {'ratio':>7}")
    import sam2.automatic_mask_generator as their_module

    with mock.patch.object(
        their_module, "batched_nms", lambda boxes, scores, _, iou_threshold: nms(boxes, scores, iou_threshold)
    ):
        with open_frames(frames) as source, torch.inference_mode():  # warm-up of both generators
            their_generator.generate(np.asarray(source[0]))
            our_generator.generate(np.asarray(source[0]))
        for count in args.objects:
            our_generator.predictor.reset_predictor()  # ours keeps the last image's embedding: encode it again
            runs = {
                "official": official_run(their_generator, official, frames, count, args.device),
                "ours": our_run(our_generator, ours, frames, count),
            }
            elapsed = time_alternately(runs, args.device)
            rate = {name: args.frames * count / elapsed[name] for name in runs}
            ratio = rate["ours"] / rate["official"]
            print(f"{count:>8} {rate['official']:>10.2f} {rate['ours']:>10.2f} {ratio:>6.2f}x")


def peak_memory_child(args: argparse.Namespace) -> None:
    """Run our pipeline on one video length; print its peak memory in MiB as JSON."""
    frames = args.workdir / f"video_{args.frames}"
    our_generator, ours = our_pipeline_parts(args, args.workdir / f"{args.config}.pt")
    print_peak_memory(our_run(our_generator, ours, frames, args.memory_objects), args.device)


def memory(args: argparse.Namespace, workdir: Path) -> None:
    official_and_checkpoint(args.config, args.image_size, args.device, workdir)
    peaks = []
    for length in args.memory_frames:
        if not (workdir / f"video_{length}" / f"{frame_name(length - 1)}.jpg").is_file():
            write_video(workdir / f"video_{length}", length)
        command = [
            sys.executable,
            __file__,
            "--child",
            "--workdir",
            str(workdir),
            "--frames",
            str(length),
            "--memory-objects",
            str(args.memory_objects),
            "--points",
            str(args.points),
            "--config",
            args.config,
            "--image-size",
            str(args.image_size),
            "--device",
            args.device,
        ]
        peaks.append(child_peak_mib(command))
    print(
        f"peak memory of our pipeline (MiB, {'allocated' if args.device == 'cuda' else 'RSS'}), "
        f"{args.memory_objects} objects"
    )
    print(" ".join(f"{n:>8}fr" for n in args.memory_frames) + f" {'ratio':>7}")
    print(" ".join(f"{peak:>10.0f}" for peak in peaks) + f" {peaks[-1] / peaks[0]:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=512, help="the video predictors' input size")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--points", type=int, default=8, help="generator points per side (enough masks for N)")
    parser.add_argument("--objects", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--frames", type=int, default=8, help="video length for the speed comparison")
    parser.add_argument("--memory-frames", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--memory-objects", type=int, default=16)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torchvision_standin.install()
    if args.child:
        peak_memory_child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            speed(args, Path(tmp))
        if not args.skip_memory:
            memory(args, Path(tmp))


if __name__ == "__main__":
    main()
