"""`sam2-plugins predict` against Meta's `tools/vos_inference.py`, whole processes, on the same videos, weights and
switches, at 1, 3 and 8 objects per video, in the default mode and with objects appearing later (see MODES).

Both read the same DAVIS-layout folders (JPEG frames, palette PNG masks) and write palette PNGs. Meta's script is
run as its README says for machines without its CUDA build: a child process imports it as a module, builds Meta's
predictor on the device (memories upcast to float32 in its memory attention on CPU) with the switches its `main()`
sets, and calls its per-video function on every video, as `main()` does. Ours is the `sam2-plugins predict` console
script. Each run is one process timed from start to exit (wall and CPU seconds); the runs of a case alternate, Meta
first, `--repeats` times, and the least CPU time of each is kept. Prints the speed-ups (Meta's time / ours) in wall
and CPU seconds (on a shared machine the CPU seconds of one-thread processes are the fair measure), the least IoU
between the two tools' masks (of 100 pixels or more) and the fraction of pixels whose label differs.

    .venv/bin/python benchmarks/bench_vos.py                              # CPU, tiny, 128 px, 1 thread
    .venv/bin/python benchmarks/bench_vos.py --device cuda --image-size 1024 --size 480 854 --frames 50
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
from bench_jf import run_timed
from PIL import Image

from sam2_plugins.frame_names import frame_name
from sam2_plugins.masks import write_palette_png

VOS_INFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "sam2_tools" / "vos_inference.py"
OBJECT_COUNTS = (1, 3, 8)
# default: every object on frame 0, Meta's default switches; later: object k enters on frame k * T / (N + 1), with
# --track_object_appearing_later_in_video; later-first: every object on frame 0 with that switch (most objects of a
# YouTube-VOS or LVOS video are there from the start; the switch makes Meta propagate the video once per object)
MODES = ("default", "later", "later-first")
MIN_COMPARED_PIXELS = 100


def write_videos(root: Path, num_videos: int, num_frames: int, size: tuple[int, int], num_objects: int, later: bool):
    """``root/JPEGImages/<video>/`` and ``root/Annotations/<video>/``: textured frames of ellipses drifting over a
    smooth background. Default mode: every object on frame 0, one PNG there. ``later``: object k enters on frame
    k * T / (N + 1) and is annotated only there (YouTube-VOS style: a PNG where objects first appear)."""
    height, width = size
    rows, cols = np.mgrid[0:height, 0:width]
    for v in range(num_videos):
        rng = np.random.default_rng(v)
        video = f"video{v:03d}"
        background = (128 + 60 * np.sin(rows[..., None] / (7 + 3 * rng.random(3)) + cols[..., None] / 11)).astype(
            np.uint8
        )
        centers = rng.uniform(0.2, 0.8, (num_objects, 2)) * size
        velocity = rng.uniform(-1.5, 1.5, (num_objects, 2))
        radii = rng.uniform(0.06, 0.14, (num_objects, 2)) * min(size)
        colours = rng.integers(30, 255, (num_objects, 3))
        starts = [k * num_frames // (num_objects + 1) if later else 0 for k in range(num_objects)]
        (root / "JPEGImages" / video).mkdir(parents=True)
        for t in range(num_frames):
            image = background.copy()
            labels = np.zeros(size, np.uint8)
            for k in reversed(range(num_objects)):
                if t < starts[k]:
                    continue
                center = centers[k] + velocity[k] * t
                inside = ((rows - center[0]) / radii[k][0]) ** 2 + ((cols - center[1]) / radii[k][1]) ** 2 <= 1
                image[inside] = colours[k]
                labels[inside] = k + 1
            Image.fromarray(image).save(root / "JPEGImages" / video / f"{frame_name(t)}.jpg", quality=92)
            if t in starts:
                write_palette_png(root / "Annotations" / video / f"{frame_name(t)}.png", labels)


def meta_child(args: argparse.Namespace) -> None:
    """Meta's script over the dataset in this process, as its ``main()`` runs it (without CUDA on CPU)."""
    import torch
    from sam2.build_sam import build_sam2_video_predictor
    from sam2.modeling import memory_attention

    torch.set_num_threads(args.threads)
    if args.device == "cpu":  # Meta keeps memories in bfloat16, which its CPU attention cannot mix with float32
        original = memory_attention.MemoryAttention.forward

        def forward(self, curr, memory, curr_pos=None, memory_pos=None, num_obj_ptr_tokens=0):
            return original(self, curr, memory.float(), curr_pos, memory_pos.float(), num_obj_ptr_tokens)

        memory_attention.MemoryAttention.forward = forward
    spec = importlib.util.spec_from_file_location("vos_inference", VOS_INFERENCE)
    vos_inference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(vos_inference)
    folder = "sam2.1" if args.config.startswith("sam2.1") else "sam2"
    predictor = build_sam2_video_predictor(
        f"configs/{folder}/{args.config}.yaml",
        str(args.checkpoint),
        device=args.device,
        apply_postprocessing=False,
        hydra_overrides_extra=["++model.non_overlap_masks=true", f"++model.image_size={args.image_size}"],
    )
    run = vos_inference.vos_separate_inference_per_object if args.later else vos_inference.vos_inference
    for video in sorted(os.listdir(args.data / "JPEGImages")):
        run(predictor, str(args.data / "JPEGImages"), str(args.data / "Annotations"), str(args.out), video)


def agreement(theirs: Path, ours: Path) -> tuple[float, float]:
    """(the least IoU of an object's mask between the two tools' PNGs among masks of at least MIN_COMPARED_PIXELS,
    the fraction of pixels whose label differs): a pixel flipped on a mask of 17 pixels is IoU 0.94, noise."""
    least, differing, total = 1.0, 0, 0
    for path in sorted(theirs.rglob("*.png")):
        expected, actual = np.asarray(Image.open(path)), np.asarray(Image.open(ours / path.relative_to(theirs)))
        differing, total = differing + np.count_nonzero(expected != actual), total + expected.size
        for label in (set(np.unique(expected)) | set(np.unique(actual))) - {0}:
            union = np.count_nonzero((expected == label) | (actual == label))
            if union >= MIN_COMPARED_PIXELS:
                least = min(least, np.count_nonzero((expected == label) & (actual == label)) / union)
    return least, differing / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--config", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--size", type=int, nargs=2, default=(96, 128), metavar=("H", "W"), help="frame size")
    parser.add_argument("--frames", type=int, default=12, help="frames per video")
    parser.add_argument("--videos", type=int, default=2)
    parser.add_argument("--objects", type=int, nargs="+", default=OBJECT_COUNTS)
    parser.add_argument("--modes", nargs="+", choices=MODES, default=MODES)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each process (default 1)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--meta-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--later", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.meta_child:
        meta_child(args)
        return

    import torch

    from sam2_plugins.model import build_model

    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))  # for every child

    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        checkpoint = workdir / f"{args.config}.pt"
        torch.manual_seed(0)
        torch.save({"model": build_model(args.config, image_size=args.image_size).state_dict()}, checkpoint)
        print(
            f"{args.device}, {args.config} at {args.image_size} px, {args.videos} videos x {args.frames} frames of "
            f"{args.size[0]}x{args.size[1]}, {args.threads} thread(s) per process; whole processes, best of "
            f"{args.repeats}"
        )
        print(
            f"{'mode':11} {'objects':>7} {'Meta s':>8} {'ours s':>8} {'speed-up':>8} {'Meta CPU s':>10} "
            f"{'ours CPU s':>10} {'CPU speed-up':>12} {'least IoU':>9} {'pixels differing':>16}"
        )
        for mode in args.modes:
            for count in args.objects:
                data = workdir / f"{mode}-{count}"
                write_videos(data, args.videos, args.frames, tuple(args.size), count, later=mode == "later")
                best = {"meta": (float("inf"), 0.0), "ours": (float("inf"), 0.0)}  # (CPU s, wall s)
                for repeat in range(args.repeats):
                    outputs = {tool: workdir / f"out-{mode}-{count}-{tool}-{repeat}" for tool in best}
                    meta = [sys.executable, __file__, "--meta-child", "--device", args.device, "--config", args.config]
                    meta += ["--image-size", str(args.image_size), "--threads", str(args.threads)]
                    meta += ["--data", str(data), "--out", str(outputs["meta"]), "--checkpoint", str(checkpoint)]
                    meta += ["--later"] if mode != "default" else []
                    ours = [str(Path(sys.executable).with_name("sam2-plugins")), "predict", "--quiet"]
                    ours += [
                        "--base_video_dir",
                        str(data / "JPEGImages"),
                        "--input_mask_dir",
                        str(data / "Annotations"),
                    ]
                    ours += ["--output_mask_dir", str(outputs["ours"]), "--sam2_checkpoint", str(checkpoint)]
                    ours += ["--sam2_cfg", args.config, "--image_size", str(args.image_size), "--device", args.device]
                    ours += ["--track_object_appearing_later_in_video"] if mode != "default" else []
                    for tool, command in (("meta", meta), ("ours", ours)):
                        best[tool] = min(best[tool], run_timed(command, workdir))
                iou, differing = agreement(outputs["meta"], outputs["ours"])
                (meta_cpu, meta_wall), (our_cpu, our_wall) = best["meta"], best["ours"]
                print(
                    f"{mode:11} {count:>7} {meta_wall:>8.1f} {our_wall:>8.1f} {meta_wall / our_wall:>7.2f}x "
                    f"{meta_cpu:>10.1f} {our_cpu:>10.1f} {meta_cpu / our_cpu:>11.2f}x {iou:>9.4f} {differing:>16.2e}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
