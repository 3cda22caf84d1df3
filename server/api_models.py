"""The API's answers as pydantic models: what /openapi.json promises for every route."""

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field


class FieldError(BaseModel):
    field: str
    message: str


class ErrorBody(BaseModel):
    """Every error. ``code`` is stable (switch on it); ``message`` is for people; the request id is
    the one in the X-Request-Id header and the server log. Some errors add details (``errors``;
    402: needed, balance, shortfall, topUpUrl; 429/503: retryAfter)."""

    model_config = ConfigDict(extra="allow")
    statusCode: int
    error: str = Field(description="The HTTP status phrase.")
    message: str
    code: str = Field(
        description="Stable machine-readable code, e.g. insufficient_tokens, rate_limited, "
        "invalid_parameters, artwork_not_found, too_large, timeout."
    )
    requestId: Optional[str] = None
    errors: Optional[list[FieldError]] = None


class Artwork(BaseModel):
    id: str
    artworkType: Literal["depth_map"]
    parameters: dict
    duration: float = Field(description="Seconds from the first claim to the end; 0 until then.")
    results: list[str] = Field(description="Download links (depth.png, depth.exr) once succeeded.")
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    createdAt: str
    cost: int = Field(
        description="Tokens charged when accepted (refunded when it failed or was canceled before it started)."
    )
    error: Optional[str] = Field(None, description="Failed: what happened, for people.")
    errorCode: Optional[
        Literal["image_unreadable", "model_unavailable", "inference_failed", "timeout", "worker_lost"]
    ] = Field(None, description="Failed: the stable reason.")
    notice: Optional[str] = Field(None, description="Starting: why it may wait (no worker running).")


class ArtworkList(BaseModel):
    artworks: list[Artwork]
    offset: int
    limit: int
    total: int


class LedgerEntry(BaseModel):
    id: int
    delta: int
    kind: Literal["charge", "refund", "grant", "adjust"]
    artworkId: Optional[str]
    note: str
    balanceAfter: int
    createdAt: str


class Account(BaseModel):
    user: str
    keyPrefix: str
    balance: int
    topUpUrl: Optional[str]
    webhookSecret: str = Field(description="Verify webhooks with it (Standard Webhooks, whsec_...).")
    ledger: list[LedgerEntry]


class TierPrice(BaseModel):
    resolutionUpTo: int
    tokens: int


class ModelPrice(BaseModel):
    model: str
    catalogueId: str
    tokens: list[TierPrice]


class PriceList(BaseModel):
    currency: Literal["tokens"]
    models: list[ModelPrice]
    modelsVersion3: list[ModelPrice]
    defaultModel: str
    topUpUrl: Optional[str]


class Health(BaseModel):
    ok: bool


def errors(*statuses) -> dict:
    """``responses=`` entries documenting the error body for these statuses."""
    return {status: {"model": ErrorBody} for status in statuses}
