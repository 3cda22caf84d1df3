"""Telling the caller's webhook that an artwork reached its final state, off the worker's path."""
import logging
import threading

from . import jobs

log = logging.getLogger("fathom.server.notify")


def base_url(settings) -> str:
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def notify_final(db, settings, row):
    """POST the artwork to its webhook (signed and retried by server.webhooks) in a daemon thread."""
    if not row or not row.get("webhook"):
        return None
    with db.transaction(readonly=True) as tx:
        secret = tx.one("SELECT webhook_secret FROM users WHERE id = ?", (row["user_id"],))["webhook_secret"]
    payload = {"type": f"artwork.{row['status']}", "data": jobs.to_api(row, base_url(settings))}
    thread = threading.Thread(target=_deliver, args=(settings, row["id"], row["webhook"], secret, payload),
                              daemon=True, name=f"fathom-webhook-{row['id']}")
    thread.start()
    return thread


def _deliver(settings, artwork_id, url, secret, payload):
    from . import webhooks

    try:
        record = webhooks.deliver(url, secret, payload, allowlist=settings.url_allowlist,
                                  attempts=settings.webhook_attempts, msg_id=f"msg_{artwork_id}")
        if not record.ok:
            log.warning("webhook for artwork %s failed after %d attempt(s): %s", artwork_id, record.attempts,
                        record.error)
    except Exception:
        log.exception("webhook for artwork %s could not be delivered", artwork_id)
