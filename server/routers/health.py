"""Liveness (answers without touching the database; also the benchmarks' no-op baseline) and metrics."""

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse

from .. import metrics
from ..api_models import Health
from ..deps import state

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
    def read():
        with state(request).db.transaction(readonly=True) as tx:
            return metrics.render(tx)

    return PlainTextResponse(await run_in_threadpool(read), media_type="text/plain; version=0.0.4")
