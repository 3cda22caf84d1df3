"""Depth-map artworks: submit (charged on acceptance), look up, list, cancel, download results."""

import asyncio
import math
import re
import time
import uuid

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from .. import accounts, intake, jobs, outbox, pricing, processes, storage
from ..api_models import Artwork, ArtworkList, ErrorBody, errors
from ..deps import base_url, caller, read_only, state
from ..intake import RequestError
from ..parameters import DepthMapParameters

router = APIRouter(prefix="/v2/artworks", tags=["artworks"])

_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_MEDIA = {"png": "image/png", "exr": "image/x-exr"}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": DepthMapParameters.model_json_schema(ref_template="#/components/schemas/{model}")
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["image"],
                "properties": {
                    "image": {
                        "type": "string",
                        "format": "binary",
                        "description": "The picture (PNG, JPEG, WebP, TIFF or BMP).",
                    },
                    **{
                        k: {"type": "string", "description": "As in the JSON body."}
                        for k in DepthMapParameters.model_fields
                        if k != "imageUrl"
                    },
                },
            }
        },
    },
}


def _not_found(artwork_id):
    return RequestError(
        404,
        f"No artwork {artwork_id!r} among yours: check the id (GET /v2/artworks lists yours).",
        code="artwork_not_found",
    )


def _artwork_id(artwork_id: str) -> str:
    """The id as stored (a UUID), or 404 before any query: a NUL byte or a 10 kB path segment
    must not reach the database (PostgreSQL refuses NUL in text with an error)."""
    try:
        return str(uuid.UUID(artwork_id))
    except ValueError:
        raise _not_found(artwork_id[:80]) from None


async def _artwork_response(request, row, status_code=200, headers=None):
    body = jobs.to_api(row, base_url(request))
    if row["status"] == "starting":
        app = state(request)
        alive = await read_only(app.db, _job_threads_alive, app.settings)
        if not alive:
            body["notice"] = (
                "No worker is running on this server right now: your depth map waits in the queue "
                "and starts when one does (cancel it to get your tokens back)."
            )
    return JSONResponse(body, status_code=status_code, headers=headers)


def _job_threads_alive(tx, settings):
    return processes.job_threads_alive(tx, within=max(settings.lease_seconds, 15.0))


@router.post(
    "/depth-map",
    status_code=202,
    summary="Generate a depth map (charged when accepted)",
    operation_id="createDepthMap",
    openapi_extra={"requestBody": _REQUEST_BODY},
    response_model=Artwork,
    responses={
        **errors(400, 401, 409, 413, 415, 429, 503),
        200: {"model": Artwork, "description": "Finished within `Prefer: wait=N`"},
        202: {"description": "Accepted; poll GET /v2/artworks/{id} or wait for the webhook"},
        402: {"model": ErrorBody, "description": "Not enough tokens: needed, balance, shortfall; nothing charged"},
        422: {"model": ErrorBody, "description": "Invalid parameters or picture; nothing charged"},
    },
)
async def create_depth_map(request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    settings = app.settings
    if app.limiter is not None:
        allowed, retry_after = await run_in_threadpool(app.limiter.allow, who.key_prefix)
        if not allowed:
            raise RequestError(
                429,
                f"Too many submissions with this key: retry in {math.ceil(retry_after)} s.",
                code="rate_limited",
                retry_after=retry_after,
            )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        params, upload = await intake.read_form(request, settings.max_upload_bytes + 64 * 1024)
    elif ctype in ("application/json", ""):
        # A data URI grows the picture by 4/3, so the JSON body may be that much larger.
        params = intake.parse_json(await intake.read_body(request, settings.max_upload_bytes * 4 // 3 + 64 * 1024))
        upload = None
    else:
        raise RequestError(
            415,
            f"Content-Type {ctype!r} is not accepted: send application/json "
            "(imageUrl or a data URI) or multipart/form-data (an 'image' file).",
            code="unsupported_media_type",
        )
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise RequestError(
            400, "Idempotency-Key must be 1 to 255 characters (a UUID is a good choice).", code="bad_idempotency_key"
        )
    model, model_id = intake.resolve_model(params, settings)
    digest = intake.request_hash(params, upload) if key is not None else None
    if key is not None:  # a retry: answer before fetching anything again
        earlier = await read_only(app.db, jobs.replay, who.user_id, key, digest, app.settings.idempotency_hours * 3600)
        if earlier is not None:
            return await _accepted(request, app, who, earlier, True)
    if intake.needs_network(params):
        image = await app.fetches.run(who.key_prefix, _check_source, params, upload, settings)
    else:
        image = await run_in_threadpool(_check_source, params, upload, settings)
    row, replayed = await run_in_threadpool(_submit, app, who, params, model, model_id, image, key, digest)
    if not replayed and app.pool is not None:
        app.pool.wake()
    return await _accepted(request, app, who, row, replayed)


async def _accepted(request, app, who, row, replayed):
    headers = {"Location": f"{base_url(request)}/v2/artworks/{row['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    status = 202  # accepted, as the first answer said (replays included)
    wait = _prefer_wait(request, app.settings)
    if wait:
        row = await _wait_final(app, who, row, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
        status = 200 if row["status"] in jobs.FINAL else 202
    return await _artwork_response(request, row, status, headers)


def _check_source(params, upload, settings) -> bytes:
    intake.check_webhook(params, settings)
    return intake.fetch_source(params, upload, settings)


def _submit(app, who, params, model, model_id, image, key, digest):
    settings = app.settings
    cost = pricing.cost(settings, model, params.resolutionLowerLimit)
    try:
        with app.db.transaction() as tx:
            return jobs.submit(
                tx,
                who,
                intake.public_parameters(params, model),
                model_id,
                cost,
                image,
                key,
                digest,
                settings.idempotency_hours * 3600,
            )
    except accounts.InsufficientTokens as exc:
        raise _payment_required(settings, exc) from None


def _payment_required(settings, exc):
    top_up = f" Top up at {settings.top_up_url}." if settings.top_up_url else ""
    return RequestError(
        402,
        f"This depth map costs {exc.needed} tokens and your balance is {exc.balance}: "
        f"get {exc.shortfall} more.{top_up} Nothing was charged.",
        code="insufficient_tokens",
        errors={
            "needed": exc.needed,
            "balance": exc.balance,
            "shortfall": exc.shortfall,
            "topUpUrl": settings.top_up_url or None,
        },
    )


def _prefer_wait(request, settings):
    match = _PREFER_WAIT.search(request.headers.get("prefer", ""))
    return min(float(match.group(1)), settings.max_wait_seconds) if match else 0


async def _wait_final(app, who, row, seconds):
    deadline = time.monotonic() + seconds
    delay = 0.05
    while row["status"] not in jobs.FINAL and time.monotonic() < deadline:
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 1.5, 0.5)
        row = await read_only(app.db, jobs.get, who.user_id, row["id"])
    return row


@router.get(
    "",
    summary="Your artworks, newest first",
    operation_id="listArtworks",
    response_model=ArtworkList,
    responses=errors(401, 422),
)
async def list_artworks(
    request: Request,
    who: accounts.Caller = Depends(caller),
    offset: int = Query(0, ge=0, le=1_000_000_000),
    limit: int = Query(50, ge=1, le=500),
):
    app = state(request)

    rows, total = await read_only(app.db, jobs.listing, who.user_id, offset, limit)
    url = base_url(request)
    return {"artworks": [jobs.to_api(r, url) for r in rows], "offset": offset, "limit": limit, "total": total}


@router.get(
    "/{artwork_id}",
    summary="One of your artworks (add `Prefer: wait=N` to wait for it to finish)",
    operation_id="getArtwork",
    response_model=Artwork,
    responses=errors(401, 404),
)
async def get_artwork(artwork_id: str, request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    artwork_id = _artwork_id(artwork_id)
    row = await read_only(app.db, jobs.get, who.user_id, artwork_id)
    if row is None:
        raise _not_found(artwork_id)
    wait = _prefer_wait(request, app.settings)
    headers = {}
    if wait:
        row = await _wait_final(app, who, row, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
    return await _artwork_response(request, row, 200, headers)


@router.post(
    "/{artwork_id}/cancel",
    summary="Cancel; refunded when it had not started processing",
    operation_id="cancelArtwork",
    response_model=Artwork,
    responses=errors(401, 404, 409),
)
async def cancel_artwork(artwork_id: str, request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    artwork_id = _artwork_id(artwork_id)

    def cancel():
        with app.db.transaction() as tx:
            return jobs.cancel(tx, who.user_id, artwork_id, on_final=outbox.event_writer(app.settings))

    row = await run_in_threadpool(cancel)
    if row is None:
        raise _not_found(artwork_id)
    # A processing job's worker already holds the picture; nobody needs the stored copy now.
    await run_in_threadpool(app.pool.storage.delete, artwork_id, [storage.INPUT])
    app.pool.webhooks.wake()
    return await _artwork_response(request, row)


@router.get(
    "/{artwork_id}/results/{name}",
    summary="Download a result: depth.png (16-bit) or depth.exr (float)",
    operation_id="downloadResult",
    response_class=Response,
    responses={
        **errors(401, 404, 409, 410),
        200: {"content": {"image/png": {}, "image/x-exr": {}}, "description": "The file"},
    },
)
async def download_result(artwork_id: str, name: str, request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    artwork_id = _artwork_id(artwork_id)
    row = await read_only(app.db, jobs.get, who.user_id, artwork_id)
    if row is None:
        raise _not_found(artwork_id)
    if row["status"] != "succeeded":
        raise RequestError(
            409, f"This artwork is {row['status']}; results exist once it has succeeded.", code="not_succeeded"
        )
    if name not in jobs.RESULT_FILES.values():
        raise RequestError(
            404,
            f"No result {name[:40]!r}: choose one of {', '.join(jobs.RESULT_FILES.values())}.",
            code="result_not_found",
        )
    data = None if row["results_expired_at"] else await run_in_threadpool(app.pool.storage.get, artwork_id, name)
    if data is None:
        days = app.settings.result_retention_hours / 24
        raise RequestError(
            410,
            f"This result is no longer stored on the server (results are kept {days:g} days): generate it again.",
            code="result_gone",
        )
    return Response(
        data,
        media_type=_MEDIA[name.rsplit(".", 1)[1]],
        headers={"Content-Disposition": f'attachment; filename="{artwork_id}-{name}"'},
    )
