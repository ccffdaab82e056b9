"""Our video predictor against Meta's official `SAM2VideoPredictor`, side by side on the same weights and frames.

Speed: both propagate the same mask prompts; their frames are stepped alternately so that a busy machine slows
both alike. Timed end to end (session start with frame loading, prompts, tracking); prints frames x objects per
second and our speed-up for each object count.
Work (`--count-flops`): the floating-point operations of matrix products, convolutions and attention per frame
for each predictor, counted in a separate untimed run, and the GFLOP/s each one reached while timed.
Memory: each predictor runs alone in a child process per video length; prints peak memory (CPU: peak RSS, CUDA:
peak allocated) and the ratio between the longest and the shortest video.

    .venv/bin/python benchmarks/bench_model.py                       # CPU, tiny, 512 px, 1/4/16 objects, 50 vs 500
    .venv/bin/python benchmarks/bench_model.py --device cuda --image-size 1024
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

from sam2_plugins.frames import frame_name, open_frames
from sam2_plugins.model import Sam2VideoPredictor
from sam2_plugins.model.predictor import default_precision

HEIGHT, WIDTH = 360, 640


@register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
def _cpu_flash_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """q k^T and the weighting of v (torch counts attention on CUDA only)."""
    return 2 * math.prod(query_shape[:-1]) * key_shape[-2] * (query_shape[-1] + value_shape[-1])


def write_video(folder: Path, num_frames: int) -> None:
    """JPEG frames (the official predictor's input format) of a few shapes drifting over a gradient."""
    folder.mkdir(parents=True, exist_ok=True)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    background = np.stack([cols * 255 // WIDTH, rows * 255 // HEIGHT, np.full_like(cols, 96)], -1).astype(np.uint8)
    for t in range(num_frames):
        image = background.copy()
        for k in range(8):
            top, left = 20 + 40 * (k % 4) + (t % 40), 40 + 140 * (k // 4) + (2 * t) % 200
            image[top : top + 50, left : left + 60] = (30 * k, 255 - 30 * k, 120)
        Image.fromarray(image).save(folder / f"{frame_name(t)}.jpg", quality=90)


def object_masks(num_objects: int) -> list[np.ndarray]:
    masks = []
    for k in range(num_objects):
        mask = np.zeros((HEIGHT, WIDTH), bool)
        top, left = 20 + 40 * (k % 8), 40 + 35 * (k // 2)
        mask[top : top + 50, left : left + 60] = True
        masks.append(mask)
    return masks


def build_official(config: str, image_size: int, device: str):
    warnings.filterwarnings("ignore")
    from sam2.build_sam import build_sam2_video_predictor

    folder = "sam2.1" if config.startswith("sam2.1") else "sam2"
    torch.manual_seed(0)
    return build_sam2_video_predictor(
        f"configs/{folder}/{config}.yaml",
        None,
        device=device,
        hydra_overrides_extra=[f"++model.image_size={image_size}"],
    )


def official_and_checkpoint(config: str, image_size: int, device: str, workdir: Path):
    """The official predictor with seeded random weights, and those weights saved in the official checkpoint format."""
    official = build_official(config, image_size, device)
    checkpoint = workdir / f"{config}.pt"
    torch.save({"model": official.state_dict()}, checkpoint)
    return official, checkpoint


def predictors(config: str, image_size: int, device: str, workdir: Path, precision: str | None = None):
    """The official predictor with seeded random weights, and ours loaded from them in the official format."""
    official, checkpoint = official_and_checkpoint(config, image_size, device, workdir)
    ours = Sam2VideoPredictor.from_checkpoint(
        checkpoint, config=config, image_size=image_size, device=device, precision=precision
    )
    return official, ours


def autocast(device: str):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()


def official_run(official, frames: Path, masks: list[np.ndarray], device: str):
    """A generator: one propagated frame per step, official predictor."""
    with torch.inference_mode(), autocast(device):
        state = official.init_state(str(frames))
        for obj_id, mask in enumerate(masks):
            official.add_new_mask(state, 0, obj_id, mask)
        for _ in official.propagate_in_video(state):
            yield


def our_run(ours: Sam2VideoPredictor, frames: Path, masks: list[np.ndarray], prune: bool):
    session = ours.init_video(open_frames(frames), prune_memories=prune)
    for obj_id, mask in enumerate(masks):
        session.add_mask(0, obj_id, mask)
    for _ in session.propagate():
        yield


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_alternately(runs: dict, device: str) -> dict[str, float]:
    """Seconds each run (a generator) took, stepping them in turn one step each so a busy machine slows all alike."""
    elapsed = dict.fromkeys(runs, 0.0)
    active = dict(runs)
    while active:
        for name, run in list(active.items()):
            start = time.perf_counter()
            if next(run, "done") == "done":
                del active[name]
            sync(device)
            elapsed[name] += time.perf_counter() - start
    return elapsed


def print_peak_memory(run, device: str) -> None:
    """Exhaust `run`; print this process's peak memory in MiB as JSON (CUDA: peak allocated, else peak RSS)."""
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in run:
        pass
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(json.dumps({"peak_mib": peak}))


def child_peak_mib(command: list[str]) -> float:
    """Run a benchmark child process; the peak memory it printed last (see `print_peak_memory`)."""
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])["peak_mib"]


def speed(args: argparse.Namespace, workdir: Path) -> None:
    frames = workdir / f"video_{args.frames}"
    write_video(frames, args.frames)
    official, ours = predictors(args.config, args.image_size, args.device, workdir, args.precision)
    print(
        f"speed: {args.config} at {args.image_size} px on {args.device}, {args.frames} frames, frames x objects / s"
        f" (ours in {args.precision or default_precision(torch.device(args.device))})"
    )
    header = f"{'objects':>8} {'official':>10} {'ours':>10} {'ratio':>7}"
    print(header + ("   (GFLOP/frame, GFLOP/s: official ours)" if args.count_flops else ""))
    for num_objects in args.objects:
        masks = object_masks(num_objects)
        runs = {
            "official": official_run(official, frames, masks, args.device),
            "ours": our_run(ours, frames, masks, prune=False),
        }
        # end to end: frame loading (all upfront for the official one), prompts, tracking
        elapsed = time_alternately(runs, args.device)
        rate = {name: args.frames * num_objects / elapsed[name] for name in runs}
        ratio = rate["ours"] / rate["official"]
        line = f"{num_objects:>8} {rate['official']:>10.2f} {rate['ours']:>10.2f} {ratio:>6.2f}x"
        if args.count_flops:
            work = {
                "official": gflops(official_run(official, frames, masks, args.device)),
                "ours": gflops(our_run(ours, frames, masks, prune=False)),
            }
            line += "   GFLOP/frame " + " ".join(f"{work[name] / args.frames:.1f}" for name in runs)
            line += "   GFLOP/s " + " ".join(f"{work[name] / elapsed[name]:.0f}" for name in runs)
        print(line)


def gflops(run) -> float:
    """Floating-point work of a whole run in GFLOP, counted by torch's FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        for _ in run:
            pass
    return counter.get_total_flops() / 1e9


def peak_memory_child(args: argparse.Namespace, workdir: Path) -> None:
    """Run one predictor on one video length; print its peak memory in MiB as JSON."""
    frames = workdir / f"video_{args.frames}"
    official, ours = predictors(args.config, args.image_size, args.device, workdir, args.precision)
    masks = object_masks(args.objects[0])
    if args.child == "official":
        del ours
        run = official_run(official, frames, masks, args.device)
    else:
        del official
        run = our_run(ours, frames, masks, prune=args.child == "ours-pruned")
    print_peak_memory(run, args.device)


def memory(args: argparse.Namespace, workdir: Path) -> None:
    lengths = args.memory_frames
    for length in lengths:
        write_video(workdir / f"video_{length}", length)
    print(f"peak memory (MiB, {'allocated' if args.device == 'cuda' else 'RSS'}), {args.objects[0]} object(s)")
    print(f"{'predictor':>12} " + " ".join(f"{n:>8}fr" for n in lengths) + f" {'ratio':>7}")
    for child in args.memory_predictors:
        peaks = []
        for length in lengths:
            command = [
                sys.executable,
                __file__,
                "--child",
                child,
                "--workdir",
                str(workdir),
                "--frames",
                str(length),
                "--objects",
                str(args.objects[0]),
                "--config",
                args.config,
                "--image-size",
                str(args.image_size),
                "--device",
                args.device,
                *(["--precision", args.precision] if args.precision else []),
            ]
            peaks.append(child_peak_mib(command))
        cells = " ".join(f"{peak:>10.0f}" for peak in peaks)
        print(f"{child:>12} {cells} {peaks[-1] / peaks[0]:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--objects", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--frames", type=int, default=50, help="video length for the speed comparison")
    parser.add_argument("--memory-frames", type=int, nargs="+", default=[50, 500])
    parser.add_argument(
        "--memory-predictors",
        nargs="+",
        default=["ours-pruned", "ours", "official"],
        choices=["ours-pruned", "ours", "official"],
    )
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        help="our predictor's precision (default: bfloat16 on CUDA, float32 elsewhere, as Meta's)",
    )
    parser.add_argument("--count-flops", action="store_true", help="also count each predictor's work (untimed)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", choices=["ours-pruned", "ours", "official"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        peak_memory_child(args, args.workdir)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_speed:
            speed(args, Path(tmp))
        if not args.skip_memory:
            memory(args, Path(tmp))


if __name__ == "__main__":
    main()
