"""The packed cutout store: one memory-mapped array per ingest batch, rows by index.

A batch directory holds three ``.npy`` files (self-describing, so ``np.load(mmap_mode='r')``
opens them from a notebook or a GPU box) and a manifest:

    cutouts.npy   (N, 5, 9, 100)  summed image then the 4 fiber images (the CNN input)
    spec.npy      (N, 2, 1036)    spectrum and its error on the rectified grid
    im_wave.npy   (N, 100)        float32 wavelengths of the cutout columns
    detectid.npy  (N,)            int64 detectid of each row (stores written since issue #27)
    manifest.json n, dtype, source file hash, format version, batch name, and for stores
                  with ids ``detectid``: {file, n, min, max}

With the ids the store is joinable without the database: :func:`lookup` (or
:meth:`CutoutStore.rows_of`) finds candidates by detectid in one batch or under a store root.

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

import io
import json
import os
import re
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlcore.errors import DataError
from mlcore.survey import CUTOUT_COLS, CUTOUT_ROWS, N_FIBERS, N_SPEC

STORE_FORMAT_VERSION = 1
TMP_MARK = ".tmp-"
_HOST = re.sub(r"[^A-Za-z0-9.]+", "_", socket.gethostname()) or "host"
STORE_DTYPES = ("float16", "float32")
IDS_FILE = "detectid.npy"
UNKNOWN_LISTED = 5  # unknown detectids named in an error; the rest are counted


class StoreLookupError(DataError):
    """Detectids that are not in the store(s) searched, or a store that carries no ids."""


FLOAT16_MAX = float(np.finfo(np.float16).max)


@dataclass
class CutoutStore:
    """Read-only view of one batch. Arrays are memory maps: slicing reads only those rows."""

    path: Path
    cutouts: np.ndarray
    spec: np.ndarray
    im_wave: np.ndarray
    manifest: dict
    detectid: np.ndarray | None = None  # (N,) int64, None for stores from before issue #27
    _sorted: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

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
        ids = np.load(path / IDS_FILE) if (path / IDS_FILE).exists() else None
        return cls(path=path, manifest=manifest, detectid=ids, **arrays)

    def __len__(self) -> int:
        return self.cutouts.shape[0]

    @property
    def batch(self) -> str:
        return str(self.manifest.get("batch", self.path.name))

    def _index(self) -> tuple[np.ndarray, np.ndarray]:
        if self.detectid is None:
            raise StoreLookupError(
                f"{self.path}: this store carries no detectids (written before they were "
                f"stored, issue #27: no {IDS_FILE}); look its rows up in the platform's "
                "database, or ingest the file again"
            )
        if self._sorted is None:
            order = np.argsort(self.detectid, kind="stable")
            self._sorted = (self.detectid[order], order)
        return self._sorted

    def find_rows(self, detectids) -> tuple[np.ndarray, np.ndarray]:
        """-> (rows, found): the store row of each detectid (-1 where absent) and a mask."""
        ids = np.asarray(detectids, dtype=np.int64).reshape(-1)
        s_ids, order = self._index()
        if len(s_ids) == 0:
            return np.full(len(ids), -1, np.int64), np.zeros(len(ids), bool)
        pos = np.minimum(np.searchsorted(s_ids, ids), len(s_ids) - 1)
        found = s_ids[pos] == ids
        return np.where(found, order[pos], -1).astype(np.int64), found

    def rows_of(self, detectids) -> np.ndarray:
        """Store rows of ``detectids``, in their order; :class:`StoreLookupError` naming
        unknown ones."""
        rows, found = self.find_rows(detectids)
        if not found.all():
            raise StoreLookupError(_unknown(np.asarray(detectids).reshape(-1)[~found], self.path))
        return rows


DIRECT_ALIGN = 4096  # O_DIRECT offsets, lengths and buffers: a multiple of the block size


class _DataFile:
    """One store file (header + rows), its rows written at increasing offsets (ingest's
    chunks, in order).

    On Linux the file goes to disk through a descriptor opened with ``O_DIRECT``, in whole
    4 kB blocks, from one reused page-aligned buffer that the caller fills in place
    (:meth:`region`, then :meth:`done`): no page cache. Through the page cache every 4 kB
    of a new file took a fresh page that the kernel allocated and copied into: on the
    project's VMs ~3.4 s of system time per 1.6 GB (dd: 0.23 s with O_DIRECT, 0.09 s
    overwriting cached pages), most of ingest's system time, and a page cache that grew
    with the store (the store is read back later through memory maps like any file). The
    last partial block goes through the ordinary descriptor at :meth:`close`; so does
    everything after an out-of-order write, or where the file system refuses ``O_DIRECT``
    (tmpfs, some network file systems; other systems lack it).
    """

    def __init__(self, direct: bool, path: Path, header: bytes, data_bytes: int):
        self.fh = open(path, "w+b")
        self.fh.truncate(len(header) + data_bytes)  # sparse until written
        self.data_offset = len(header)
        self._fd = None
        self._blk: np.ndarray | None = None
        self._staged: tuple[int, np.ndarray] | None = None  # page-cache mode: (offset, bytes)
        self._pending = 0
        if direct and hasattr(os, "O_DIRECT") and len(header) <= DIRECT_ALIGN:
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
            except OSError:
                self._fd = None
        # blk[:carry] holds the file's bytes from ``base`` (block-aligned) not yet written;
        # the header is the first of them.
        self._base, self._carry = 0, len(header)
        if self._fd is None:
            self._buffered(0, header)
            self._carry = 0
        else:
            self._block(len(header))[: len(header)] = np.frombuffer(header, np.uint8)

    def region(self, offset: int, nbytes: int) -> np.ndarray:
        """A writable uint8 buffer for the file's bytes [offset, offset + nbytes); call
        :meth:`done` once it is filled."""
        if self._fd is not None and offset != self._base + self._carry:
            self._stop_direct()  # not in order: the page cache from here on
        if self._fd is None:
            buf = self._staging(nbytes)
            self._staged = (offset, buf)
            return buf
        self._pending = nbytes
        return self._block(self._carry + nbytes)[self._carry : self._carry + nbytes]

    def done(self) -> None:
        if self._staged is not None:
            offset, buf = self._staged
            self._staged = None
            self._buffered(offset, buf)
            return
        total = self._carry + self._pending
        whole = total - total % DIRECT_ALIGN
        blk, done = self._blk, 0
        try:
            while done < whole:
                done += os.pwrite(self._fd, memoryview(blk)[done:whole], self._base + done)
        except OSError:  # O_DIRECT refused (EINVAL): the page cache, then
            self._buffered(self._base + done, memoryview(blk)[done:total])
            self._carry = self._pending = 0
            self._close_direct()
            return
        self._carry, self._pending = total - whole, 0
        blk[: self._carry] = blk[whole:total]
        self._base += whole

    def write(self, offset: int, data: memoryview) -> None:
        self.region(offset, len(data))[...] = np.frombuffer(data, np.uint8)
        self.done()

    def _block(self, size: int) -> np.ndarray:
        if self._blk is None or len(self._blk) < size:
            cap = -(-size // DIRECT_ALIGN) * DIRECT_ALIGN
            raw = np.empty(cap + DIRECT_ALIGN, np.uint8)
            start = -raw.ctypes.data % DIRECT_ALIGN
            new = raw[start : start + cap]
            if self._blk is not None:
                new[: self._carry] = self._blk[: self._carry]
            self._blk = new
        return self._blk

    def _staging(self, size: int) -> np.ndarray:
        if self._blk is None or len(self._blk) < size:
            self._blk = np.empty(size, np.uint8)
        return self._blk[:size]

    def _buffered(self, offset: int, data) -> None:
        self.fh.seek(offset)
        self.fh.write(data)

    def _stop_direct(self) -> None:
        if self._fd is not None and self._carry:
            self._buffered(self._base, memoryview(self._blk)[: self._carry])
        self._carry = 0
        self._close_direct()

    def _close_direct(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._blk = None

    def close(self, *, sync: bool) -> None:
        try:
            if sync:
                self._stop_direct()
                self.fh.flush()
                os.fsync(self.fh.fileno())  # one inode: covers the O_DIRECT writes too
        finally:
            self._close_direct()
            self._blk = None
            self.fh.close()


class StoreWriter:
    """Write a batch chunk by chunk, then :meth:`commit` (atomic rename) or :meth:`abort`.

    ``direct=False``: plain writes through the page cache instead of ``O_DIRECT`` (see
    :class:`_DataFile`), for a file system where synchronous writes are slow."""

    def __init__(
        self,
        path: str | Path,
        n: int,
        *,
        dtype: str = "float16",
        meta: dict | None = None,
        detectid: np.ndarray | None = None,
        direct: bool = True,
    ):
        if dtype not in STORE_DTYPES:
            raise ValueError(f"store dtype must be one of {STORE_DTYPES}, not {dtype!r}")
        if detectid is not None:
            detectid = np.asarray(detectid)
            if detectid.shape != (n,) or detectid.dtype.kind not in "iu":
                raise ValueError(
                    f"detectid must be ({n},) integers, not {detectid.shape} {detectid.dtype}"
                )
            detectid = detectid.astype(np.int64, copy=False)  # the caller's ids: no copy
        self.detectid = detectid
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
            header = io.BytesIO()
            np.lib.format.write_array_header_2_0(
                header,
                {"descr": np.lib.format.dtype_to_descr(dt), "fortran_order": False, "shape": shape},
            )
            f = _DataFile(
                direct,
                self.tmp / f"{name}.npy",
                header.getvalue(),
                int(np.prod(shape)) * dt.itemsize,
            )
            self._files[name] = (f, f.data_offset, int(np.prod(shape[1:])) * dt.itemsize, dt)

    def _rows(self, name: str, start: int, n: int) -> tuple[_DataFile, np.ndarray]:
        """(file, a writable (n, ...) array for rows start .. start + n of ``name``): the
        file's own block buffer where it can (no staging copy)."""
        f, offset, row_bytes, dt = self._files[name]
        raw = f.region(offset + start * row_bytes, n * row_bytes)
        return f, raw.view(dt).reshape(n, row_bytes // dt.itemsize)

    def write(self, start: int, *, im_sum, im_array, im_wave, spec1d, spec1d_err) -> None:
        """Rows ``start`` .. ``start + len(im_sum)``. The arrays are only read (they may be
        views of a reader's reused buffers)."""
        n = len(im_sum)
        f, cut = self._rows("cutouts", start, n)
        cut = cut.reshape(n, 1 + N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS)
        self._fit_into(cut[:, 0], im_sum)
        self._fit_into(cut[:, 1:], im_array)
        f.done()
        f, spec = self._rows("spec", start, n)
        spec = spec.reshape(n, 2, N_SPEC)
        self._fit_into(spec[:, 0], spec1d)
        self._fit_into(spec[:, 1], spec1d_err)
        f.done()
        f, wave = self._rows("im_wave", start, n)
        np.copyto(wave, np.asarray(im_wave).reshape(n, -1), casting="unsafe")
        f.done()

    def _fit_into(self, out: np.ndarray, arr: np.ndarray) -> None:
        arr = np.asarray(arr)
        if self.dtype == np.float16 and arr.size:
            # float16 overflows to inf above 65504; a bright meteor can get there. Clip and
            # count, so the store never holds an inf the file did not. The extremes first
            # (no temporaries; fmax/fmin skip NaN, the masked pixels): the exact count is
            # needed only when they are out of range.
            if arr.dtype.kind == "f":
                hi, lo = np.fmax.reduce(arr, axis=None), np.fmin.reduce(arr, axis=None)
                over_any = bool(hi > FLOAT16_MAX or lo < -FLOAT16_MAX)
            else:
                over_any = True
            if over_any:
                over = np.abs(arr) > FLOAT16_MAX
                if over.any():
                    self.clipped += int(over.sum())
                    arr = np.clip(arr, -FLOAT16_MAX, FLOAT16_MAX)
        out[...] = arr

    def commit(self) -> Path:
        for f, *_ in self._files.values():
            f.close(sync=True)  # durable before the rename makes it visible
        manifest = {
            "format_version": STORE_FORMAT_VERSION,
            "n": self.n,
            "dtype": self.dtype.name,
            "clipped_pixels": self.clipped,
            **self.meta,
        }
        if self.detectid is not None:
            with open(self.tmp / IDS_FILE, "wb") as fh:
                np.save(fh, self.detectid)
                fh.flush()
                os.fsync(fh.fileno())
            ids = self.detectid
            manifest["detectid"] = {
                "file": IDS_FILE,
                "n": int(len(ids)),
                "min": int(ids.min()) if len(ids) else None,
                "max": int(ids.max()) if len(ids) else None,
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
        for f, *_ in self._files.values():
            f.close(sync=False)
        shutil.rmtree(self.tmp, ignore_errors=True)


def _unknown(ids: np.ndarray, where) -> str:
    shown = ", ".join(str(int(i)) for i in ids[:UNKNOWN_LISTED])
    more = f" and {len(ids) - UNKNOWN_LISTED} more" if len(ids) > UNKNOWN_LISTED else ""
    return f"{where}: {len(ids)} detectid(s) not found: {shown}{more}"


def open_stores(path: str | Path) -> list[CutoutStore]:
    """One batch directory (it has a manifest) or every committed batch under a store root."""
    path = Path(path)
    if (path / "manifest.json").exists():
        return [CutoutStore.open(path)]
    if not path.is_dir():
        raise StoreLookupError(f"{path}: no such directory")
    dirs = sorted(
        d for d in path.iterdir() if not d.name.startswith(".") and (d / "manifest.json").exists()
    )
    if not dirs:
        raise StoreLookupError(
            f"{path}: neither a cutout store (no manifest.json) nor a root holding any"
        )
    return [CutoutStore.open(d) for d in dirs]


def lookup(stores: str | Path | list[CutoutStore], detectids) -> dict[str, np.ndarray]:
    """Cutouts of candidates by detectid, without the database.

    ``stores``: a batch directory, a store root (all its batches are searched) or opened
    :class:`CutoutStore` objects. Returns arrays in the order of ``detectids``:
    ``detectid``, ``batch`` (batch name), ``row`` (row in that batch), ``cutouts``
    (K, 5, 9, 100) float32, ``spec`` (K, 2, 1036) float32, ``im_wave`` (K, 100). Raises
    :class:`StoreLookupError` naming the first few unknown detectids (or a store without ids).
    """
    opened = stores if isinstance(stores, list) else open_stores(stores)
    ids = np.asarray(detectids, dtype=np.int64).reshape(-1)
    which = np.full(len(ids), -1, np.int64)
    rows = np.full(len(ids), -1, np.int64)
    for k, st in enumerate(opened):
        left = np.flatnonzero(which < 0)
        if not len(left):
            break
        r, found = st.find_rows(ids[left])
        which[left[found]], rows[left[found]] = k, r[found]
    if (which < 0).any():
        where = opened[0].path if len(opened) == 1 else f"{len(opened)} stores"
        raise StoreLookupError(_unknown(ids[which < 0], where))
    out = {
        "detectid": ids,
        "batch": np.array([opened[k].batch for k in which], dtype=object),
        "row": rows,
        "cutouts": np.empty((len(ids), 1 + N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS), np.float32),
        "spec": np.empty((len(ids), 2, N_SPEC), np.float32),
        "im_wave": np.empty((len(ids), CUTOUT_COLS), np.float32),
    }
    for k in np.unique(which):
        sel = np.flatnonzero(which == k)
        r = rows[sel]
        order = np.argsort(r)  # memmaps read fastest in row order
        for name in ("cutouts", "spec", "im_wave"):
            out[name][sel[order]] = getattr(opened[k], name)[r[order]]
    return out


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
