"""Depth-map artworks: submit (charged on acceptance), look up, list, cancel, download results."""
import asyncio
import re
import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import accounts, intake, jobs, pricing
from ..deps import base_url, caller, state
from ..intake import RequestError
from ..parameters import DepthMapParameters

router = APIRouter(prefix="/v2/artworks", tags=["artworks"])

_PREFER_WAIT = re.compile(r"(?:^|[,;\s])wait\s*=\s*(\d+(?:\.\d+)?)", re.IGNORECASE)
_MEDIA = {"png": "image/png", "exr": "image/x-exr"}
_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": DepthMapParameters.model_json_schema(ref_template="#/components/schemas/{model}")},
        "multipart/form-data": {"schema": {
            "type": "object", "required": ["image"],
            "properties": {"image": {"type": "string", "format": "binary",
                                     "description": "The picture (PNG, JPEG, WebP, TIFF or BMP)."},
                           **{k: {"type": "string", "description": "As in the JSON body."}
                              for k in DepthMapParameters.model_fields if k != "imageUrl"}}}},
    },
}


def _not_found(artwork_id):
    return RequestError(404, f"No artwork {artwork_id} among yours: check the id (GET /v2/artworks lists yours).")


async def _artwork_response(request, row, status_code=200, headers=None):
    return JSONResponse(jobs.to_api(row, base_url(request)), status_code=status_code, headers=headers)


@router.post("/depth-map", status_code=202, summary="Generate a depth map (charged when accepted)",
             openapi_extra={"requestBody": _REQUEST_BODY},
             responses={202: {"description": "Accepted; poll GET /v2/artworks/{id} or wait for the webhook"},
                        402: {"description": "Not enough tokens: needed, balance, shortfall; nothing charged"},
                        422: {"description": "Invalid parameters or picture; nothing charged"}})
async def create_depth_map(request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    settings = app.settings
    if app.limiter is not None:
        allowed, retry_after = app.limiter.allow(who.key_prefix)
        if not allowed:
            raise RequestError(429, f"Too many submissions with this key: retry in {retry_after:.1f} s.",
                               code="rate_limited", errors={"retryAfter": retry_after})
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        intake.check_length(request, settings.max_upload_bytes + 64 * 1024)
        try:  # Starlette bounds every part, so a body without Content-Length is bounded too
            form = await request.form(max_files=1, max_fields=32, max_part_size=settings.max_upload_bytes)
        except StarletteHTTPException as exc:
            status = 413 if "size" in str(exc.detail).lower() else 400
            raise RequestError(status, f"The multipart body cannot be used: {exc.detail}.") from None
        params, upload = intake.parse_form(form)
        upload = None if upload is None else await upload.read()
    elif ctype in ("application/json", ""):
        # A data URI grows the picture by 4/3, so the JSON body may be that much larger.
        params = intake.parse_json(await intake.read_body(request, settings.max_upload_bytes * 4 // 3 + 64 * 1024))
        upload = None
    else:
        raise RequestError(415, f"Content-Type {ctype!r} is not accepted: send application/json "
                                "(imageUrl or a data URI) or multipart/form-data (an 'image' file).")
    key = request.headers.get("idempotency-key")
    if key is not None and not 1 <= len(key) <= 255:
        raise RequestError(400, "Idempotency-Key must be 1 to 255 characters (a UUID is a good choice).")
    row, replayed = await run_in_threadpool(_submit, app, who, params, upload, key)
    if not replayed and app.pool is not None:
        app.pool.wake()
    headers = {"Location": f"{base_url(request)}/v2/artworks/{row['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    status = 202  # accepted, as the first answer said (replays included)
    wait = _prefer_wait(request, settings)
    if wait:
        row = await _wait_final(app, who, row, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
        status = 200 if row["status"] in jobs.FINAL else 202
    return await _artwork_response(request, row, status, headers)


def _submit(app, who, params, upload, key):
    settings = app.settings
    model, model_id = intake.resolve_model(params, settings)
    intake.check_webhook(params, settings)
    digest = intake.request_hash(params, upload) if key is not None else None
    if key is not None:  # a retry: answer before fetching anything again
        with app.db.transaction(readonly=True) as tx:
            earlier = jobs.replay(tx, who.user_id, key, digest, settings.idempotency_hours * 3600)
        if earlier is not None:
            return earlier, True
    image = intake.fetch_source(params, upload, settings)
    cost = pricing.cost(settings, model, params.resolutionLowerLimit)
    try:
        with app.db.transaction() as tx:
            return jobs.submit(tx, who, intake.public_parameters(params, model), model_id, cost, image, key, digest,
                               settings.idempotency_hours * 3600)
    except accounts.InsufficientTokens as exc:
        raise _payment_required(settings, exc) from None


def _payment_required(settings, exc):
    top_up = f" Top up at {settings.top_up_url}." if settings.top_up_url else ""
    return RequestError(402, f"This depth map costs {exc.needed} tokens and your balance is {exc.balance}: "
                             f"get {exc.shortfall} more.{top_up} Nothing was charged.",
                        code="insufficient_tokens",
                        errors={"needed": exc.needed, "balance": exc.balance, "shortfall": exc.shortfall,
                                "topUpUrl": settings.top_up_url or None})


def _prefer_wait(request, settings):
    match = _PREFER_WAIT.search(request.headers.get("prefer", ""))
    return min(float(match.group(1)), settings.max_wait_seconds) if match else 0


def _read(app, uid, artwork_id):
    with app.db.transaction(readonly=True) as tx:
        return jobs.get(tx, uid, artwork_id)


async def _wait_final(app, who, row, seconds):
    deadline = time.monotonic() + seconds
    delay = 0.05
    while row["status"] not in jobs.FINAL and time.monotonic() < deadline:
        await asyncio.sleep(min(delay, max(deadline - time.monotonic(), 0)))
        delay = min(delay * 1.5, 0.5)
        row = await run_in_threadpool(_read, app, who.user_id, row["id"])
    return row


@router.get("", summary="Your artworks, newest first")
async def list_artworks(request: Request, who: accounts.Caller = Depends(caller),
                        offset: int = Query(0, ge=0), limit: int = Query(50, ge=1, le=500)):
    app = state(request)

    def read():
        with app.db.transaction(readonly=True) as tx:
            return jobs.listing(tx, who.user_id, offset, limit)

    rows, total = await run_in_threadpool(read)
    url = base_url(request)
    return {"artworks": [jobs.to_api(r, url) for r in rows], "offset": offset, "limit": limit, "total": total}


@router.get("/{artwork_id}", summary="One of your artworks (add `Prefer: wait=N` to wait for it to finish)")
async def get_artwork(artwork_id: str, request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    row = await run_in_threadpool(_read, app, who.user_id, artwork_id)
    if row is None:
        raise _not_found(artwork_id)
    wait = _prefer_wait(request, app.settings)
    headers = {}
    if wait:
        row = await _wait_final(app, who, row, wait)
        headers["Preference-Applied"] = f"wait={wait:g}"
    return await _artwork_response(request, row, 200, headers)


@router.post("/{artwork_id}/cancel", summary="Cancel; refunded when it had not started processing")
async def cancel_artwork(artwork_id: str, request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)

    def cancel():
        with app.db.transaction() as tx:
            return jobs.cancel(tx, who.user_id, artwork_id)

    row = await run_in_threadpool(cancel)
    if row is None:
        raise _not_found(artwork_id)
    from ..notify import notify_final
    await run_in_threadpool(notify_final, app.db, app.settings, row)
    return await _artwork_response(request, row)


@router.get("/{artwork_id}/results/{name}", summary="Download a result: depth.png (16-bit) or depth.exr (float)",
            response_class=FileResponse)
async def download_result(artwork_id: str, name: str, request: Request, who: accounts.Caller = Depends(caller)):
    app = state(request)
    row = await run_in_threadpool(_read, app, who.user_id, artwork_id)
    if row is None:
        raise _not_found(artwork_id)
    if row["status"] != "succeeded":
        raise RequestError(409, f"This artwork is {row['status']}; results exist once it has succeeded.")
    if name not in jobs.RESULT_FILES.values():
        raise RequestError(404, f"No result {name!r}: choose one of {', '.join(jobs.RESULT_FILES.values())}.")
    path = app.settings.results_dir / artwork_id / name
    if not path.is_file():
        raise RequestError(410, "This result's file is no longer stored on the server: generate it again.")
    return FileResponse(path, media_type=_MEDIA[path.suffix[1:]], filename=f"{artwork_id}-{name}")
