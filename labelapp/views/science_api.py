"""The science API (/api/science/v1/): read-only, token-authenticated, OpenAPI from the code.

django-ninja builds the OpenAPI schema (/api/science/v1/openapi.json) from these type hints
and schemas. Thin routes: authenticate the bearer token, check its scope, count and audit
the request (labelapp.services.science.tokens), then call labelapp.services.science.api.
Errors are the platform's one JSON shape, ``{"error": {"code", "message", ...}}``: 401 no
or bad token, 403 scope missing, 404, 400 bad parameter, 429 (Retry-After) over the limit.
"""

from __future__ import annotations

import datetime as dt

from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import NinjaAPI, Query, Schema
from ninja.errors import AuthenticationError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from pydantic import BaseModel

from labelapp.errors import PlatformError, Unauthenticated
from labelapp.services.science import api as science
from labelapp.services.science import tokens
from labelapp.views.errors import api_error, platform_error_response


class BearerToken(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str):
        return tokens.authenticate_token(token)


api = NinjaAPI(
    title="HETDEX labelling: science API",
    version="1",
    description=(
        "Read-only access for scientists: the catalogue with CNN scores, labels, consensus "
        "and rounds; pseudonymised votes; model versions and cards; pretrained encoders; "
        "cutouts and spectra. "
        "Authenticate with `Authorization: Bearer <token>` (tokens: Console > API tokens). "
        "Pages are keyset pages: pass `after` = the previous page's `next_after`."
    ),
    urls_namespace="science-api",
    auth=BearerToken(),
    docs_url=None,  # the Swagger page loads its scripts from a CDN; the site works offline
)


@api.exception_handler(PlatformError)
def _platform_error(request, exc: PlatformError):
    resp = platform_error_response(exc)
    if isinstance(exc, Unauthenticated):
        resp["WWW-Authenticate"] = 'Bearer realm="science"'
    return resp


@api.exception_handler(AuthenticationError)
def _no_token(request, exc):
    return _platform_error(
        request,
        Unauthenticated("Send your token in an 'Authorization: Bearer <token>' header."),
    )


@api.exception_handler(NinjaValidationError)
def _invalid(request, exc: NinjaValidationError):
    problems = []
    for e in exc.errors:
        where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("query", "path"))
        problems.append(f"{where}: {e.get('msg', 'invalid')}")
    return api_error(400, "invalid", "; ".join(problems) or "invalid request")


def _use(request: HttpRequest, scope: str) -> None:
    tokens.authorize_request(
        token=request.auth,
        scope=scope,
        path=request.path,
        query=request.META.get("QUERY_STRING", ""),
    )


# --- schemas -------------------------------------------------------------------------------
# Answers are plain pydantic models (validating 1,000 dicts a page through ninja's Schema,
# which reads each field through a Django-aware getter, took half a page's time).


class ErrorBody(BaseModel):
    code: str
    message: str
    retry_after_s: int | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


ERRORS = {frozenset({400, 401, 403, 404, 429}): ErrorOut}


class CatalogueRow(BaseModel):
    detectid: int
    ra: float
    dec: float
    wave: float
    z_lya: float
    sn: float
    flux: float
    flux_err: float
    linewidth: float
    field: str
    status: str
    cutout_flags: int
    cnn_prob: float | None
    cnn_entropy: float | None
    cnn_bald: float | None
    cnn_adapted: bool | None
    label: bool | None
    label_posterior: float | None
    label_n_votes: int | None
    consensus_posterior: float | None
    consensus_n_votes: int | None
    consensus_n_unsure: int | None
    expert_label: bool | None
    rounds: list[int]


class CataloguePage(BaseModel):
    model_version: int | None
    aggregation_run: int | None
    count: int
    next_after: int | None
    rows: list[CatalogueRow]


class CatalogueFilters(Schema):
    after: int | None = None
    limit: int | None = None
    model_version: int | None = None
    sn_min: float | None = None
    sn_max: float | None = None
    wave_min: float | None = None
    wave_max: float | None = None
    field: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    label: str | None = None
    status: str | None = None


class VoteRow(BaseModel):
    vote_id: int
    detectid: int
    volunteer: str
    answer: str
    reason: str
    created_at: dt.datetime
    was_gold: bool
    registered: bool
    client: str


class VotePage(BaseModel):
    count: int
    next_after: int | None
    rows: list[VoteRow]


class ModelSummary(BaseModel):
    id: int
    status: str
    label_source: str
    n_train: int
    data_hash: str
    status_reason: str
    created_at: dt.datetime


class ModelDetail(ModelSummary):
    card: dict


class EncoderSummary(BaseModel):
    id: int
    approach: str
    n_candidates: int
    n_eligible: int | None
    fields: dict[str, int]
    epochs: int | None
    final_loss: float | None
    data_source: str
    data_hash: str
    created_at: dt.datetime
    retired_at: dt.datetime | None
    retired_reason: str
    offered: bool
    problem: str | None
    models: list[int]


class EncoderDetail(EncoderSummary):
    loss_curve: list[float]
    card: dict


NPY = {"application/x-npy": {"schema": {"type": "string", "format": "binary"}}}
PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}


def _binary(content: dict, what: str) -> dict:
    return {"responses": {200: {"description": what, "content": content}}}


# --- routes --------------------------------------------------------------------------------


@api.get("/catalogue", response={200: CataloguePage, **ERRORS}, summary="Catalogue rows")
def catalogue(request: HttpRequest, filters: Query[CatalogueFilters]):
    """Candidates in detectid order with the model's scores (the live model unless
    `model_version`), the labels of record, the live consensus and the rounds that queued
    them. `label`: real | not_real | none; `status`: active | retired | expert. Scope
    catalogue:read."""
    _use(request, "catalogue:read")
    page = science.catalogue_page(**filters.dict())
    return {**page.meta, "count": len(page.rows), "next_after": page.next_after, "rows": page.rows}


@api.get("/votes", response={200: VotePage, **ERRORS}, summary="Votes (pseudonymised)")
def votes(
    request: HttpRequest,
    after: int | None = None,
    limit: int | None = None,
    detectid: int | None = None,
):
    """Every vote in id order; volunteers appear only as a stable pseudonym. Scope
    votes:read."""
    _use(request, "votes:read")
    page = science.vote_page(after=after, limit=limit, detectid=detectid)
    return {"count": len(page.rows), "next_after": page.next_after, "rows": page.rows}


@api.get("/models", response={200: list[ModelSummary], **ERRORS}, summary="Model versions")
def models(request: HttpRequest):
    """Every model version, newest first. Scope models:read."""
    _use(request, "models:read")
    return science.model_versions()


@api.get("/models/{pk}", response={200: ModelDetail, **ERRORS}, summary="One model and its card")
def model(request: HttpRequest, pk: int):
    """A model version with its card (metrics per S/N regime, data hash, code version).
    Scope models:read."""
    _use(request, "models:read")
    return science.model_version_detail(pk)


@api.get("/encoders", response={200: list[EncoderSummary], **ERRORS}, summary="Pretrained encoders")
def encoders(request: HttpRequest):
    """Every pretrained encoder (the CNN's trunks pretrained without labels; never a model
    version), newest first, retired ones too: its method, candidates, epochs, final loss,
    whether a retrain is offered it now (`offered`; `problem` says why not, or it is
    retired) and the model versions started from it (`models`). Scope models:read."""
    _use(request, "models:read")
    return science.encoders()


@api.get(
    "/encoders/{pk}", response={200: EncoderDetail, **ERRORS}, summary="One encoder and its card"
)
def encoder(request: HttpRequest, pk: int):
    """A pretrained encoder with its loss per epoch and its card (what it was pretrained
    on, the selection, the architecture, the weights' hash). Scope models:read."""
    _use(request, "models:read")
    return science.encoder_detail(pk)


@api.get(
    "/candidates/{detectid}/cutout.npy",
    response={200: None, **ERRORS},
    summary="Cutout as a numpy array",
    openapi_extra=_binary(NPY, "float32 array (5, 9, 100): summed image, then 4 fibres"),
)
def cutout_npy(request: HttpRequest, detectid: int):
    """Scope cutouts:read. Read with `numpy.load(io.BytesIO(body))`."""
    _use(request, "cutouts:read")
    return _bytes(science.cutout_npy(detectid), detectid, "cutout")


@api.get(
    "/candidates/{detectid}/spectrum.npy",
    response={200: None, **ERRORS},
    summary="Spectrum as a numpy array",
    openapi_extra=_binary(NPY, "float32 array (3, N): wavelength (A), flux, flux error"),
)
def spectrum_npy(request: HttpRequest, detectid: int):
    """Scope cutouts:read."""
    _use(request, "cutouts:read")
    return _bytes(science.spectrum_npy(detectid), detectid, "spectrum")


@api.get(
    "/candidates/{detectid}/cutout.png",
    response={200: None, **ERRORS},
    summary="Cutout as the PNG volunteers see",
    openapi_extra=_binary(PNG, "PNG image"),
)
def cutout_png(request: HttpRequest, detectid: int):
    """Scope cutouts:read."""
    _use(request, "cutouts:read")
    return FileResponse(open(science.cutout_png(detectid), "rb"), content_type="image/png")


def _bytes(body: bytes, detectid: int, what: str) -> HttpResponse:
    resp = HttpResponse(body, content_type="application/x-npy")
    resp["Content-Disposition"] = f'attachment; filename="{detectid}-{what}.npy"'
    return resp
