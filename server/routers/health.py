"""Liveness: answers without touching the database (also the benchmarks' no-op baseline)."""
from fastapi import APIRouter

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The server is up")
async def healthz():
    return {"ok": True}
