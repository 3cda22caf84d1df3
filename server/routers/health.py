"""Liveness (answers without touching the database; also the benchmarks' no-op baseline) and metrics."""

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from .. import metrics
from ..api_models import Health
from ..deps import read_only, state

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The server is up", operation_id="healthz", response_model=Health)
async def healthz():
    return {"ok": True}


@router.get(
    "/metrics",
    summary="Prometheus metrics of the whole deployment",
    operation_id="metrics",
    response_class=PlainTextResponse,
)
async def prometheus(request: Request):
    return PlainTextResponse(await read_only(state(request).db, metrics.render), media_type="text/plain; version=0.0.4")
