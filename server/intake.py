"""Turning a depth-map request (JSON or multipart) into checked parameters and picture bytes.

Everything that can be refused is refused here, before any token is charged: the body's size
and syntax, the parameters, the model, the image's source (upload, data URI or a URL fetched
with server.security's SSRF rules), its format and its pixel count.
"""

import hashlib
import io
import json

from pydantic import ValidationError

from . import pricing, security
from .parameters import DepthMapParameters


class RequestError(Exception):
    """A request the client must change: HTTP ``status`` with a message, a stable ``code``, optional
    details, and for 429/503 the seconds after which a retry can succeed."""

    def __init__(self, status: int, message: str, errors=None, code=None, retry_after=None):
        self.status, self.errors, self.code, self.retry_after = status, errors, code, retry_after
        super().__init__(message)


def check_length(request, limit: int):
    announced = request.headers.get("content-length")
    if announced and announced.isdigit() and int(announced) > limit:
        raise _too_large(limit)


async def limited_stream(request, limit: int):
    """The body's chunks, refused with 413 as soon as it is announced or turns out larger than
    ``limit``, whatever the transfer encoding (chunked bodies announce nothing)."""
    check_length(request, limit)
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        yield chunk


async def read_body(request, limit: int) -> bytes:
    return b"".join([chunk async for chunk in limited_stream(request, limit)])


async def read_form(request, limit: int) -> tuple:
    """(parameters, uploaded bytes or None) from a multipart body read through ``limited_stream``:
    Starlette's own form reading bounds the non-file fields only, so a chunked upload could grow
    without end."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    parser = MultiPartParser(
        request.headers, limited_stream(request, limit), max_files=1, max_fields=32, max_part_size=64 * 1024
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise RequestError(400, f"The multipart body cannot be used: {exc.message}.", code="bad_multipart") from None
    try:
        params, upload = parse_form(form)
        return params, None if upload is None else await upload.read()
    finally:
        await form.close()


def _too_large(limit):
    return RequestError(
        413,
        f"The request is larger than this server's limit of {limit // (1024 * 1024)} MiB: "
        "send a smaller picture (the network sees at most 2048 pixels on its short side).",
        code="too_large",
    )


def _validation_errors(exc: ValidationError) -> list:
    errors = []
    for e in exc.errors(include_url=False):
        field = ".".join(str(p) for p in e["loc"]) or "body"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown parameter; known: {', '.join(DepthMapParameters.model_fields)}"
        errors.append({"field": field, "message": msg})
    return errors


def _invalid(errors):
    return RequestError(
        422,
        "Invalid parameters: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors),
        errors=errors,
        code="invalid_parameters",
    )


def parse_json(body: bytes) -> DepthMapParameters:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestError(
            400,
            f"The body is not valid JSON{where}: send a JSON object like "
            '{"imageUrl": "https://..."} with Content-Type: application/json.',
            code="bad_json",
        ) from None
    except RecursionError:  # thousands of nested [ or {: the parameters are never nested
        raise RequestError(
            400,
            "The body's JSON is nested too deeply: send a flat object of parameters like "
            '{"imageUrl": "https://..."}.',
            code="bad_json",
        ) from None
    if not isinstance(data, dict):
        raise RequestError(400, "The body must be a JSON object of parameters.", code="bad_json")
    try:
        return DepthMapParameters.model_validate(data, strict=False)
    except ValidationError as exc:
        raise _invalid(_validation_errors(exc)) from None


def parse_form(form) -> tuple:
    """(parameters, uploaded bytes or None) from a multipart form; the file field is ``image``."""
    fields, upload = {}, None
    for name, value in form.multi_items():
        if name in ("image", "file"):
            if isinstance(value, str):
                raise RequestError(
                    422,
                    f"Form field {name!r} must be the picture file (sent with a filename, "
                    f"as `curl -F {name}=@picture.png`), not text.",
                    code="image_not_a_file",
                )
            upload = value
        elif isinstance(value, str):
            fields[name] = value
        else:
            raise RequestError(
                422, f"Form field {name!r} is a file; only 'image' may be a file.", code="unexpected_file"
            )
    try:
        params = DepthMapParameters.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(_validation_errors(exc)) from None
    return params, upload


def resolve_model(params: DepthMapParameters, settings) -> tuple:
    """(API model name, engine catalogue id), or 422 naming what this server has."""
    models = pricing.model_names(settings, params.useVersion3)
    name = params.model or (settings.default_model if not params.useVersion3 else next(iter(models), None))
    if name in models:
        return name, models[name]
    family = "Depth Anything V3" if params.useVersion3 else "Depth Anything V2"
    have = ", ".join(sorted(models)) or "none"
    raise _invalid(
        [
            {
                "field": "model",
                "message": f"{family} model {name!r} is not available on this server; available: {have}"
                " (GET /v2/pricing lists them)",
            }
        ]
    )


def check_picture(data: bytes, settings, where: str) -> str:
    """The picture's format, after checking its type and pixel count from the header only."""
    from PIL import Image, UnidentifiedImageError

    fmt = security.sniff_image_format(data)
    if fmt is None:
        raise RequestError(422, f"{where} is not a PNG, JPEG, WebP, TIFF or BMP image.", code="bad_format")
    try:
        with Image.open(io.BytesIO(data), formats=[fmt.upper()]) as im:
            w, h = im.size
    except Image.DecompressionBombError:  # Pillow's own guard, far above any limit we allow
        raise _too_many_pixels(where, "more than 178 million pixels", settings) from None
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise RequestError(422, f"{where} cannot be read as {fmt.upper()}: {exc}.", code="bad_image") from None
    if w * h > settings.max_pixels:
        raise _too_many_pixels(where, f"{w}x{h} = {w * h:,} pixels", settings)
    return fmt


def _too_many_pixels(where, size, settings):
    return RequestError(
        422,
        f"{where} has {size}; this server accepts at most {settings.max_pixels:,}. Scale it down first.",
        code="too_many_pixels",
    )


def fetch_source(params: DepthMapParameters, upload: bytes, settings) -> bytes:
    """The picture's bytes, from the upload, a data URI or the image URL (fetched safely)."""
    url = params.imageUrl
    if upload is not None and url:
        raise RequestError(
            422, "Send the picture once: either the 'image' upload or imageUrl, not both.", code="two_pictures"
        )
    if upload is not None:
        data, where = upload, "The uploaded file"
        if not data:
            raise RequestError(422, "The uploaded file is empty.", code="bad_image")
    elif not url:
        raise _invalid(
            [
                {
                    "field": "imageUrl",
                    "message": "required: an http(s) URL or a data: URI "
                    "(or upload the file as multipart field 'image')",
                }
            ]
        )
    else:
        try:
            if url[:5].lower() == "data:":
                data, where = security.decode_data_uri(url, max_bytes=settings.max_upload_bytes), "The data URI's image"
            else:
                data = security.fetch_image(
                    url,
                    max_bytes=settings.max_upload_bytes,
                    allowlist=settings.url_allowlist,
                    timeout=settings.fetch_timeout_seconds,
                )
                where = "The image at imageUrl"
        except security.FetchError as exc:
            status = 413 if exc.code == "too_large" else 422
            raise RequestError(status, str(exc), code=exc.code) from None
    check_picture(data, settings, where)
    return data


def needs_network(params: DepthMapParameters) -> bool:
    """Whether checking this request fetches an image or resolves a host name (then it runs in the
    bounded fetch pool, not the request thread pool)."""
    return bool(params.webhook) or bool(params.imageUrl and params.imageUrl[:5].lower() != "data:")


def check_webhook(params: DepthMapParameters, settings):
    if params.webhook:
        try:
            security.check_url(params.webhook, settings.url_allowlist)
        except security.FetchError as exc:
            raise _invalid([{"field": "webhook", "message": str(exc)}]) from None


def public_parameters(params: DepthMapParameters, model: str) -> dict:
    """The parameters as the artwork shows them: defaults filled in, the image not repeated when inline."""
    shown = params.model_dump()
    shown["model"] = model
    if shown["imageUrl"] and shown["imageUrl"][:5].lower() == "data:":
        shown["imageUrl"] = None  # a data URI can be megabytes; the artwork keeps no copy of it
    if shown["webhook"] is None:
        del shown["webhook"]
    return shown


def request_hash(params: DepthMapParameters, upload) -> str:
    """What makes two submissions "the same request" for an Idempotency-Key: the parameters and
    the picture (the uploaded or inline bytes, or the URL as given)."""
    canonical = params.model_dump()
    url = canonical.pop("imageUrl") or ""
    if upload is not None or url[:5].lower() == "data:":
        canonical["image"] = hashlib.sha256(upload if upload is not None else url.encode()).hexdigest()
    else:
        canonical["imageUrl"] = url
    return hashlib.sha256(json.dumps(canonical, sort_keys=True).encode()).hexdigest()
