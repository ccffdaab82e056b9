"""FiftyOne test environment: a real mongod in a temporary folder and our plugin in a temporary plugins dir.

Importing this module configures FiftyOne through its environment variables, so it must be imported before
``fiftyone`` (the FiftyOne test modules import it first). One mongod serves the whole session, and the
delegated-operation workers the tests start connect to the same one.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "@sam2-plugins/sam2"

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="sam2-plugins-fiftyone-"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _configure_environment() -> dict[str, str]:
    plugins_dir = _SESSION_DIR / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "sam2-plugins").symlink_to(REPO_ROOT, target_is_directory=True)
    port = _free_port()
    settings = {
        "FIFTYONE_DATABASE_URI": f"mongodb://127.0.0.1:{port}",
        "FIFTYONE_DATABASE_DIR": str(_SESSION_DIR / "db"),
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_PLUGINS_DIR": str(plugins_dir),
        "FIFTYONE_DEFAULT_DATASET_DIR": str(_SESSION_DIR / "datasets"),
        "FIFTYONE_MODEL_ZOO_DIR": str(_SESSION_DIR / "models"),
        "FIFTYONE_SHOW_PROGRESS_BARS": "false",
        "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true",
    }
    if "fiftyone" in sys.modules:
        raise RuntimeError("tests/fiftyone_helpers.py must be imported before fiftyone")
    os.environ.update(settings)
    return settings


FIFTYONE_ENV = _configure_environment()


def _start_mongod() -> subprocess.Popen:
    from fiftyone.core.service import DatabaseService  # imported after the environment is set

    db_dir = Path(FIFTYONE_ENV["FIFTYONE_DATABASE_DIR"])
    db_dir.mkdir()
    port = FIFTYONE_ENV["FIFTYONE_DATABASE_URI"].rsplit(":", 1)[1]
    process = subprocess.Popen(
        [
            DatabaseService.find_mongod(),
            "--dbpath",
            str(db_dir),
            "--port",
            port,
            "--bind_ip",
            "127.0.0.1",
            "--nounixsocket",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mongod exited with code {process.returncode}; its data dir is {db_dir}")
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("mongod did not accept connections within 60 s")


_mongod_process: subprocess.Popen | None = None


def _stop_mongod() -> None:
    _mongod_process.terminate()
    _mongod_process.wait(timeout=30)
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def mongod() -> str:
    """A real MongoDB, started once per test process (each test module imports this fixture)."""
    global _mongod_process
    if _mongod_process is None:
        _mongod_process = _start_mongod()
        atexit.register(_stop_mongod)
    return FIFTYONE_ENV["FIFTYONE_DATABASE_URI"]


@pytest.fixture
def fresh_dataset_name(mongod, request) -> str:
    """A dataset name unique to the test; the dataset is deleted afterwards."""
    import fiftyone as fo

    name = f"{request.node.name}-{time.monotonic_ns()}"[:100]
    yield name
    if fo.dataset_exists(name):
        fo.delete_dataset(name)


def worker_environment() -> dict[str, str]:
    """The environment of a separate process (a delegated-operation worker) that shares this session's database."""
    return {**os.environ, **FIFTYONE_ENV}


@pytest.fixture(scope="session")
def sav_sample(tmp_path_factory):
    """Synthetic SA-V roots written once: ``{"train": (root, videos), "val": (root, videos)}``."""
    from sam2_plugins.sample_data import write_sav_train, write_sav_val

    root = tmp_path_factory.mktemp("sav")
    return {
        "train": (root / "train", write_sav_train(root / "train")),
        "val": (root / "val", write_sav_val(root / "val")),
    }


def execute(operator_name: str, dataset=None, view=None, selected=None, **params):
    """Run one of our operators immediately through FiftyOne's operator executor; returns its result dict.

    ``view`` is the App's current view, ``selected`` its selected sample ids (``view_target`` picks among them).
    """
    import fiftyone.operators as foo

    ctx = {"params": params}
    if view is not None:
        ctx["view"] = view
    elif dataset is not None:
        ctx["dataset"] = dataset
    if selected is not None:
        ctx["selected"] = selected
    return foo.execute_operator(f"{PLUGIN_NAME}/{operator_name}", ctx).result


def import_synthetic_val(root: Path, dataset_name: str, **write_options):
    """A synthetic SA-V val split written at ``root`` (``write_sav_val`` options) and imported by the import_sav
    operator into a new dataset ``dataset_name``, returned."""
    import fiftyone as fo

    from sam2_plugins.sample_data import write_sav_val

    write_sav_val(root, **write_options)
    execute("import_sav", dataset_dir=str(root), dataset_name=dataset_name)
    return fo.load_dataset(dataset_name)


@pytest.fixture(scope="session")
def random_checkpoint() -> str:
    """A seeded random-weight SAM 2.1 tiny checkpoint in the official format ({"model": state_dict})."""
    from random_checkpoint import write_random_checkpoint

    return str(write_random_checkpoint(_SESSION_DIR, image_size=TEST_IMAGE_SIZE))


TEST_IMAGE_SIZE = 256
"""Model input size in the tests: small enough for CPU."""

TEST_MODEL = {"config": "sam2.1_hiera_t", "image_size": TEST_IMAGE_SIZE, "device": "cpu"}
"""The model parameters the operators get in the tests (with ``checkpoint=random_checkpoint``)."""

TEST_GENERATOR = {"points_per_side": 4, "pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
"""Mask generator parameters that keep every mask random weights give, on a coarse grid."""


def queued_operations(result: dict) -> list:
    """The delegated operations a sharded run queued (``result["queued"]`` holds their ids)."""
    from bson import ObjectId
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    return [service.get(ObjectId(op_id)) for op_id in result["queued"]]


def run_as_worker(operations: list) -> list[str]:
    """Execute queued delegated operations in this process, as a worker does; their run states afterwards."""
    from fiftyone.operators.delegated import DelegatedOperationService

    service = DelegatedOperationService()
    for operation in operations:
        service.execute_operation(operation)
    return [service.get(operation.id).run_state for operation in operations]


def resolve_form(operator_name: str, dataset=None, selected=None, **params) -> dict:
    """The inputs of one of our operators' forms as the App resolves them for ``params``: ``{name: Property}``.

    ``selected``: the sample ids selected in the App.
    """
    import asyncio

    from fiftyone.operators.executor import ExecutionResult, resolve_type
    from fiftyone.operators.registry import OperatorRegistry

    request = {"params": params, "target": "inputs"}
    if dataset is not None:
        request["dataset_name"] = dataset.name
    if selected is not None:
        request["selected"] = selected
    form = asyncio.run(resolve_type(OperatorRegistry(), f"{PLUGIN_NAME}/{operator_name}", request))
    if isinstance(form, ExecutionResult):
        raise RuntimeError(form.error)
    return form.type.properties


def form_errors(operator_name: str, dataset=None, **params) -> dict[str, str]:
    """``{input name: error message}`` of the inputs the form marks invalid for ``params``."""
    inputs = resolve_form(operator_name, dataset, **params)
    return {name: prop.error_message for name, prop in inputs.items() if prop.invalid}


def launch_workers(log_paths: list[Path], **environment: str) -> list[subprocess.Popen]:
    """``fiftyone delegated launch`` workers on this session's database, one per log file, with ``environment``
    added to theirs; returns once every one says its service is running."""
    fiftyone_cli = str(Path(sys.executable).parent / "fiftyone")
    workers = []
    for log_path in log_paths:
        with open(log_path, "w") as log:  # the worker keeps its own handle
            workers.append(
                subprocess.Popen(
                    [fiftyone_cli, "delegated", "launch"],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env={**worker_environment(), **environment},
                )
            )
    deadline = time.monotonic() + 180
    while not all("service running" in Path(log).read_text() for log in log_paths):
        if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
            for worker in workers:
                worker.kill()
                worker.wait()
            tails = [Path(log).read_text()[-2000:] for log in log_paths]
            raise RuntimeError(f"delegated workers did not start: {tails}")
        time.sleep(0.5)
    return workers


def frame_predictions(dataset, field: str) -> dict:
    """``{(video_id, frame_number, index): (mask, box, confidence)}`` of a prediction field; a duplicate key fails."""
    out = {}
    for sample in dataset.select_fields(["video_id", f"frames.{field}"]):
        for number, frame in sample.frames.items():
            for d in frame[field].detections if frame[field] is not None else []:
                key = (sample.video_id, number, d.index)
                assert key not in out, f"duplicate prediction {key}"
                out[key] = (d.mask, d.bounding_box, d.confidence)
    return out


def assert_same_predictions(dataset, field: str, reference: str = "sam2") -> None:
    """``field`` holds exactly the predictions of ``reference``: the same objects on the same frames, equal masks."""
    import numpy as np

    ours, theirs = frame_predictions(dataset, field), frame_predictions(dataset, reference)
    assert ours.keys() == theirs.keys()
    for key, (mask, box, confidence) in ours.items():
        assert np.array_equal(mask, theirs[key][0]) and box == theirs[key][1], key
        assert confidence == pytest.approx(theirs[key][2], abs=1e-6), key


def panel_event(dataset, handler, state: dict, **params):
    """``handler`` of the J&F panel run on a real execution context holding the panel's ``state``, as the App
    sends an event; returns the context (its panel state is updated in place, its data kept)."""
    from fiftyone.operators.executor import ExecutionContext, Executor

    request = {"dataset_name": dataset.name, "params": {"panel_id": "jf", "panel_state": state, **params}}
    ctx = ExecutionContext(request_params=request, executor=Executor())
    handler(ctx)
    return ctx
