"""`sam2-plugins finetune` under `torchrun` (DistributedDataParallel over gloo on CPU, two processes): one checkpoint
written by process 0, one model trained together on different clips (a step's gradient, and the loss reported, is the
mean of the processes' with the loss normalizer averaged), and a killed run resumed to the same weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ddp_worker import train
from random_checkpoint import write_random_checkpoint
from test_training import CONFIG, IMAGE_SIZE, _arguments, assert_loads_strictly_with_the_encoder_frozen

from sam2_plugins.cli import main
from sam2_plugins.sample_data import write_sav_train, write_sav_val
from sam2_plugins.training.checkpoints import resume_path

reference_build = pytest.importorskip("sam2.build_sam")

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
WORKER = Path(__file__).with_name("ddp_worker.py")


def _keep_masklets(manual_json: Path, count: int) -> None:
    """Keep the first `count` masklets of an SA-V train manual JSON."""
    data = json.loads(manual_json.read_text())
    data["masklet"] = [frame[:count] for frame in data["masklet"]]
    for key, value in data.items():
        if key.startswith("masklet_") and isinstance(value, list):
            data[key] = value[:count]
    data["masklet_num"] = count
    manual_json.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Tiny SA-V train (one video with 4 objects, one with 2) and val sets and a seeded random checkpoint."""
    root = tmp_path_factory.mktemp("finetune_ddp")
    write_sav_train(root / "train", num_videos=2, num_frames=9, size=(48, 64))
    _keep_masklets(root / "train" / "sav_000" / "sav_000002_manual.json", 2)
    write_sav_val(root / "val", num_videos=1, num_frames=9, size=(48, 64))
    return root / "train", root / "val", write_random_checkpoint(root, CONFIG, IMAGE_SIZE)


def _environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _torchrun(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, *arguments], env=_environment(), capture_output=True, text=True, timeout=300, check=False
    )


def test_torchrun_finetune_writes_one_checkpoint_from_process_0(dataset, tmp_path: Path) -> None:
    out = tmp_path / "tuned.pt"
    run = _torchrun("-m", "sam2_plugins.cli", *_arguments(dataset, out, "--steps", "3", "--val_root", str(dataset[1])))
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert sum(line.startswith("training on 2 sav-train videos") for line in lines) == 1
    assert [line.split("  ")[0] for line in lines if line.startswith("step ")] == ["step 1/3", "step 2/3", "step 3/3"]
    assert sum(line.startswith("wrote ") for line in lines) == 1
    assert sum(line.startswith("held-out J&F (0-100; 1 videos, 4 objects, each prompted") for line in lines) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tuned.json", "tuned.pt"]  # no training state left

    assert_loads_strictly_with_the_encoder_frozen(out, dataset[2])

    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["steps"] == 3 and [record["step"] for record in sidecar["history"]] == [1, 2, 3]
    assert f"before {sidecar['metrics']['jf_before']:.2f}  after {sidecar['metrics']['jf_after']:.2f}" in run.stdout


def test_processes_train_one_model_on_different_clips(dataset, tmp_path: Path) -> None:
    train_root, _, checkpoint = dataset
    run = _torchrun(
        str(WORKER),
        "--train_root", str(train_root),
        "--checkpoint", str(checkpoint),
        "--image_size", str(IMAGE_SIZE),
        "--steps", "2",
        "--out_dir", str(tmp_path),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt", map_location="cpu", weights_only=True) for r in range(2)]
    assert [rank["world_size"] for rank in ranks] == [2, 2]

    # data parallel: each process drew its own clips ...
    assert ranks[0]["clips"][0] != ranks[1]["clips"][0] and ranks[0]["clips"] != ranks[1]["clips"]
    # ... and they trained one model: the same weights, bit for bit, moved from the start
    source = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
    for key, value in ranks[0]["model"].items():
        assert torch.equal(value, ranks[1]["model"][key]), key
    assert any(not torch.equal(source[key], value) for key, value in ranks[0]["model"].items())

    # the first step's gradient is the mean of the single-process gradients of the two processes' clips, with the
    # loss normalizer (objects per process) averaged: each clip's gradient weighted by its objects
    singles = [train(train_root, checkpoint, IMAGE_SIZE, 1, seed, ("image_encoder",)) for seed in (0, 1)]
    for rank, single in zip(ranks, singles, strict=True):
        assert single["clips"][0] == rank["clips"][0]  # process r draws what a single process seeded r draws
    counts = [single["objects"] for single in singles]
    assert counts[0] != counts[1], counts  # the processes' normalizers differ: averaging them matters
    for term, value in ranks[0]["losses"].items():  # the step's loss reported: the same average over processes
        expected = sum(single["losses"][term] * single["objects"] for single in singles) / sum(counts)
        assert value == ranks[1]["losses"][term] and value == pytest.approx(expected, rel=1e-5, abs=1e-7), term
    gradients = ranks[0]["gradients"]
    assert set(gradients) == set(singles[0]["gradients"]) | set(singles[1]["gradients"])
    assert not any(name.startswith("image_encoder.") for name in gradients)
    for name, gradient in gradients.items():
        assert torch.equal(gradient, ranks[1]["gradients"][name]), name
        weighted = [s["gradients"].get(name, torch.zeros_like(gradient)) * s["objects"] for s in singles]
        expected = (weighted[0] + weighted[1]) / sum(counts)
        # gradients are of order 1-10; attention key biases get zero up to rounding (1e-8): hence the absolute floor
        torch.testing.assert_close(
            gradient, expected, rtol=1e-5, atol=1e-6, msg=lambda text, name=name: f"{name}: {text}"
        )


def _kill_torchrun(process: subprocess.Popen) -> None:
    """SIGKILL the workers of a torchrun agent (each in its own session), then the agent."""
    workers = [
        int(pid)
        for task in Path(f"/proc/{process.pid}/task").iterdir()
        for pid in (task / "children").read_text().split()
    ]
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    process.kill()
    process.wait()


def test_a_killed_torchrun_run_resumes_to_the_same_weights(dataset, tmp_path: Path, capsys) -> None:
    steps = ["--steps", "4", "--checkpoint_every", "1", "-q"]
    whole = tmp_path / "whole.pt"
    run = _torchrun("-m", "sam2_plugins.cli", *_arguments(dataset, whole, *steps))
    assert run.returncode == 0, run.stderr

    killed = tmp_path / "killed.pt"
    command = [*TORCHRUN, "-m", "sam2_plugins.cli", *_arguments(dataset, killed, *steps)]
    process = subprocess.Popen(command, env=_environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not resume_path(killed).exists():
            assert process.poll() is None, "the run ended before writing its training state"
            time.sleep(0.05)
    finally:
        _kill_torchrun(process)
    assert not killed.exists() and resume_path(killed).exists()

    assert main(_arguments(dataset, killed, *steps, "--resume")) == 1
    assert "was started with 2 process(es), this run has 1; resume with as many (torchrun's --nnodes x" in (
        capsys.readouterr().err
    )
    run = _torchrun("-m", "sam2_plugins.cli", *_arguments(dataset, killed, *steps, "--resume"))
    assert run.returncode == 0, run.stderr
    expected = torch.load(whole, map_location="cpu", weights_only=True)["model"]
    resumed = torch.load(killed, map_location="cpu", weights_only=True)["model"]
    for key, value in expected.items():
        assert torch.equal(resumed[key], value), key
    assert (
        json.loads(killed.with_suffix(".json").read_text())["history"]
        == json.loads(whole.with_suffix(".json").read_text())["history"]
    )
