"""Checkpoints and model cards: what gets written next to the weights.

A model directory holds ``model.pt`` (config + state dict, loadable with
``torch.load(weights_only=True)``) and ``model_card.json`` (provenance and held-out
metrics). The card is plain JSON so the Django side can store it without torch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import torch

from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN, count_parameters

CARD_NAME = "model_card.json"
WEIGHTS_NAME = "model.pt"
CARD_SCHEMA = 1
REQUIRED_CARD_KEYS = (
    "schema",
    "model",
    "created_utc",
    "code_version",
    "data_hash",
    "label_source",
    "seed",
    "training_time_s",
    "n_parameters",
    "model_config",
    "train_config",
    "n_train",
    "n_val",
    "temperature",
    "metrics",
)


# --- checkpoints -------------------------------------------------------------------------


def n_members(model: LineCNN | EnsembleCNN) -> int:
    return len(model.members) if isinstance(model, EnsembleCNN) else 1


def save_checkpoint(path: str | Path, model: LineCNN | EnsembleCNN) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    ck = {"config": model.config.to_dict(), "state_dict": state}
    if isinstance(model, EnsembleCNN):
        ck["members"] = n_members(model)  # absent: one LineCNN (every older checkpoint)
    torch.save(ck, path)
    return path


def load_checkpoint(path: str | Path, device: str = "cpu") -> LineCNN | EnsembleCNN:
    """Rebuild the model from ``model.pt`` (or a directory holding it), eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / WEIGHTS_NAME
    ck = torch.load(path, map_location=device, weights_only=True)
    cfg = CNNConfig(**ck["config"])
    k = int(ck.get("members", 1))
    model = EnsembleCNN([LineCNN(cfg) for _ in range(k)]) if k > 1 else LineCNN(cfg)
    state = ck["state_dict"]
    for key, buf in model.state_dict().items():  # checkpoints from before the prior shift
        if key.endswith("prior_shift") and key not in state:
            state[key] = torch.zeros_like(buf)
    model.load_state_dict(state)
    return model.to(device).eval()


# --- provenance ----------------------------------------------------------------------------


def hash_arrays(*arrays, chunk_rows: int = 4096) -> str:
    """sha256 over arrays (read chunk by chunk, so memmaps never load whole), with shapes."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(repr((tuple(np.shape(a)), str(np.asarray(a[:0]).dtype))).encode())
        for i in range(0, len(a), chunk_rows):
            h.update(np.ascontiguousarray(np.asarray(a[i : i + chunk_rows])).tobytes())
    return h.hexdigest()


def hash_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def code_version() -> str:
    """'git:<commit>[+dirty]' when inside a git checkout, plus a hash of this package's
    source, so an uncommitted change still shows up as a different version."""
    pkg = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(pkg.glob("*.py")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    src = f"src:{h.hexdigest()[:16]}"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=pkg, capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", str(pkg)],
            cwd=pkg,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return src
    if commit.returncode != 0:
        return src
    flag = "+dirty" if dirty.stdout.strip() else ""
    return f"git:{commit.stdout.strip()}{flag} {src}"


def build_card(
    *,
    model: LineCNN,
    data_hash: str,
    label_source: str,
    seed: int,
    training_time_s: float,
    train_config: dict,
    n_train: int,
    n_val: int,
    metrics: dict,
    extra: dict | None = None,
) -> dict:
    """The model card as a JSON-ready dict (see :data:`REQUIRED_CARD_KEYS`)."""
    card = {
        "schema": CARD_SCHEMA,
        "model": "LineCNN" if n_members(model) == 1 else f"EnsembleCNN of {n_members(model)}",
        "members": n_members(model),
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "torch_version": torch.__version__,
        "data_hash": data_hash,
        "label_source": label_source,
        "seed": int(seed),
        "training_time_s": round(float(training_time_s), 2),
        "n_parameters": count_parameters(model),
        "model_config": model.config.to_dict(),
        "train_config": train_config,
        "n_train": int(n_train),
        "n_val": int(n_val),
        "temperature": float(model.temperature),
        "prior_shift": dict(zip(("low", "high"), model.prior_shift.tolist(), strict=True)),
        "input": "(N,5,9,100) summed image + 4 fibers, normalised by mlcore.cnn.data.normalise",
        "metrics": metrics,
    }
    card.update(extra or {})
    return card


def write_model_dir(out_dir: str | Path, model: LineCNN, card: dict) -> tuple[Path, Path]:
    """Write ``model.pt`` and ``model_card.json`` (the card records the weights' sha256)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w = save_checkpoint(out / WEIGHTS_NAME, model)
    card = {**card, "weights_file": WEIGHTS_NAME, "weights_sha256": hash_file(w)}
    c = out / CARD_NAME
    c.write_text(json.dumps(_clean(card), indent=2, allow_nan=False))
    return w, c


def read_card(path: str | Path) -> dict:
    path = Path(path)
    return json.loads((path / CARD_NAME if path.is_dir() else path).read_text())


def _clean(o):
    """numpy scalars/arrays -> Python; NaN/inf -> None (strict JSON)."""
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, np.ndarray):
        return _clean(o.tolist())
    if isinstance(o, np.generic):
        o = o.item()
    if isinstance(o, float) and not np.isfinite(o):
        return None
    return o
