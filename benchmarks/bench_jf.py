"""J&F evaluator speed: ours vs a straightforward implementation of the same algorithm, on synthetic SA-V folders.

The straightforward implementation below follows the official SA-V evaluator step by step (decode, seg2bmap on
the whole frame, skimage disk(r) dilation of both boundaries, per-frame J and F, means). Both run in one process;
the script checks they agree per object, prints both times and the ratio, then our scaling with -n processes
(wall and CPU seconds: on a machine shared with other jobs, wall time measures the queue as much as the work).

    .venv/bin/python benchmarks/bench_jf.py [--videos 40] [--frames 12] [--size 240 427] [--processes 1 2]
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image
from skimage.morphology import dilation, disk

from sam2_plugins.evaluate import evaluate_folders
from sam2_plugins.sample_data import ellipse
from sam2_plugins.sav import write_sav_object_masks


def write_synthetic_set(root: Path, videos: int, frames: int, shape: tuple[int, int], seed: int = 0) -> None:
    """GT: moving ellipses (some entering late, some hidden a while); predictions: drifted, noisy copies."""
    rng = np.random.default_rng(seed)
    names = [f"{4 * t:05d}" for t in range(frames)]
    for v in range(videos):
        for obj in range(int(rng.integers(1, 4))):
            start, velocity = rng.uniform(0.2, 0.8, 2) * shape, rng.uniform(-3, 3, 2)
            radii = rng.uniform(0.05, 0.25, 2) * shape
            enters, hidden = int(rng.integers(0, frames // 3)), set(rng.integers(0, frames, 2).tolist())
            gt, pred = {}, {}
            for t, name in enumerate(names):
                center = start + velocity * t
                present = t >= enters and t not in hidden
                gt[name] = ellipse(*shape, center, radii) if present else np.zeros(shape, bool)
                drift = center + rng.normal(0, 2, 2)
                pred_mask = (
                    ellipse(*shape, drift, radii * rng.uniform(0.85, 1.15, 2))
                    if t >= enters - 1
                    else np.zeros(shape, bool)
                )
                pred_mask[rng.random(shape) < 0.0005] = True
                pred[name] = pred_mask
            write_sav_object_masks(root / "gt", f"video_{v:03d}", f"{obj:03d}", gt)
            write_sav_object_masks(root / "pred", f"video_{v:03d}", f"{obj:03d}", pred)


# ------------------------------------------------------------------ the straightforward implementation


def naive_seg2bmap(mask: np.ndarray) -> np.ndarray:
    right, down, down_right = np.zeros_like(mask), np.zeros_like(mask), np.zeros_like(mask)
    right[:, :-1], down[:-1, :], down_right[:-1, :-1] = mask[:, 1:], mask[1:, :], mask[1:, 1:]
    boundary = (mask ^ right) | (mask ^ down) | (mask ^ down_right)
    boundary[-1, :] = mask[-1, :] ^ right[-1, :]
    boundary[:, -1] = mask[:, -1] ^ down[:, -1]
    boundary[-1, -1] = False
    return boundary


def naive_frame(gt: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    intersection, total = int((gt & pred).sum()), int(gt.sum() + pred.sum())
    j = 1.0 if total == 0 else intersection / (total - intersection)
    footprint = disk(math.ceil(0.008 * np.linalg.norm(gt.shape)))
    gt_b, pred_b = naive_seg2bmap(gt), naive_seg2bmap(pred)
    gt_dilated, pred_dilated = dilation(gt_b, footprint), dilation(pred_b, footprint)
    n_pred, n_gt = pred_b.sum(), gt_b.sum()
    if n_pred == 0 and n_gt == 0:
        precision = recall = 1.0
    elif n_pred == 0 or n_gt == 0:
        precision, recall = float(n_pred == 0), float(n_gt == 0)
    else:
        precision, recall = (pred_b & gt_dilated).sum() / n_pred, (gt_b & pred_dilated).sum() / n_gt
    f = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return j, f


def naive_evaluate(gt_root: Path, pred_root: Path) -> dict[str, tuple[float, float]]:
    scores = {}
    for video in sorted(os.listdir(gt_root)):
        for obj in sorted(os.listdir(gt_root / video)):
            frames = sorted(os.listdir(gt_root / video / obj))[1:-1]
            js, fs, started = [], [], False
            for name in frames:
                gt = np.array(Image.open(gt_root / video / obj / name)) > 0
                pred = np.array(Image.open(pred_root / video / obj / name)) > 0
                started = started or gt.any() or pred.any()
                if started:
                    j, f = naive_frame(gt, pred)
                    js.append(j)
                    fs.append(f)
            scores[f"{video}/{obj}"] = (np.mean(js) * 100, np.mean(fs) * 100)
    return scores


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the -n workers)."""
    return sum(
        resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )


def timed(function, *args, **kwargs):
    """(value, wall seconds, CPU seconds): on a shared machine CPU time shows the work, wall time the wait."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - wall, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=40)
    parser.add_argument("--frames", type=int, default=12, help="annotated frames per object")
    parser.add_argument("--size", type=int, nargs=2, default=(240, 427), metavar=("H", "W"))
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="-n values for the scaling table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_synthetic_set(root, args.videos, args.frames, tuple(args.size))
        objects = sum(1 for _ in (root / "gt").glob("*/*"))
        print(f"{args.videos} videos, {objects} objects, {args.frames} annotated frames, {args.size[0]}x{args.size[1]}")
        ours, ours_seconds, ours_cpu = timed(evaluate_folders, root / "gt", root / "pred", num_processes=1)
        naive, naive_seconds, naive_cpu = timed(naive_evaluate, root / "gt", root / "pred")
        scored = {s.key: (s.j, s.f) for s in ours.scored}
        assert scored.keys() <= naive.keys(), "objects differ"
        worst = max(abs(scored[key][m] - naive[key][m]) for key in scored for m in (0, 1))
        print(f"per-object max |ours - straightforward| = {worst:.3g} over {len(scored)} objects")
        print(f"{'straightforward, 1 process:':<28}{naive_seconds:7.2f} s wall {naive_cpu:7.2f} s CPU")
        print(
            f"{'ours, 1 process:':<28}{ours_seconds:7.2f} s wall {ours_cpu:7.2f} s CPU   "
            f"({naive_seconds / ours_seconds:.1f}x faster wall, {naive_cpu / ours_cpu:.1f}x CPU)"
        )
        for processes in args.processes:
            _, seconds, cpu = timed(evaluate_folders, root / "gt", root / "pred", num_processes=processes)
            print(
                f"{f'ours, -n {processes}:':<28}{seconds:7.2f} s wall {cpu:7.2f} s CPU   "
                f"(speed-up {ours_seconds / seconds:.2f}x vs one process)"
            )


if __name__ == "__main__":
    main()
