"""What every request handler needs: the app's state and the authenticated caller."""

from dataclasses import dataclass

from fastapi import Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from . import accounts
from .config import Settings
from .intake import RequestError


@dataclass
class AppState:
    settings: Settings
    db: object
    limiter: object = None
    pool: object = None
    fetches: object = None


def state(request: Request) -> AppState:
    return request.app.state.fathom


def base_url(request: Request) -> str:
    configured = state(request).settings.public_url
    return (configured or str(request.base_url)).rstrip("/")


async def read_only(db, read, *args):
    """``read(tx, *args)`` in a read-only transaction, on a worker thread (the database calls block)."""

    def run():
        with db.transaction(readonly=True) as tx:
            return read(tx, *args)

    return await run_in_threadpool(run)


# Declared for OpenAPI (the "Authorize" button); the 401s are ours, with a code and a way out.
bearer = HTTPBearer(auto_error=False, description="Your API key: `Authorization: Bearer fth_...`.")


async def caller(request: Request, credentials: HTTPAuthorizationCredentials = Security(bearer)) -> accounts.Caller:
    """The user behind ``Authorization: Bearer <key>``, or 401 saying what to send."""
    key = credentials.credentials if credentials is not None else ""
    if not key.strip():
        raise RequestError(
            401,
            "Send your API key as 'Authorization: Bearer <key>' "
            "(an operator creates keys with `python -m server.admin create-key USER`).",
            code="missing_api_key",
        )
    found = await read_only(state(request).db, accounts.caller_for_key, key.strip())
    if found is None:
        raise RequestError(
            401,
            "This API key is not valid (unknown or revoked): check it, or ask for a new one.",
            code="invalid_api_key",
        )
    return found
