"""The caller's account (balance, recent ledger, webhook secret) and the public price list."""

from fastapi import APIRouter, Depends, Query, Request

from .. import accounts, jobs, pricing
from ..api_models import Account, PriceList, errors
from ..deps import caller, read_only, state

router = APIRouter(prefix="/v2", tags=["account"])


@router.get(
    "/me",
    summary="Your balance, your recent ledger entries and your webhook signing secret",
    operation_id="getAccount",
    response_model=Account,
    responses=errors(401, 422),
)
async def me(
    request: Request,
    who: accounts.Caller = Depends(caller),
    ledger_limit: int = Query(20, ge=0, le=500, alias="ledgerLimit"),
):
    settings = state(request).settings

    def read(tx):
        return accounts.balance(tx, who.user_id), accounts.ledger(tx, who.user_id, ledger_limit)

    balance, entries = await read_only(state(request).db, read)
    return {
        "user": who.name,
        "keyPrefix": who.key_prefix,
        "balance": balance,
        "topUpUrl": settings.top_up_url or None,
        "webhookSecret": who.webhook_secret,
        "ledger": [
            {
                "id": e["id"],
                "delta": e["delta"],
                "kind": e["kind"],
                "artworkId": e["artwork_id"],
                "note": e["note"],
                "balanceAfter": e["balance_after"],
                "createdAt": jobs.iso(e["created_at"]),
            }
            for e in entries
        ],
    }


@router.get(
    "/pricing",
    summary="Tokens per depth map, per model and resolution; where to top up",
    operation_id="getPricing",
    response_model=PriceList,
)
async def price_list(request: Request):
    return pricing.price_list(state(request).settings)
