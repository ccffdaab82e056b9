"""``sam2-plugins evaluate`` writes results.csv and --json aside and renames them: a failed write names the file and
the fix, exits 1 without a traceback, and leaves the previous file as it was."""

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sam2_plugins.cli import main
from sam2_plugins.datasets.sav_eval import write_sav_object_masks

SAM2_PLUGINS = Path(sys.executable).parent / "sam2-plugins"
PREVIOUS = "previous run's results\n"


@pytest.fixture
def roots(tmp_path):
    """Ground truth, identical predictions (two videos) and a previous run's results.csv and scores.json."""
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    mask = np.zeros((40, 60), bool)
    mask[5:20, 10:30] = True
    for video in ("a", "b"):
        for root in (gt, pred):
            write_sav_object_masks(root, video, "000", {"00000": mask, "00004": mask, "00008": mask})
    (pred / "results.csv").write_text(PREVIOUS)
    (tmp_path / "scores.json").write_text(PREVIOUS)
    return gt, pred


def evaluate(gt: Path, pred: Path, *options: str) -> subprocess.CompletedProcess:
    command = [str(SAM2_PLUGINS), "evaluate", "--gt_root", str(gt), "--pred_root", str(pred), "-q", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def leftovers(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if "partial" in path.name)


@pytest.mark.parametrize("failing", ["results.csv", "scores.json"])
def test_a_full_disk_keeps_the_previous_file_and_names_it(roots, monkeypatch, capsys, failing):
    gt, pred = roots
    scores = gt.parent / "scores.json"
    target = pred / "results.csv" if failing == "results.csv" else scores
    write_text = Path.write_text

    def disk_fills_up(path: Path, text: str, *args, **kwargs):
        if path.parent == target.parent and path.name.startswith(f".{target.stem}.partial"):
            write_text(path, text[: len(text) // 2], *args, **kwargs)  # half written, then no space left
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write_text(path, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", disk_fills_up)
    assert main(["evaluate", "--gt_root", str(gt), "--pred_root", str(pred), "-q", "--json", str(scores)]) == 1
    assert capsys.readouterr() == (
        "",
        f"sam2-plugins evaluate: error: cannot write {target}: No space left on device; the previous {target.name} "
        "is left as it was; the disk is full: free space on it, or write elsewhere\n",
    )
    assert target.read_text() == PREVIOUS
    assert leftovers(pred) == [] and leftovers(gt.parent) == []
    if failing == "scores.json":  # results.csv was written before the JSON failed
        assert (pred / "results.csv").read_text().splitlines()[1] == "Global score,   , 100.0, 100.0, 100.0"


def test_json_onto_a_folder_is_refused_before_the_evaluation(roots):
    gt, pred = roots
    folder = gt.parent / "out"
    folder.mkdir()
    result = evaluate(gt, pred, "--json", str(folder))
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"sam2-plugins evaluate: error: cannot write {folder}: Is a directory; it is a folder: pass a file path, "
        "e.g. a name inside that folder\n"
    )
    assert (pred / "results.csv").read_text() == PREVIOUS  # nothing was evaluated, nothing replaced


def test_json_under_a_file_is_refused_naming_it(roots):
    gt, pred = roots
    below_a_file = gt.parent / "scores.json" / "scores.json"
    result = evaluate(gt, pred, "--json", str(below_a_file))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write {below_a_file}: Not a directory; a part of the path is a file" in result.stderr
    assert (gt.parent / "scores.json").read_text() == PREVIOUS


def test_json_in_a_read_only_place_is_an_error_naming_it(roots):
    gt, pred = roots
    if os.geteuid() == 0:  # root writes through chmod; sysfs refuses new files even to root
        target = Path("/sys/scores.json")
    else:
        read_only = gt.parent / "read_only"
        read_only.mkdir(mode=0o555)
        target = read_only / "scores.json"
    result = evaluate(gt, pred, "--json", str(target))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot write {target}: Permission denied; make the folder writable, or write elsewhere" in result.stderr
    assert not target.exists()


def test_results_replace_the_previous_ones_and_missing_folders_are_made(roots):
    gt, pred = roots
    nested = gt.parent / "new" / "deeper" / "scores.json"
    result = evaluate(gt, pred, "--json", str(nested))
    assert (result.returncode, result.stderr) == (0, "")
    assert (pred / "results.csv").read_text().splitlines()[1] == "Global score,   , 100.0, 100.0, 100.0"
    assert json.loads(nested.read_text())["global"] == {"J&F": 100.0, "J": 100.0, "F": 100.0}
    assert leftovers(pred) == [] and leftovers(nested.parent) == []
