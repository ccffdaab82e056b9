"""Checkpoint resolution, safe reading and strict loading."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from torch import nn

from sam2_plugins.model.checkpoint import (
    OFFICIAL_CHECKPOINTS,
    CheckpointError,
    CheckpointNotFoundError,
    check_fit,
    config_for_checkpoint,
    guess_config,
    load_weights,
    read_state_dict,
    resolve_checkpoint,
)
from sam2_plugins.model.common import MLP
from sam2_plugins.model.predictor import load_model


def resolve_in_fresh_process(name: str, hf_home: Path, **hub_env: str) -> subprocess.CompletedProcess:
    """Run resolve_checkpoint(name) in a fresh interpreter (huggingface_hub reads its settings at import) with the
    Hub cache under `hf_home` and the HF_* settings `hub_env`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(HF_HOME=str(hf_home), **hub_env)
    code = "import sys; from sam2_plugins.model.checkpoint import resolve_checkpoint as r; print(r(sys.argv[1]))"
    return subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True, text=True, timeout=120)


class LocalHub:
    """A Hugging Face Hub endpoint on this machine that records the requests it gets and either serves `content` as
    every official file ("serves": as huggingface.co does, a redirect to a storage host, here `localhost` on the same
    port, with the file's commit, ETag and size), answers 503 ("down", what huggingface_hub retries five times with
    back-off) or hangs up without answering ("hangs-up")."""

    COMMIT = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, behaviour: str, content: bytes = b"") -> None:
        self.requests: list[str] = []
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                hub.requests.append(f"{self.command} {self.path}")
                if behaviour == "hangs-up":
                    self.close_connection = True
                elif behaviour == "down":
                    self.answer(503)
                elif "/resolve/main/" in self.path:
                    storage = f"http://localhost:{hub.server.server_address[1]}/storage/{self.path.rsplit('/', 1)[1]}"
                    self.answer(
                        302,
                        Location=storage,
                        **{"X-Repo-Commit": LocalHub.COMMIT, "X-Linked-Etag": '"sam2"', "X-Linked-Size": len(content)},
                    )
                elif self.path.startswith("/storage/"):
                    self.answer(200, body=content)
                else:
                    self.answer(404)

            do_GET = do_HEAD

            def answer(self, status: int, body: bytes = b"", **headers) -> None:
                self.send_response(status)
                for name, value in {**headers, "Content-Length": len(body)}.items():
                    self.send_header(name, str(value))
                self.end_headers()
                if self.command == "GET":
                    self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def file_requests(self) -> list[str]:
        """The requests for official files (huggingface_hub also fetches its own telemetry registry once a day)."""
        return [request for request in self.requests if "/resolve/" in request or "/storage/" in request]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def local_hub():
    """`local_hub(behaviour, content=b"")`: a started LocalHub, closed after the test."""
    hubs = []

    def start(behaviour: str, content: bytes = b"") -> LocalHub:
        hubs.append(LocalHub(behaviour, content))
        return hubs[-1]

    yield start
    for hub in hubs:
        hub.close()


class TwoHeads(nn.Module):
    """A small model standing in for the network in loading tests."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.first = MLP(width, 8, 2, num_layers=2)
        self.second = nn.Linear(width, 3)


def random_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {key: torch.randn_like(value) for key, value in module.state_dict().items()}


def test_official_table_names_hub_files_and_configs() -> None:
    assert len(OFFICIAL_CHECKPOINTS) == 8
    tiny = OFFICIAL_CHECKPOINTS["sam2.1_hiera_tiny"]
    assert (tiny.repo_id, tiny.filename, tiny.config) == (
        "facebook/sam2.1-hiera-tiny",
        "sam2.1_hiera_tiny.pt",
        "sam2.1_hiera_t",
    )
    base = OFFICIAL_CHECKPOINTS["sam2_hiera_base_plus"]
    assert (base.repo_id, base.filename, base.config) == (
        "facebook/sam2-hiera-base-plus",
        "sam2_hiera_base_plus.pt",
        "sam2_hiera_b+",
    )


@pytest.mark.parametrize(
    ("path_or_name", "config"),
    [
        ("sam2.1_hiera_large", "sam2.1_hiera_l"),
        ("facebook/sam2-hiera-small", "sam2_hiera_s"),
        ("/data/models/sam2_hiera_small.pt", "sam2_hiera_s"),
        (Path("ckpt/sam2.1_hiera_b+.pt"), "sam2.1_hiera_b+"),
        ("runs/sam2.1_hiera_base_plus_finetuned_mose.pt", "sam2.1_hiera_b+"),
        ("sam2_hiera_tx.pt", None),
        ("my_model.pt", None),
    ],
)
def test_config_for_checkpoint(path_or_name, config) -> None:
    assert config_for_checkpoint(path_or_name) == config


def test_guess_config_from_official_key_sets(official_state_dict) -> None:
    for config_name in ("sam2.1_hiera_t", "sam2.1_hiera_s", "sam2.1_hiera_b+", "sam2.1_hiera_l", "sam2_hiera_l"):
        assert guess_config(official_state_dict(config_name)) == config_name
    assert guess_config(random_state_dict(TwoHeads())) is None


def test_local_path_resolves_to_itself(tmp_path: Path) -> None:
    checkpoint = tmp_path / "weights.pt"
    torch.save({"model": {}}, checkpoint)
    assert resolve_checkpoint(str(checkpoint)) == checkpoint
    with pytest.raises(CheckpointNotFoundError, match="is a folder"):
        resolve_checkpoint(tmp_path)


def test_missing_path_lists_official_names(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.pt"
    with pytest.raises(CheckpointNotFoundError, match="no such checkpoint file") as error:
        resolve_checkpoint(missing)
    assert str(missing) in str(error.value) and "sam2.1_hiera_tiny" in str(error.value)
    assert isinstance(error.value, FileNotFoundError)


def test_hf_hub_offline_without_cache_says_where_to_get_the_file_and_never_connects(local_hub, tmp_path) -> None:
    hub = local_hub("serves", b"weights")
    result = resolve_in_fresh_process("sam2.1_hiera_tiny", tmp_path, HF_HUB_OFFLINE="1", HF_ENDPOINT=hub.endpoint)
    assert result.returncode != 0
    assert "CheckpointNotFoundError: sam2.1_hiera_tiny.pt is not in the Hugging Face cache" in result.stderr
    assert "HF_HUB_OFFLINE is set" in result.stderr
    assert OFFICIAL_CHECKPOINTS["sam2.1_hiera_tiny"].url in result.stderr and "local path" in result.stderr
    assert hub.requests == []


@pytest.mark.parametrize("behaviour", ["down", "hangs-up"])
def test_a_failing_hub_is_asked_once_and_the_error_says_where_to_get_the_file(local_hub, tmp_path, behaviour) -> None:
    hub = local_hub(behaviour)
    result = resolve_in_fresh_process("sam2_hiera_large", tmp_path, HF_ENDPOINT=hub.endpoint)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(
        "sam2_plugins.model.checkpoint.CheckpointNotFoundError: sam2_hiera_large.pt is not in the Hugging Face "
        f"cache and could not be downloaded from facebook/sam2-hiera-large at {hub.endpoint} ("
    )
    assert OFFICIAL_CHECKPOINTS["sam2_hiera_large"].url in message and "local path" in message
    assert hub.requests == ["HEAD /facebook/sam2-hiera-large/resolve/main/sam2_hiera_large.pt"]


def test_a_closed_port_fails_at_once_with_the_connection_error(tmp_path: Path) -> None:
    with socket.socket() as bound:  # a port nothing listens on: bound, never listening
        bound.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{bound.getsockname()[1]}"
        result = resolve_in_fresh_process("sam2.1_hiera_small", tmp_path, HF_ENDPOINT=endpoint)
    assert result.returncode != 0
    assert f"could not be downloaded from facebook/sam2.1-hiera-small at {endpoint} (ConnectError:" in result.stderr
    assert "Retry" not in result.stderr  # huggingface_hub logs each of its retries


def test_a_reachable_hub_downloads_once_then_the_cache_answers(local_hub, tmp_path) -> None:
    entry = OFFICIAL_CHECKPOINTS["sam2.1_hiera_base_plus"]
    weights = tmp_path / "weights.pt"
    torch.save({"model": {"layer.weight": torch.arange(6.0)}}, weights)
    hub = local_hub("serves", weights.read_bytes())
    downloaded = resolve_in_fresh_process(entry.filename, tmp_path / "hf", HF_ENDPOINT=hub.endpoint)
    assert downloaded.returncode == 0, downloaded.stderr
    path = Path(downloaded.stdout.strip())
    assert path.read_bytes() == weights.read_bytes()
    assert path.is_relative_to(tmp_path / "hf" / "hub") and path.name == entry.filename
    resolve = f"HEAD /{entry.repo_id}/resolve/main/{entry.filename}"
    assert hub.file_requests() == [resolve, resolve, f"GET /storage/{entry.filename}"]  # our probe, then the download
    asked = len(hub.requests)
    again = resolve_in_fresh_process("sam2.1_hiera_base_plus", tmp_path / "hf", HF_ENDPOINT=hub.endpoint)
    assert again.returncode == 0 and Path(again.stdout.strip()) == path
    assert len(hub.requests) == asked  # the cached file, without asking the Hub


def test_a_name_resolves_from_a_hub_cache_made_by_hf_download(local_hub, tmp_path) -> None:
    entry = OFFICIAL_CHECKPOINTS["sam2_hiera_small"]
    repo_cache = tmp_path / "hub" / f"models--{entry.repo_id.replace('/', '--')}"
    (repo_cache / "refs").mkdir(parents=True)
    (repo_cache / "refs" / "main").write_text(LocalHub.COMMIT)
    cached = repo_cache / "snapshots" / LocalHub.COMMIT / entry.filename
    cached.parent.mkdir(parents=True)
    torch.save({"model": {}}, cached)
    hub = local_hub("down")
    for hub_env in ({"HF_ENDPOINT": hub.endpoint}, {"HF_HUB_OFFLINE": "1"}):
        result = resolve_in_fresh_process(entry.repo_id, tmp_path, **hub_env)
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip()) == cached
    assert hub.requests == []


@pytest.mark.parametrize("wrap", [True, False], ids=["model-key", "bare"])
def test_read_state_dict_round_trip(tmp_path: Path, wrap: bool) -> None:
    weights = random_state_dict(TwoHeads())
    path = tmp_path / "weights.pt"
    torch.save({"model": weights} if wrap else weights, path)
    loaded = read_state_dict(path)
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[key], weights[key]) for key in weights)


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sam2.1_hiera_tiny.pt"
    torch.save({"model": random_state_dict(TwoHeads())}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint") as error:
        read_state_dict(path)
    assert str(path) in str(error.value)
    assert OFFICIAL_CHECKPOINTS["sam2.1_hiera_tiny"].url in str(error.value)


def test_an_empty_file_says_it_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    path.touch()
    with pytest.raises(CheckpointError, match=r"not a readable PyTorch checkpoint \(the file is empty\)"):
        read_state_dict(path)


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"model": TwoHeads()}, path)  # a whole module, only loadable by unpickling code
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint: it holds pickled") as error:
        read_state_dict(path)
    message = str(error.value)
    assert "TwoHeads" in message and "weights_only=True" in message
    assert "weights_only=False" not in message and "weights_only` set to `False" not in message
    assert error.value.__cause__ is None and error.value.__suppress_context__  # torch's advice not chained either


def test_non_tensor_entries_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save({"model": {"layer.weight": torch.zeros(2), "step": 7}}, path)
    with pytest.raises(CheckpointError, match=r"1 entries are not tensors \(step\)"):
        read_state_dict(path)


def test_load_weights_loads_every_tensor() -> None:
    model, weights = TwoHeads(), random_state_dict(TwoHeads())
    load_weights(model, weights, source="weights.pt")
    assert all(torch.equal(model.state_dict()[key], weights[key]) for key in weights)


def test_load_weights_reports_missing_unexpected_and_shapes() -> None:
    model = TwoHeads()
    weights = random_state_dict(TwoHeads(width=5))
    del weights["second.bias"]
    weights["third.weight"] = torch.zeros(1)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    with pytest.raises(CheckpointError) as error:
        load_weights(model, weights, source="/ckpt/custom.pt")
    message = str(error.value)
    assert message.startswith("/ckpt/custom.pt does not fit the TwoHeads")
    assert "1 missing keys (second.bias)" in message
    assert "1 unexpected keys (third.weight)" in message
    assert "2 shape mismatches" in message and "first.layers.0.weight (8, 5) vs (8, 4)" in message
    assert all(torch.equal(model.state_dict()[key], before[key]) for key in before)


def test_load_weights_suggests_the_config_of_an_official_checkpoint(official_state_dict) -> None:
    holder = nn.Module()
    holder.head = nn.Linear(2, 2)
    weights = official_state_dict("sam2.1_hiera_s")
    with pytest.raises(CheckpointError) as error:
        load_weights(holder, weights, source="sam2.1_hiera_small.pt", config="sam2.1_hiera_t")
    message = str(error.value)
    assert "built with config 'sam2.1_hiera_t'" in message
    assert "2 missing keys (head.bias, head.weight)" in message
    assert f"{len(weights)} unexpected keys (image_encoder." in message and ", ...)" in message
    assert message.endswith("pass config='sam2.1_hiera_s'")


def repack(source: Path, target: Path, compression: int, replace: dict[str, bytes] | None = None) -> Path:
    """``source``'s zip records written to ``target`` with ``compression``, those ending in a key of ``replace``
    holding its bytes instead (a deflate-packed or forged checkpoint, as a zip tool or an attacker makes one)."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", compression) as packed:
        for record in original.infolist():
            data = next((new for end, new in (replace or {}).items() if record.filename.endswith(end)), None)
            packed.writestr(record.filename, original.read(record) if data is None else data)
    return target


def test_a_deflate_packed_checkpoint_reads_as_the_original(tmp_path: Path) -> None:
    weights = random_state_dict(TwoHeads())
    torch.save({"model": weights}, tmp_path / "stored.pt")
    packed = repack(tmp_path / "stored.pt", tmp_path / "packed.pt", zipfile.ZIP_DEFLATED)
    layout = read_state_dict(packed, meta=True)
    assert {key: (tensor.device.type, tensor.shape) for key, tensor in layout.items()} == {
        key: ("meta", tensor.shape) for key, tensor in weights.items()
    }
    check_fit(TwoHeads(), layout, source=str(packed))
    loaded = read_state_dict(packed)
    assert all(torch.equal(loaded[key], weights[key]) for key in weights)


def test_tensor_records_larger_than_their_tensors_are_refused_unread(tmp_path: Path) -> None:
    torch.save({"model": {"layer.weight": torch.zeros(4)}}, tmp_path / "small.pt")
    # 16 bytes of tensor, a 64 MB record of zeros packed into 64 KB: torch would inflate it all before objecting
    forged = repack(tmp_path / "small.pt", tmp_path / "forged.pt", zipfile.ZIP_DEFLATED, {"/data/0": bytes(64 << 20)})
    assert forged.stat().st_size < 1 << 20
    message = f"{forged} is not a readable PyTorch checkpoint: it declares {64 << 20} bytes of tensor data where "
    for meta in (True, False):
        with pytest.raises(CheckpointError, match="corrupt or forged: re-download or re-save") as error:
            read_state_dict(forged, meta=meta)
        assert str(error.value).startswith(message + "its 1 tensors need 16;")


def test_an_oversized_metadata_record_is_refused_unread(tmp_path: Path) -> None:
    torch.save({"model": {"layer.weight": torch.zeros(4)}}, tmp_path / "small.pt")
    forged = repack(
        tmp_path / "small.pt", tmp_path / "sam2.1_hiera_tiny.pt", zipfile.ZIP_DEFLATED, {"/data.pkl": bytes(32 << 20)}
    )
    with pytest.raises(CheckpointError, match=rf"its record small/data.pkl declares {32 << 20} bytes") as error:
        read_state_dict(forged)
    assert OFFICIAL_CHECKPOINTS["sam2.1_hiera_tiny"].url in str(error.value)


def test_legacy_format_checkpoints_still_read(tmp_path: Path) -> None:
    weights = random_state_dict(TwoHeads())
    path = tmp_path / "legacy.pt"
    torch.save({"model": weights}, path, _use_new_zipfile_serialization=False)
    assert read_state_dict(path, meta=True).keys() == weights.keys()
    assert all(torch.equal(read_state_dict(path)[key], weights[key]) for key in weights)


def test_load_model_checks_the_fit_before_reading_any_tensor_data(tmp_path: Path) -> None:
    """A wrong, deflate-packed checkpoint whose tensor record is also cut short: reading its data would fail with
    torch's record-size error, so the fit message proves the fit was checked on the layout alone."""
    torch.save({"model": {"image_encoder.trunk.pos_embed": torch.zeros(1000)}}, tmp_path / "wrong.pt")
    path = repack(tmp_path / "wrong.pt", tmp_path / "wrong_packed.pt", zipfile.ZIP_DEFLATED, {"/data/0": bytes(8)})
    with pytest.raises(CheckpointError) as error:
        load_model(path, config="sam2.1_hiera_t", image_size=128)
    message = str(error.value)
    assert message.startswith(f"{path} does not fit the Sam2Model built with config 'sam2.1_hiera_t': ")
    assert "image_encoder.trunk.pos_embed (1000,) vs (1, 96, 7, 7)" in message
    with pytest.raises(CheckpointError, match=r"not a readable PyTorch checkpoint \(record size \(8 bytes\)"):
        read_state_dict(path)  # its data cannot be read
