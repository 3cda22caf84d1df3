"""A request id for every request: taken from a sane ``X-Request-Id`` header or made up, sent back
in that header, put in every error body and in every log line written while the request runs."""

import contextvars
import logging
import re
import uuid

_current = contextvars.ContextVar("fathom_request_id", default=None)
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def current_request_id():
    return _current.get()


class RequestIdMiddleware:
    """Plain ASGI (no BaseHTTPMiddleware): the id lives in a context variable for the request."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _SANE.fullmatch(given) else uuid.uuid4().hex
        token = _current.set(rid)
        scope["fathom_request_id"] = rid  # for the 500 handler, which runs outside this middleware

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode("ascii"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``%(request_id)s`` to log records ("-" outside a request)."""

    def filter(self, record):
        record.request_id = _current.get() or "-"
        return True


LOG_FORMAT = "%(asctime)s %(name)s %(levelname)s [%(request_id)s] %(message)s"


def configure_logging(level: str):
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
