"""Tracking evaluator speed: ``sam2-plugins evaluate-tracking`` against py-ctcmetrics' ``ctc_evaluate``.

The script writes a synthetic CTC sequence of dividing cells (:mod:`sam2_plugins.sample_cells`; by default 100
frames of 512 x 512 with 100 cells dividing up to 200) with its TRA and SEG ground truth, and a result made from it
with every kind of error the measures count (missed, false, split, merged and shifted cells, wrong parents, lost
divisions, renamed tracks; ``tests/ctc_results.py``). Both tools run as a user runs them, a fresh process each,
single-process (``ctc_evaluate -n 1``), taking turns, ``--repeat`` times. The script prints the best CPU and wall
seconds of each side by side with the ratios, and fails unless SEG, DET and TRA agree to 1e-6.

    .venv/bin/python benchmarks/bench_tracking.py [--frames 100] [--cells 200] [--size 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ctc_results import ERRORS, write_result

from sam2_plugins.sample_cells import dividing_cells, write_dividing_cells

BIN = Path(sys.executable).parent


def timed(command: list[str]) -> tuple[float, float]:
    """Run ``command``; its wall and CPU seconds (its own and its children's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--cells", type=int, default=200, help="cells alive once they have divided (half at start)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        start = time.perf_counter()
        cells = dividing_cells(args.frames, args.size, args.cells // 2, max_cells=args.cells, seed=7)
        gt = write_dividing_cells(root / "gt", cells)
        res = write_result(root / "res" / "01_RES", cells, ERRORS * 10, seed=7)
        print(
            f"{args.frames} frames of {args.size}x{args.size}, {len(cells.lineage.on_frame(args.frames - 1))} cells "
            f"on the last frame, {len(cells.lineage)} tracks; written in {time.perf_counter() - start:.1f}s"
        )
        ours_json = root / "ours.json"
        theirs_csv = root / "theirs.csv"
        ours_command = [
            str(BIN / "sam2-plugins"), "evaluate-tracking", "--gt", str(gt), "--res", str(res), "-q",
            "--json", str(ours_json),
        ]  # fmt: skip
        theirs_command = [
            str(BIN / "ctc_evaluate"), "--gt", str(gt), "--res", str(res), "--seg", "--det", "--tra",
            "-n", "1", "--csv-file", str(theirs_csv),
        ]  # fmt: skip
        times: dict[str, list[tuple[float, float]]] = {"ours": [], "py-ctcmetrics": []}
        for _ in range(args.repeat):
            times["ours"].append(timed(ours_command))
            times["py-ctcmetrics"].append(timed(theirs_command))

        ours = json.loads(ours_json.read_text())
        header, values = theirs_csv.read_text().splitlines()[:2]
        theirs = dict(zip(header.split(";"), values.split(";")))
        mismatches = [name for name in ("SEG", "DET", "TRA") if abs(ours[name] - float(theirs[name])) > 1e-6]
        print(f"{'':16}{'SEG':>10}{'DET':>10}{'TRA':>10}")
        print(f"{'ours':16}" + "".join(f"{ours[name]:10.6f}" for name in ("SEG", "DET", "TRA")))
        print(f"{'py-ctcmetrics':16}" + "".join(f"{float(theirs[name]):10.6f}" for name in ("SEG", "DET", "TRA")))
        best = {name: (min(wall for wall, _ in runs), min(cpu for _, cpu in runs)) for name, runs in times.items()}
        print(f"\n{'best of ' + str(args.repeat):16}{'wall s':>10}{'CPU s':>10}")
        for name, (wall, cpu) in best.items():
            print(f"{name:16}{wall:10.2f}{cpu:10.2f}")
        wall_ratio = best["py-ctcmetrics"][0] / best["ours"][0]
        cpu_ratio = best["py-ctcmetrics"][1] / best["ours"][1]
        print(f"{'ratio':16}{wall_ratio:9.1f}x{cpu_ratio:9.1f}x  (py-ctcmetrics / ours)")
        if mismatches:
            print(f"FAIL: {', '.join(mismatches)} differ from py-ctcmetrics by more than 1e-6", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
