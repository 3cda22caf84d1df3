"""The FastAPI application: routers, uniform error bodies, and the worker threads' lifetime."""
import logging
from contextlib import asynccontextmanager
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .config import Settings, load_settings
from .db import open_database
from .deps import AppState
from .intake import RequestError
from .jobs import Conflict
from .routers import account, artworks, health
from .worker import WorkerPool

log = logging.getLogger("fathom.server")


def error_body(status: int, message: str, **extra) -> dict:
    """Every error: {statusCode, error, message} (the public API's shape) plus specifics."""
    return {"statusCode": status, "error": HTTPStatus(status).phrase, "message": message,
            **{k: v for k, v in extra.items() if v is not None}}


def _warn_missing_models(settings):
    from engine.store import ModelStore

    store = ModelStore(settings.model_dir or None)
    for name, cid in {**settings.models, **settings.models_v3}.items():
        try:
            store.resolve(cid, allow_network=False)
        except Exception as exc:  # jobs for it will fail and be refunded until it is installed
            log.warning("model %r (%s) is not usable yet: %s Install it with "
                        "`python -m server.admin download-model %s`.", name, cid, exc, name)


def create_app(settings: Settings = None) -> FastAPI:
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app):
        db = open_database(settings.database)
        settings.results_dir.mkdir(parents=True, exist_ok=True)
        limiter = None
        if settings.rate_per_second > 0:
            from .ratelimit import RateLimiter
            limiter = RateLimiter(settings.rate_per_second, settings.rate_burst)
        _warn_missing_models(settings)
        pool = WorkerPool(db, settings, settings.workers)
        app.state.fathom = AppState(settings, db, limiter, pool)
        pool.start()
        log.info("Fathom depth server: %s, %d worker thread(s), results in %s",
                 settings.database.split("@")[-1], settings.workers, settings.results_dir)
        try:
            yield
        finally:
            pool.close()
            db.close()

    app = FastAPI(title="Fathom depth server", version="1.0.0", lifespan=lifespan,
                  description="Depth maps (Depth Anything) billed in tokens. Authenticate with "
                              "`Authorization: Bearer <key>`.")
    for module in (artworks, account, health):
        app.include_router(module.router)

    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError):
        extra = exc.errors if isinstance(exc.errors, dict) else {"errors": exc.errors}
        headers = {"Retry-After": str(max(1, round(exc.errors["retryAfter"])))} if exc.status == 429 else None
        return JSONResponse(error_body(exc.status, str(exc), code=exc.code, **extra), exc.status, headers=headers)

    @app.exception_handler(Conflict)
    async def conflict(request: Request, exc: Conflict):
        return JSONResponse(error_body(exc.status, str(exc)), exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = [{"field": ".".join(str(p) for p in e["loc"][1:]) or e["loc"][0], "message": e["msg"]}
                  for e in exc.errors()]
        message = "Invalid request: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse(error_body(422, message, errors=errors), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = f"No such endpoint: {request.method} {request.url.path} (see /docs or /openapi.json)."
        return JSONResponse(error_body(exc.status_code, message), exc.status_code, headers=exc.headers)

    return app
