"""The packed cutout store: one memory-mapped array per ingest batch, rows by index.

A batch directory holds three ``.npy`` files (self-describing, so ``np.load(mmap_mode='r')``
opens them from a notebook or a GPU box) and a manifest:

    cutouts.npy   (N, 5, 9, 100)  summed image then the 4 fiber images (the CNN input)
    spec.npy      (N, 2, 1036)    spectrum and its error on the rectified grid
    im_wave.npy   (N, 100)        float32 wavelengths of the cutout columns
    manifest.json n, dtype, source file hash, format version

The image dtype is float16 by default. ``bench/bench_store.py`` measured on 20,000
simulated candidates: rounding error 2e-4 of the per-pixel noise (max 2e-3), half the disk
and page cache (271 vs 534 MB) -- what matters for 2.5 million candidates on shared storage.
The price is CPU to widen each batch (numpy: ~18 us per candidate, below the CNN's own cost;
on a GPU the widening happens on the device). ``dtype='float32'`` stays available.
A writer builds the batch in a temporary
directory and renames it into place only in :meth:`StoreWriter.commit`, so readers never
see a half-written batch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlcore.survey import CUTOUT_COLS, CUTOUT_ROWS, N_FIBERS, N_SPEC

STORE_FORMAT_VERSION = 1
TMP_MARK = ".tmp-"
_HOST = re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"
STORE_DTYPES = ("float16", "float32")
FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class CutoutStore:
    """Read-only view of one batch. Arrays are memory maps: slicing reads only those rows."""

    path: Path
    cutouts: np.ndarray
    spec: np.ndarray
    im_wave: np.ndarray
    manifest: dict

    @classmethod
    def open(cls, path: str | Path) -> CutoutStore:
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(
                f"{path}: not a cutout store (no manifest.json); was the batch ingested on a "
                "machine that shares this storage?"
            )
        manifest = json.loads(manifest_path.read_text())
        arrays = {
            name: np.load(path / f"{name}.npy", mmap_mode="r")
            for name in ("cutouts", "spec", "im_wave")
        }
        return cls(path=path, manifest=manifest, **arrays)

    def __len__(self) -> int:
        return self.cutouts.shape[0]


class StoreWriter:
    """Write a batch chunk by chunk, then :meth:`commit` (atomic rename) or :meth:`abort`."""

    def __init__(
        self, path: str | Path, n: int, *, dtype: str = "float16", meta: dict | None = None
    ):
        if dtype not in STORE_DTYPES:
            raise ValueError(f"store dtype must be one of {STORE_DTYPES}, not {dtype!r}")
        self.path = Path(path)
        self.n = n
        self.dtype = np.dtype(dtype)
        self.meta = dict(meta or {})
        self.clipped = 0
        # Unique per writer (process and thread), so concurrent ingests never share a temp dir;
        # host and pid in the name let :func:`find_orphans` tell a killed writer's directory
        # from a live one.
        self.tmp = self.path.with_name(
            f".{self.path.name}{TMP_MARK}{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.tmp.mkdir(parents=True)
        # The .npy headers are written once; chunks then go through plain file writes, not
        # a writable memory map, whose dirty pages would make ingest memory grow with the file.
        self._files = {}
        shapes = {
            "cutouts": ((n, 1 + N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS), self.dtype),
            "spec": ((n, 2, N_SPEC), self.dtype),
            "im_wave": ((n, CUTOUT_COLS), np.dtype(np.float32)),
        }
        for name, (shape, dt) in shapes.items():
            fh = open(self.tmp / f"{name}.npy", "w+b")
            np.lib.format.write_array_header_2_0(
                fh,
                {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False, "shape": shape},
            )
            fh.truncate(fh.tell() + int(np.prod(shape)) * dt.itemsize)  # sparse until written
            self._files[name] = (fh, fh.tell(), int(np.prod(shape[1:])) * dt.itemsize, dt)

    def _put(self, name: str, start: int, rows: np.ndarray) -> None:
        fh, offset, row_bytes, dt = self._files[name]
        fh.seek(offset + start * row_bytes)
        fh.write(np.ascontiguousarray(rows, dtype=dt).tobytes())

    def write(self, start: int, *, im_sum, im_array, im_wave, spec1d, spec1d_err) -> None:
        n = len(im_sum)
        cut = np.empty((n, 1 + N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS), self.dtype)
        cut[:, 0] = self._fit(im_sum)
        cut[:, 1:] = self._fit(im_array)
        spec = np.empty((n, 2, N_SPEC), self.dtype)
        spec[:, 0] = self._fit(spec1d)
        spec[:, 1] = self._fit(spec1d_err)
        self._put("cutouts", start, cut)
        self._put("spec", start, spec)
        self._put("im_wave", start, im_wave)

    def _fit(self, arr: np.ndarray) -> np.ndarray:
        if self.dtype == np.float16:
            # float16 overflows to inf above 65504; a bright meteor can get there. Clip and
            # count, so the store never holds an inf the file did not.
            over = np.abs(arr) > FLOAT16_MAX
            if over.any():
                self.clipped += int(over.sum())
                arr = np.clip(arr, -FLOAT16_MAX, FLOAT16_MAX)
        return arr

    def commit(self) -> Path:
        for fh, *_ in self._files.values():
            fh.flush()
            os.fsync(fh.fileno())  # durable before the rename makes it visible
            fh.close()
        manifest = {
            "format_version": STORE_FORMAT_VERSION,
            "n": self.n,
            "dtype": self.dtype.name,
            "clipped_pixels": self.clipped,
            **self.meta,
        }
        (self.tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if self.path.exists():
            # Only an orphan from a crashed ingest can be here (the database has no batch
            # that points at it, or the caller would not be writing): replace it.
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        for fh, *_ in self._files.values():
            fh.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def remove_store(path: str | Path) -> None:
    """Delete a committed batch directory (used to undo a commit whose database step failed)."""
    shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class Orphan:
    """A directory under the store root that no live writer or batch owns."""

    path: Path
    kind: str  # "temporary" (a writer's unfinished batch) | "unreferenced" (no batch row)
    reason: str
    bytes: int
    age_s: float


def _dir_bytes(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        try:
            if p.is_file():
                total += p.stat().st_blocks * 512  # what the sparse files really take
        except OSError:
            pass
    return total


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def find_orphans(
    root: str | Path, *, batch_dirs: set[str] | None = None, min_age_s: float = 3600.0
) -> list[Orphan]:
    """Directories under ``root`` left by killed ingests.

    A temporary directory (``.<batch>.tmp-<host>-<pid>-<id>``) is an orphan when its writer
    ran on this host and that process is gone, or, written on another host sharing the
    storage, when nothing has touched it for ``min_age_s``. With ``batch_dirs`` (the names
    the database knows), a committed batch directory that no batch row points at is an
    orphan too once it is ``min_age_s`` old (younger ones may be an ingest about to commit).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    now = time.time()
    out = []
    for entry in sorted(root.iterdir()):
        if not entry.is_dir() or entry.is_symlink():
            continue
        age = now - entry.stat().st_mtime
        name = entry.name
        if name.startswith(".") and TMP_MARK in name:
            tail = name.rsplit(TMP_MARK, 1)[1]
            parts = tail.rsplit("-", 2)
            host, pid = (parts[0], parts[1]) if len(parts) == 3 else ("", "")
            if len(parts) == 2:  # written before the host was in the name: pid-id
                host, pid = _HOST, parts[0]
            if host == _HOST and pid.isdigit() and not _pid_alive(int(pid)):
                reason = f"its writer (pid {pid} on this host) is gone"
            elif host != _HOST and age >= min_age_s:
                reason = f"written on host {host!r}, untouched for {age / 3600:.1f} h"
            else:
                continue
            out.append(Orphan(entry, "temporary", reason, _dir_bytes(entry), age))
        elif batch_dirs is not None and name not in batch_dirs and age >= min_age_s:
            if (entry / "manifest.json").exists():
                why = "no ingest batch points at it"
                out.append(Orphan(entry, "unreferenced", why, _dir_bytes(entry), age))
    return out
