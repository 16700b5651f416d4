"""``Client``: the science API as astropy Tables and numpy arrays.

Pages are fetched transparently (keyset pages: ``after`` = the previous page's
``next_after``). A 429 or 503 answer is retried after the server's ``Retry-After`` (capped
at ``max_wait_s``; exponential back-off when the header is missing), up to ``max_retries``
times; dropped connections likewise. Any other error raises an :class:`ApiError` subclass
carrying the server's code and message.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import requests
from astropy import units as u
from astropy.table import MaskedColumn, Table

API_PATH = "/api/science/v1"
RETRY_STATUSES = (429, 503)

# The catalogue's columns, their numpy types and units (an empty answer still has them).
CATALOGUE_COLUMNS: dict[str, tuple[str, Any]] = {
    "detectid": ("i8", None),
    "ra": ("f8", u.deg),
    "dec": ("f8", u.deg),
    "wave": ("f8", u.AA),
    "z_lya": ("f8", None),
    "sn": ("f8", None),
    "flux": ("f8", 1e-17 * u.erg / u.s / u.cm**2),
    "flux_err": ("f8", 1e-17 * u.erg / u.s / u.cm**2),
    "linewidth": ("f8", u.AA),
    "field": ("U16", None),
    "status": ("U8", None),
    "cutout_flags": ("i4", None),
    "cnn_prob": ("f8", None),
    "cnn_entropy": ("f8", u.bit),
    "cnn_bald": ("f8", u.bit),
    "cnn_adapted": ("i2", None),  # 1: scored with its batch's statistics (AdaBN); masked: no score
    "label": ("i2", None),  # 1 real, 0 not real; masked: no label
    "label_posterior": ("f8", None),
    "label_n_votes": ("i4", None),
    "consensus_posterior": ("f8", None),
    "consensus_n_votes": ("i4", None),
    "consensus_n_unsure": ("i4", None),
    "expert_label": ("i2", None),
    "rounds": ("U64", None),  # the rounds that queued it, comma-separated ("1,2")
}
VOTE_COLUMNS: dict[str, tuple[str, Any]] = {
    "vote_id": ("i8", None),
    "detectid": ("i8", None),
    "volunteer": ("U24", None),
    "answer": ("U8", None),
    "reason": ("U8", None),
    "created_at": ("U32", None),
    "was_gold": ("bool", None),
    "registered": ("bool", None),
    "client": ("U8", None),
}


class ApiError(Exception):
    """The server refused or failed the request: ``status``, ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, *, url: str = ""):
        super().__init__(f"{status} {code}: {message}" + (f" ({url})" if url else ""))
        self.status = status
        self.code = code
        self.message = message
        self.url = url


class BadRequest(ApiError):
    """400: a filter or parameter is wrong (the message says which)."""


class AuthenticationFailed(ApiError):
    """401: no token, an unknown one, or a revoked one."""


class PermissionDenied(ApiError):
    """403: the token lacks the scope this call needs."""


class NotFound(ApiError):
    """404: no such candidate, model version or endpoint."""


class RateLimited(ApiError):
    """429 still, after the retries: ``retry_after_s`` says when to come back."""

    def __init__(self, *args, retry_after_s: float | None = None, **kw):
        super().__init__(*args, **kw)
        self.retry_after_s = retry_after_s


class ServiceUnavailable(ApiError):
    """503 still (or no connection), after the retries."""


_ERRORS = {400: BadRequest, 401: AuthenticationFailed, 403: PermissionDenied, 404: NotFound}


class Client:
    """``Client(base_url, token)``; ``base_url`` is the site (``https://host``) or the API
    root (``https://host/api/science/v1``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        max_wait_s: float = 60.0,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not token:
            raise ValueError("token is empty: create one in the console (Console > API tokens)")
        root = base_url.rstrip("/")
        self.api_url = root if root.endswith(API_PATH) else root + API_PATH
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self._session = session or requests.Session()
        self._session.headers.update(
            {"Authorization": f"Bearer {token}", "User-Agent": "hetdex-label-client/0.1"}
        )
        self.waits: list[float] = []  # seconds slept before retries (for the curious)

    # --- transport ---------------------------------------------------------------------

    def _get(self, path: str, params: dict | None = None) -> requests.Response:
        url = self.api_url + path
        clean = {k: v for k, v in (params or {}).items() if v is not None}
        attempt = 0
        while True:
            try:
                resp = self._session.get(url, params=clean, timeout=self.timeout_s)
            except requests.ConnectionError as exc:
                if attempt >= self.max_retries:
                    raise ServiceUnavailable(0, "no_connection", str(exc), url=url) from exc
                self._wait(None, attempt)
                attempt += 1
                continue
            if resp.status_code < 400:
                return resp
            if resp.status_code in RETRY_STATUSES and attempt < self.max_retries:
                self._wait(_retry_after(resp), attempt)
                attempt += 1
                continue
            raise _error(resp, url)

    def _wait(self, retry_after: float | None, attempt: int) -> None:
        wait = retry_after if retry_after is not None else min(2.0**attempt, 30.0)
        wait = max(0.0, min(wait, self.max_wait_s))
        self.waits.append(wait)
        self._sleep(wait)

    def _pages(self, path: str, params: dict, page_size: int) -> Iterator[dict]:
        after = params.pop("after", None)
        while True:
            body = self._get(path, {**params, "limit": page_size, "after": after}).json()
            yield body
            after = body["next_after"]
            if after is None:
                return

    # --- the API -----------------------------------------------------------------------

    def catalogue(self, *, page_size: int = 1000, max_rows: int | None = None, **filters) -> Table:
        """Catalogue rows matching ``filters`` (sn_min, sn_max, wave_min, wave_max, field,
        score_min, score_max, label='real'|'not_real'|'none', status, model_version), all
        pages, as one Table; ``meta`` has the model version and aggregation run used."""
        rows: list[dict] = []
        meta: dict = {}
        for body in self._pages("/catalogue", dict(filters), page_size):
            meta = {
                "model_version": body["model_version"],
                "aggregation_run": body["aggregation_run"],
            }
            for row in body["rows"]:
                row["rounds"] = ",".join(str(r) for r in row["rounds"])
                for key in ("label", "expert_label"):
                    if row[key] is not None:
                        row[key] = int(row[key])
            rows += body["rows"]
            if max_rows is not None and len(rows) >= max_rows:
                rows = rows[:max_rows]
                break
        return _table(rows, CATALOGUE_COLUMNS, meta)

    def votes(self, *, detectid: int | None = None, page_size: int = 1000) -> Table:
        """Every vote (or those on ``detectid``), volunteers as pseudonyms, as one Table."""
        rows: list[dict] = []
        for body in self._pages("/votes", {"detectid": detectid}, page_size):
            rows += body["rows"]
        return _table(rows, VOTE_COLUMNS, {})

    def models(self) -> list[dict]:
        """Every model version (id, status, label_source, n_train, data_hash, created_at)."""
        return self._get("/models").json()

    def model(self, model_version: int) -> dict:
        """One model version with its card."""
        return self._get(f"/models/{int(model_version)}").json()

    def encoders(self) -> list[dict]:
        """Every pretrained encoder, newest first, retired ones too (id, approach,
        n_candidates, epochs, final_loss, created_at, retired_at, offered, models...)."""
        return self._get("/encoders").json()

    def encoder(self, encoder: int) -> dict:
        """One pretrained encoder with its loss per epoch and its card."""
        return self._get(f"/encoders/{int(encoder)}").json()

    def cutout(self, detectid: int) -> np.ndarray:
        """float32 (5, 9, 100): the summed image, then the four fibres."""
        return _npy(self._get(f"/candidates/{int(detectid)}/cutout.npy"))

    def spectrum(self, detectid: int) -> np.ndarray:
        """float32 (3, N): wavelength (Angstrom), flux, flux error."""
        return _npy(self._get(f"/candidates/{int(detectid)}/spectrum.npy"))

    def cutout_png(self, detectid: int) -> bytes:
        """The PNG volunteers see."""
        return self._get(f"/candidates/{int(detectid)}/cutout.png").content


def _retry_after(resp: requests.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    try:
        return float(raw) if raw is not None else None
    except ValueError:  # an HTTP date: fall back to back-off
        return None


def _error(resp: requests.Response, url: str) -> ApiError:
    try:
        err = resp.json()["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        code, message = "http_error", resp.text[:200] or resp.reason
    if resp.status_code == 429:
        return RateLimited(429, code, message, url=url, retry_after_s=_retry_after(resp))
    if resp.status_code == 503:
        return ServiceUnavailable(503, code, message, url=url)
    return _ERRORS.get(resp.status_code, ApiError)(resp.status_code, code, message, url=url)


def _npy(resp: requests.Response) -> np.ndarray:
    return np.load(io.BytesIO(resp.content), allow_pickle=False)


def _table(rows: list[dict], columns: dict[str, tuple[str, Any]], meta: dict) -> Table:
    table = Table(meta=meta)
    for name, (dtype, unit) in columns.items():
        values = [r.get(name) for r in rows]
        mask = [v is None for v in values]
        fill = {"U": "", "b": False}.get(np.dtype(dtype).kind, 0)
        data = np.array([fill if m else v for v, m in zip(values, mask, strict=True)], dtype=dtype)
        if any(mask):
            table[name] = MaskedColumn(data, mask=mask, unit=unit)
        else:
            table[name] = data
            table[name].unit = unit
    return table
