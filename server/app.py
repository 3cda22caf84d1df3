"""The FastAPI application: routers, uniform error bodies, and the worker threads' lifetime."""

import logging
import math
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import migrate
from .config import Settings, load_settings
from .db import open_database
from .deps import AppState
from .fetching import FetchPool
from .intake import RequestError
from .jobs import Conflict
from .ratelimit import RateLimiter
from .requestid import RequestIdMiddleware, current_request_id
from .routers import account, artworks, health
from .worker import WorkerPool

log = logging.getLogger("fathom.server")

# The code of an error that names none itself: one per status.
DEFAULT_CODES = {
    400: "bad_request",
    401: "unauthorized",
    402: "insufficient_tokens",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


def error_body(status: int, message: str, code: str = None, **extra) -> dict:
    """Every error: {statusCode, error, message, code} (the public API's shape), the request id
    (to quote to the operator: the server log has the details) and specifics."""
    return {
        "statusCode": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "code": code or DEFAULT_CODES.get(status, "error"),
        "requestId": current_request_id(),
        **{k: v for k, v in extra.items() if v is not None},
    }


def error_headers(status: int, retry_after: float = None) -> dict:
    headers = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="fathom"'
    if retry_after is not None:
        # Rounded up: a client waiting exactly this long must find the limit lifted.
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return headers or None


def _warn_missing_models(settings):
    from engine.store import ModelStore

    store = ModelStore(settings.model_dir or None)
    for name, cid in {**settings.models, **settings.models_v3}.items():
        try:
            store.resolve(cid, allow_network=False)
        except Exception as exc:  # jobs for it will fail and be refunded until it is installed
            log.warning(
                "model %r (%s) is not usable yet: %s Install it with `python -m server.admin download-model %s`.",
                name,
                cid,
                exc,
                name,
            )


def create_app(settings: Settings = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app):
        db = open_database(settings.database)
        if settings.auto_migrate:
            migrate.migrate(db)
        migrate.check(db)
        settings.results_dir.mkdir(parents=True, exist_ok=True)
        limiter = None
        if settings.rate_per_second > 0:
            limiter = RateLimiter(db, settings.rate_per_second, settings.rate_burst)
        _warn_missing_models(settings)
        pool = WorkerPool(db, settings, settings.workers)
        fetches = FetchPool(settings.fetch_concurrency, settings.fetch_per_key, settings.fetch_timeout_seconds)
        app.state.fathom = AppState(settings, db, limiter, pool, fetches)
        pool.start()
        log.info(
            "Fathom depth server: %s, %d worker thread(s), results in %s",
            settings.database.split("@")[-1],
            settings.workers,
            settings.results_dir,
        )
        try:
            yield
        finally:
            fetches.close()
            pool.close()
            db.close()

    app = FastAPI(
        title="Fathom depth server",
        version="1.0.0",
        lifespan=lifespan,
        description="Depth maps (Depth Anything) billed in tokens. Authenticate with `Authorization: Bearer <key>`.",
    )
    for module in (artworks, account, health):
        app.include_router(module.router)
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        extra = exc.errors if isinstance(exc.errors, dict) else {"errors": exc.errors}
        if exc.retry_after is not None:
            extra["retryAfter"] = math.ceil(exc.retry_after)
        return JSONResponse(
            error_body(exc.status, str(exc), code=exc.code, **extra),
            exc.status,
            headers=error_headers(exc.status, exc.retry_after),
        )

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return JSONResponse(error_body(exc.status, str(exc), code=exc.code), exc.status)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception):
        # The traceback goes to the log (with the request id); the client gets no internals.
        rid = request.scope.get("fathom_request_id")
        log.error("[%s] unhandled error on %s %s", rid, request.method, request.url.path, exc_info=exc)
        body = error_body(500, f"The server failed on this request; quote request id {rid} to its operator.")
        return JSONResponse({**body, "requestId": rid}, 500, headers={"X-Request-Id": rid} if rid else None)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or e["loc"][0], "message": e["msg"]} for e in exc.errors()
        ]
        message = "Invalid request: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(error_body(422, message, code="invalid_parameters", errors=errors), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        code = None
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path[:200]} (see /docs or /openapi.json)."
            code = "no_such_endpoint"
        headers = {**(exc.headers or {}), **(error_headers(exc.status_code) or {})}
        return JSONResponse(error_body(exc.status_code, message, code=code), exc.status_code, headers=headers or None)

    return app
