"""J&F evaluator speed: ``sam2-plugins evaluate`` against Meta's official ``sav_evaluator.py``, on SA-V-sized folders.

The script writes a synthetic SA-V val-style set (848x480 by default). Each video has objects whose radii are
log-uniform from 8 pixels to ``--largest`` (40%) of the short side, with wobbling star-shaped outlines. They
move, some enter late, and each hides for a stretch (empty frames). An object after the first of a video starts
over the first, so their masks overlap. Predictions are perturbed copies: shifted, rescaled, a missed frame now
and then, a stray blob, still there for a while after the object hides. Ground truth is written as 0/255 grey
PNGs, predictions as 0/1 palette PNGs.

Both tools run as a user runs them (a fresh process each, ``-n N``), taking turns, ``--repeat`` times. The script
prints the best CPU and wall seconds of each side by side with the ratios, and fails unless both ``results.csv``
are byte-identical. CPU seconds count the child processes and their workers. On a machine shared with other jobs,
wall time measures the queue as much as the work.

    .venv/bin/python benchmarks/bench_jf.py [--videos 6] [--objects 2] [--frames 40] [--size 848 480]
                                            [--largest 0.4] [--processes 1] [--repeat 3] [--official PATH]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from sam2_plugins.datasets.sav_eval import write_sav_object_masks
from sam2_plugins.frame_names import frame_name
from sam2_plugins.masks import write_palette_png

OFFICIAL = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "sav_evaluator"


def star_blob(shape: tuple[int, int], center: np.ndarray, radius: float, harmonics: list[tuple[float, float]]):
    """Bool mask of ``r(theta) <= radius * (1 + sum a_k cos(k theta + phase_k))``, k = 2, 3, ..."""
    mask = np.zeros(shape, bool)
    reach = radius * (1 + sum(a for a, _ in harmonics)) + 2
    top, left = int(max(center[0] - reach, 0)), int(max(center[1] - reach, 0))
    bottom, right = int(min(center[0] + reach + 1, shape[0])), int(min(center[1] + reach + 1, shape[1]))
    if top >= bottom or left >= right:
        return mask
    rows, columns = np.ogrid[top:bottom, left:right]
    dy, dx = rows - center[0], columns - center[1]
    theta = np.arctan2(dy, dx)
    limit = 1 + sum(a * np.cos(k * theta + phase) for k, (a, phase) in enumerate(harmonics, start=2))
    mask[top:bottom, left:right] = np.hypot(dy, dx) <= radius * limit
    return mask


def write_sav_set(
    root: Path, videos: int, objects: int, frames: int, shape: tuple[int, int], largest: float, seed: int = 0
) -> None:
    """Ground truth in ``root/gt``, predictions in ``root/pred`` (SA-V layout, frames every 4th video frame)."""
    rng = np.random.default_rng(seed)
    names = [frame_name(4 * t) for t in range(frames)]
    empty = np.zeros(shape, bool)
    for v in range(videos):
        first_start = rng.uniform(0.2, 0.8, 2) * shape
        for obj in range(objects):
            radius = float(np.exp(rng.uniform(np.log(8), np.log(largest * min(shape)))))
            start = first_start + rng.normal(0, 0.5 * radius, 2) if obj else first_start
            velocity = rng.normal(0, 2.5, 2)
            harmonics = [(rng.uniform(0, 0.25), rng.uniform(0, 2 * np.pi)) for _ in range(4)]
            enters = int(rng.integers(0, frames // 4 + 1))
            hidden_from = int(rng.integers(0, frames))
            hidden = range(hidden_from, hidden_from + int(rng.integers(0, frames // 5 + 1)))
            gt, pred = {}, {}
            for t, name in enumerate(names):
                center = start + velocity * t
                outline = [(a, phase + 0.05 * t) for a, phase in harmonics]
                gt[name] = star_blob(shape, center, radius, outline) if t >= enters and t not in hidden else empty
                predicted = (t >= enters - 1 and rng.random() > 0.05) or (t in hidden and rng.random() < 0.3)
                guess = empty.copy()
                if predicted:
                    shifted = center + rng.normal(0, 2 + 0.03 * radius, 2)
                    wobbled = [(a * rng.uniform(0.7, 1.3), phase + rng.normal(0, 0.2)) for a, phase in outline]
                    guess = star_blob(shape, shifted, radius * rng.uniform(0.9, 1.1), wobbled)
                if rng.random() < 0.2:
                    guess |= star_blob(shape, rng.uniform(0, 1, 2) * shape, rng.uniform(3, 15), [])
                pred[name] = guess
            video, name = f"sav_{v:06d}", f"{obj:03d}"
            write_sav_object_masks(root / "gt", video, name, gt)
            for frame, mask in pred.items():
                write_palette_png(root / "pred" / video / name / f"{frame}.png", mask.astype(np.uint8))


def run_timed(command: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU seconds of the process and its waited-for descendants, wall seconds); fails loudly on an error."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    finished = subprocess.run(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if finished.returncode:
        sys.exit(f"{' '.join(command)} failed ({finished.returncode}):\n{finished.stderr[-2000:]}")
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=6)
    parser.add_argument("--objects", type=int, default=2, help="objects per video")
    parser.add_argument("--frames", type=int, default=40, help="annotated frames per object")
    parser.add_argument("--size", type=int, nargs=2, default=(848, 480), metavar=("H", "W"))
    parser.add_argument("--largest", type=float, default=0.4, help="largest object radius / short side")
    parser.add_argument("--processes", type=int, nargs="+", default=[1], help="-n values given to both tools")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool; the best is reported")
    parser.add_argument("--official", type=Path, default=OFFICIAL, help="folder of Meta's sav_evaluator.py")
    args = parser.parse_args()
    if not (args.official / "sav_evaluator.py").is_file():
        sys.exit(f"{args.official}: no sav_evaluator.py; pass --official with the folder of Meta's SA-V evaluator")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_sav_set(root, args.videos, args.objects, args.frames, tuple(args.size), args.largest)
        official_pred, ours_pred = root / "pred_official", root / "pred_ours"
        shutil.copytree(root / "pred", official_pred)
        shutil.copytree(root / "pred", ours_pred)
        print(
            f"{args.videos} videos x {args.objects} objects x {args.frames} annotated frames, "
            f"{args.size[0]}x{args.size[1]}, radii up to {args.largest:g} of the short side; best of {args.repeat} runs"
        )
        print(f"{'':<28}{'CPU s':>8}{'wall s':>9}")
        for processes in args.processes:
            official = [sys.executable, "sav_evaluator.py", "--gt_root", str(root / "gt"), "--pred_root"]
            ours = [sys.executable, "-m", "sam2_plugins.cli", "evaluate", "--gt_root", str(root / "gt"), "--pred_root"]
            best = {"official": (float("inf"),) * 2, "ours": (float("inf"),) * 2}
            for _ in range(args.repeat):
                for name, command, cwd in [
                    ("official", [*official, str(official_pred), "-n", str(processes)], args.official),
                    ("ours", [*ours, str(ours_pred), "-n", str(processes)], Path.cwd()),
                ]:
                    cpu, wall = run_timed(command, cwd)
                    best[name] = (min(best[name][0], cpu), min(best[name][1], wall))
            for name, label in [("official", "sav_evaluator.py"), ("ours", "sam2-plugins evaluate")]:
                print(f"{f'{label} -n {processes}':<28}{best[name][0]:8.2f}{best[name][1]:9.2f}")
            print(
                f"{'official / ours':<28}{best['official'][0] / best['ours'][0]:7.1f}x"
                f"{best['official'][1] / best['ours'][1]:8.1f}x"
            )
            same = (official_pred / "results.csv").read_bytes() == (ours_pred / "results.csv").read_bytes()
            print(f"results.csv byte-identical: {'yes' if same else 'NO'}")
            if not same:
                sys.exit("results.csv differ: the evaluators disagree")


if __name__ == "__main__":
    main()
