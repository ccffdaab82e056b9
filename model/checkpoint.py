"""Official SAM 2 / 2.1 checkpoints: resolve a name or path to a file, read it safely, load it strictly."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from .configs import CONFIGS
from .official import OFFICIAL_CHECKPOINTS, OfficialCheckpoint


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint that is neither a local file nor obtainable from the Hugging Face Hub."""


_SAM21_ONLY_KEY = "no_obj_embed_spatial"
_SHOWN_KEYS = 5
_SAFE_LOADER_REFUSAL = "Weights only load failed"
_TENSOR_RECORD = re.compile(r"[^/]+/data/\d+")
_MAX_METADATA_BYTES = 16 * 2**20
"""The most bytes a zip checkpoint's other records may declare (sam2.1_hiera_large's data.pkl holds ~0.2 MB)."""


def _official(path_or_name: str | os.PathLike) -> OfficialCheckpoint | None:
    """The official checkpoint a name, Hub repo id or file name refers to."""
    text = str(path_or_name)
    for name, entry in OFFICIAL_CHECKPOINTS.items():
        if text in (name, entry.repo_id, entry.filename):
            return entry
    return None


def _download_instructions(entry: OfficialCheckpoint) -> str:
    return (
        f"download {entry.url} (or run `hf download {entry.repo_id} {entry.filename}`) and pass the file's local path"
    )


def resolve_checkpoint(path_or_name: str | os.PathLike) -> Path:
    """A local checkpoint path, or an official name (`sam2.1_hiera_tiny` ...) fetched into the Hugging Face cache."""
    path = Path(path_or_name).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise CheckpointNotFoundError(f"{path} is a folder: pass the checkpoint's .pt file inside it")
    entry = _official(path_or_name)
    if entry is None:
        raise CheckpointNotFoundError(
            f"{path}: no such checkpoint file, and not an official checkpoint name ({', '.join(OFFICIAL_CHECKPOINTS)})"
        )
    return _hub_checkpoint(entry)


_HUB_CONNECT_TIMEOUT_S = 1.5
"""How long the one attempt to reach the Hub may take to connect before the checkpoint is reported unavailable."""


def _hub_checkpoint(entry: OfficialCheckpoint) -> Path:
    """The cached file of an official checkpoint, else downloaded after one quick check that the Hub answers.

    huggingface_hub retries an unreachable Hub five times with back-off (about 25 s) before it gives up: a single
    HEAD request with a short connect timeout, through its own HTTP client (proxies, offline mode), decides
    instead; HF_HUB_OFFLINE means no network access at all.
    """
    from huggingface_hub import constants, hf_hub_download, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    from huggingface_hub.utils import get_session, hf_raise_for_status, httpx

    cached = try_to_load_from_cache(entry.repo_id, entry.filename)
    if isinstance(cached, str):  # official files never change: a cached copy is used without asking the network
        return Path(cached)
    missing = f"{entry.filename} is not in the Hugging Face cache"
    if constants.HF_HUB_OFFLINE:
        raise CheckpointNotFoundError(
            f"{missing} and HF_HUB_OFFLINE is set, so it was not downloaded from {entry.repo_id}; "
            f"{_download_instructions(entry)}"
        )
    try:
        timeout = httpx.Timeout(constants.HF_HUB_ETAG_TIMEOUT, connect=_HUB_CONNECT_TIMEOUT_S)
        probe = get_session().head(hf_hub_url(entry.repo_id, entry.filename), follow_redirects=False, timeout=timeout)
        hf_raise_for_status(probe)
        return Path(hf_hub_download(repo_id=entry.repo_id, filename=entry.filename))
    except (LocalEntryNotFoundError, HfHubHTTPError, httpx.TransportError) as err:
        reason = str(err).partition("\n")[0] or "no details"  # the Hub's HTTP errors add lines of advice
        raise CheckpointNotFoundError(
            f"{missing} and could not be downloaded from {entry.repo_id} at {constants.ENDPOINT} "
            f"({type(err).__name__}: {reason}); {_download_instructions(entry)}"
        ) from err


def config_for_checkpoint(path_or_name: str | os.PathLike) -> str | None:
    """The config (`sam2.1_hiera_t` ...) an official name, repo id or checkpoint file name implies, else None."""
    entry = _official(path_or_name)
    if entry is not None:
        return entry.config
    stem = Path(path_or_name).name.removesuffix(".pt")
    candidates = {name: entry.config for name, entry in OFFICIAL_CHECKPOINTS.items()}
    candidates.update({entry.config: entry.config for entry in OFFICIAL_CHECKPOINTS.values()})
    matches = [name for name in candidates if re.match(re.escape(name) + r"(?![A-Za-z0-9])", stem)]
    return candidates[max(matches, key=len)] if matches else None


def guess_config(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """The config whose architecture a full-model state dict has (from its Hiera trunk and 2.1-only keys)."""
    pos_embed = state_dict.get("image_encoder.trunk.pos_embed")
    block_ids = {int(key.split(".")[3]) for key in state_dict if key.startswith("image_encoder.trunk.blocks.")}
    if pos_embed is None or pos_embed.ndim != 4 or not block_ids:
        return None
    signature = (pos_embed.shape[1], max(block_ids) + 1, _SAM21_ONLY_KEY in state_dict)
    for name, config in CONFIGS.items():
        if (config.trunk.embed_dim, sum(config.trunk.stages), config.is_sam2_1) == signature:
            return name
    return None


def read_state_dict(path: Path, *, meta: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint saved as {"model": state_dict} or as a bare state dict (never unpickles objects).

    The tensors' keys, shapes and dtypes are read first, without their data, and a zip checkpoint (torch.save's
    format) is checked to declare no more bytes than those tensors need, so a compressed or forged file is refused
    before it can take memory. ``meta=True`` returns just that layout, as meta tensors: enough to check the file
    against a model (:func:`check_fit`) before any tensor data is read.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"{path}: no such checkpoint file")
    data_bytes = _declared_data_bytes(path)
    layout = _state_dict(path, _load(path, map_location="meta"))
    needed = sum(tensor.numel() * tensor.element_size() for tensor in layout.values())
    if data_bytes is not None and data_bytes > needed:
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint: it declares {data_bytes} bytes of tensor data where its "
            f"{len(layout)} tensors need {needed}; the file is corrupt or forged: {_fix(path)}"
        )
    return layout if meta else _state_dict(path, _load(path, map_location="cpu"))


def _declared_data_bytes(path: Path) -> int | None:
    """The uncompressed size a zip checkpoint declares for its tensor records (``<archive>/data/<key>``), after
    checking its other records (the pickled layout, version marks) are of a plausible size; None when not a zip."""
    try:
        with zipfile.ZipFile(path) as archive:
            records = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        return None  # torch.save's legacy format, or not a checkpoint at all: torch.load says which
    data_bytes = 0
    for record in records:
        if _TENSOR_RECORD.fullmatch(record.filename):
            data_bytes += record.file_size
        elif record.file_size > _MAX_METADATA_BYTES:
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint: its record {record.filename} declares "
                f"{record.file_size} bytes, far more than a SAM 2 checkpoint's metadata; {_fix(path)}"
            )
    return data_bytes


def _fix(path: Path) -> str:
    entry = _official(path.name)
    return _download_instructions(entry) if entry else "re-download or re-save it with torch.save"


def _load(path: Path, map_location: str) -> object:
    """``torch.load(path, weights_only=True)``, its errors as a CheckpointError naming the file and the fix."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many types for truncated, foreign or unsafe files
        if _SAFE_LOADER_REFUSAL in str(err):  # torch's own message advises weights_only=False: never repeat that
            found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
            raise CheckpointError(
                f"{path} is not a readable PyTorch checkpoint: it holds pickled Python objects"
                f"{f' ({found.group(1)})' if found else ''}, which the safe loader (weights_only=True) will not "
                "run; save only its tensors (torch.save({'model': model.state_dict()}, path)) from a copy you "
                f"trust, or {_fix(path)}"
            ) from None
        reason = str(err) or ("the file is empty" if path.stat().st_size == 0 else type(err).__name__)
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint ({reason}); {_fix(path)}") from err


def _state_dict(path: Path, content: object) -> dict[str, torch.Tensor]:
    """The state dict a checkpoint's content holds, checked to be tensors by name."""
    state_dict = content.get("model", content) if isinstance(content, dict) else content
    if not isinstance(state_dict, dict) or not state_dict:
        raise CheckpointError(f"{path} holds no state dict: expected {{'model': state_dict}} or a state dict")
    not_tensors = [key for key, value in state_dict.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{path} is not a SAM 2 state dict: {len(not_tensors)} entries are not tensors "
            f"({', '.join(map(str, not_tensors[:_SHOWN_KEYS]))})"
        )
    return state_dict


def _listed(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_SHOWN_KEYS]) + (", ..." if len(items) > _SHOWN_KEYS else "")
    return f"{len(items)} {title} ({shown})"


def load_weights(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, *, config: str | None = None
) -> None:
    """Strictly load `state_dict` into `module` once :func:`check_fit` finds it fits."""
    check_fit(module, state_dict, source, config=config)
    module.load_state_dict(state_dict, strict=True)


def check_fit(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str, *, config: str | None = None
) -> None:
    """A CheckpointError naming `source`, the keys at fault and the likely config unless `state_dict` (its shapes:
    meta tensors will do) has exactly `module`'s keys and shapes."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{key} {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        built_for = f" built with config {config!r}" if config else ""
        problems = [
            _listed(title, items)
            for title, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches, checkpoint vs model", mismatched),
            )
            if items
        ]
        guessed = guess_config(state_dict)
        hint = ""
        if guessed not in (None, config):
            hint = f"; it looks like a {guessed!r} checkpoint: pass config={guessed!r}"
        message = f"{source} does not fit the {type(module).__name__}{built_for}: {'; '.join(problems)}{hint}"
        raise CheckpointError(message)
