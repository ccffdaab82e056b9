"""``sam2-plugins evaluate-tracking``: the CTC's SEG, DET and TRA of tracking results (see :mod:`.tracking_metrics`)."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

from .ctc import RESULT_TRACK_FILE
from .tracking_metrics import METRICS, TrackingScores

DESCRIPTION = """\
Score cell tracking results in the Cell Tracking Challenge layout with its SEG, DET and TRA measures, giving the
numbers of py-ctcmetrics (the CTC's Python reference) to full precision.

--gt is a sequence's ground truth (01_GT, holding TRA/man_track.txt, TRA/man_trackTTT.tif and SEG/man_segTTT.tif)
and --res its result (01_RES, holding res_track.txt and maskTTT.tif, one per frame); or --gt is a dataset folder
holding 01_GT, 02_GT, ... and --res a folder holding 01_RES, 02_RES, ...: every sequence is scored.

A result that breaks the CTC rules (a label on a frame outside its track, a parent that ends after its child
begins) is an error naming the track, as py-ctcmetrics' validator reports it invalid. SEG is left out, with a
note, when the ground truth has no SEG folder and --metrics was not given.
"""

SEQUENCE_PATTERN = re.compile(r"([0-9]+)_GT")


def add_evaluate_tracking_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate-tracking",
        help="SEG, DET and TRA of CTC tracking results (py-ctcmetrics' numbers)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--gt", required=True, type=Path, help="ground truth: 01_GT, or a folder of NN_GT folders")
    parser.add_argument("--res", required=True, type=Path, help="result: 01_RES, or a folder of NN_RES folders")
    parser.add_argument(
        "--metrics",
        type=_metric_list,
        help=f"comma-separated, from {','.join(METRICS)} (default: all the ground truth allows)",
    )
    parser.add_argument(
        "--json",
        type=Path,
        metavar="OUT",
        help="write SEG, DET, TRA (the mean over sequences) and each sequence's scores and AOGM counts to OUT",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    parser.set_defaults(run=run_evaluate_tracking)


def _metric_list(text: str) -> list[str]:
    metrics = [name.strip().upper() for name in text.split(",") if name.strip()]
    unknown = [name for name in metrics if name not in METRICS]
    if unknown or not metrics:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(METRICS)}, e.g. SEG,TRA")
    return metrics


def sequence_pairs(gt: Path, res: Path) -> list[tuple[Path, Path]]:
    """(ground truth, result) folders: ``gt`` itself when it holds TRA (with ``res``, or ``res/NN_RES`` for ``NN_GT``),
    else each ``NN_GT`` in ``gt`` with ``res/NN_RES``."""
    if (gt / "TRA").is_dir():
        named = SEQUENCE_PATTERN.fullmatch(gt.name)
        inside = res / f"{named.group(1)}_RES" if named else res
        return [(gt, inside if not (res / RESULT_TRACK_FILE).is_file() and inside.is_dir() else res)]
    if not gt.is_dir():
        raise FileNotFoundError(f"{gt}: no such folder; pass a CTC ground-truth folder such as 01_GT")
    sequences = sorted(
        path for path in gt.iterdir() if SEQUENCE_PATTERN.fullmatch(path.name) and (path / "TRA").is_dir()
    )
    if not sequences:
        raise FileNotFoundError(
            f"{gt}: holds no TRA folder and no NN_GT sequence folders; pass a CTC ground truth such as 01_GT"
        )
    pairs = []
    for sequence in sequences:
        result = res / f"{SEQUENCE_PATTERN.fullmatch(sequence.name).group(1)}_RES"
        if not result.is_dir():
            raise FileNotFoundError(f"{result}: no result for the ground truth {sequence}; track that sequence first")
        pairs.append((sequence, result))
    return pairs


def run_evaluate_tracking(args: argparse.Namespace) -> int:
    from .atomic import check_writable, write_text
    from .ctc import CtcFormatError
    from .lineage import LineageError
    from .tracking_metrics import evaluate_sequence

    start = time.perf_counter()
    results: list[TrackingScores] = []
    try:
        if args.json:
            check_writable(args.json)
        for gt, res in sequence_pairs(args.gt, args.res):
            metrics = args.metrics
            if metrics is None:
                metrics = list(METRICS) if (gt / "SEG").is_dir() else ["DET", "TRA"]
                if "SEG" not in metrics and not args.quiet:
                    print(f"note: {gt} has no SEG folder: SEG is not computed", file=sys.stderr)
            progress = None if args.quiet else _progress_bar(res.name)
            scores = evaluate_sequence(gt, res, metrics=metrics, progress=progress)
            results.append(scores)
        if args.json:
            write_text(args.json, json.dumps(scores_json(results), indent=1) + "\n")
    except (OSError, CtcFormatError, LineageError, ValueError) as error:
        print(f"sam2-plugins evaluate-tracking: error: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(_table(results))
        print(f"Time taken: {time.perf_counter() - start:.2f}s")
    return 0


def scores_json(results: list[TrackingScores]) -> dict:
    """``--json``'s content: SEG, DET and TRA averaged over the sequences (a single sequence's own), and every
    sequence's scores and AOGM counts under ``sequences``."""
    summary: dict = {}
    for name in METRICS:
        values = [scores.to_json()[name] for scores in results]
        summary[name] = None if None in values else sum(values) / len(values)
    summary["sequences"] = {scores.sequence: scores.to_json() for scores in results}
    return summary


def _table(results: list[TrackingScores]) -> str:
    header = f"{'sequence':<12} {'SEG':>9} {'DET':>9} {'TRA':>9}   AOGM (NS FN FP ED EA EC)"
    lines = [header]
    for scores in results:
        values = [scores.seg, scores.det, scores.tra]
        cells = " ".join(f"{value:9.6f}" if value is not None else f"{'-':>9}" for value in values)
        counts = scores.counts
        operations = " ".join(str(counts[name]) for name in ("NS", "FN", "FP", "ED", "EA", "EC")) if counts else "-"
        aogm = f"{counts['AOGM']:g} ({operations})" if counts else "-"
        lines.append(f"{scores.sequence:<12} {cells}   {aogm}")
    return "\n".join(lines)


def _progress_bar(name: str):
    from tqdm import tqdm

    def progress(items, total: int):
        return tqdm(items, total=total, unit="frame", desc=name, file=sys.stderr)

    return progress
