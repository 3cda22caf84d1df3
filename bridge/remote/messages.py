"""What the artist reads about the depth server, in one place.

Every message leads with the outcome in one short sentence (the status bar shows it; see
``report``), and the details follow (the Info log). Numbers carry their word in the right number
("1 token", "2 tokens"); durations are the time actually waited. A failed job is worded from the
server's stable ``errorCode``, never from its internals (a server's file paths and its local-model
advice do not apply to the artist). No bpy here, so every wording is testable on its own.
"""

from dataclasses import dataclass

# errorCode of a failed artwork -> (what happened, what the artist can do).
JOB_FAILURES = {
    "image_unreadable": (
        "the server could not read this picture",
        "Save the picture as PNG or JPEG and generate again.",
    ),
    "model_unavailable": (
        "the server's depth model is not available right now",
        "Generate again later, or use the Local backend; if it goes on, tell the server's operator.",
    ),
    "inference_failed": (
        "the server could not make this depth map",
        "Generate again; if it fails again, tell the server's operator.",
    ),
    "timeout": (
        "the server took too long to make this depth map",
        "Generate again later, or with a lower resolution.",
    ),
    "worker_lost": (
        "the server stopped while making this depth map",
        "Generate again.",
    ),
}
_UNKNOWN_FAILURE = JOB_FAILURES["inference_failed"]
_STATUS_WORDS = {"starting": "queued", "processing": "being made"}

# The stable ``code`` of an HTTP error body -> one sentence for the artist (the client's own
# message, which says what to do, follows in the details).
ERROR_CODES = {
    "insufficient_tokens": "Not enough tokens for this depth map.",
    "rate_limited": "The depth server asks to slow down.",
    "invalid_parameters": "The depth server refused these settings.",
    "invalid_request": "The depth server refused the request.",
    "too_large": "The picture is too large for the depth server.",
    "unsupported_media_type": "The depth server cannot read this kind of picture.",
    "unauthorized": "The depth server refused the API key.",
    "forbidden": "The depth server refused the API key.",
    "artwork_not_found": "The depth server does not know this depth map.",
    "not_found": "The depth server does not know this depth map.",
    "gone": "The depth server no longer has this depth map.",
    "unavailable": "The depth server is not available right now.",
    "internal_error": "The depth server had an internal error.",
}

HEADLINE_CHARS = 90  # past this, a first sentence is cut at its first colon for the status bar


def plural(count, word: str, words: str = "") -> str:
    """'1 token', '2 tokens', '1 paid depth map'."""
    return f"{count} {word if count == 1 else (words or word + 's')}"


def duration(seconds: float) -> str:
    """'45 s', '2 min', '1 min 30 s': the time actually waited, rounded to the second."""
    whole = max(0, int(round(seconds)))
    if whole < 60:
        return f"{whole} s"
    minutes, rest = divmod(whole, 60)
    return f"{minutes} min" + (f" {rest} s" if rest else "")


@dataclass(frozen=True)
class Message:
    headline: str  # one short sentence, the outcome first: the status bar
    details: str = ""  # what else the artist should know: the Info log

    def __str__(self):
        return f"{self.headline} {self.details}".strip()


def split(message) -> Message:
    """A Message, an error carrying one (``.message``), or any text -> headline and details: the
    first sentence (cut at its first colon when long) and the rest."""
    if isinstance(message, Message):
        return message
    carried = getattr(message, "message", None)
    if isinstance(carried, Message):
        return carried
    text = " ".join(str(message).split())
    head, sep, rest = text.partition(". ")
    if len(head) > HEADLINE_CHARS and ": " in head:
        head, _, first = head.partition(": ")
        rest = f"{first[:1].upper()}{first[1:]}{sep}{rest}" if sep else first[:1].upper() + first[1:]
        return Message(head.rstrip(".") + ".", rest.strip())
    if not sep:
        return Message(text)
    return Message(head + ".", rest.strip())


def job_failed(job: dict, refunded) -> Message:
    """A job the server ran and failed, from its errorCode; ``refunded``: tokens back (None: unknown)."""
    code = job.get("errorCode")
    what, advice = JOB_FAILURES.get(code, _UNKNOWN_FAILURE)
    if refunded:
        lead, money = "Refunded", f"Your {plural(refunded, 'token')} came back."
    elif refunded == 0:
        lead, money = "Not refunded", "No refund is recorded for it: check your balance, or ask the server's operator."
    else:
        lead, money = "Failed", "A failed depth map is refunded: check your balance with Refresh Balance."
    said = ""
    if code and code not in JOB_FAILURES and job.get("error"):
        said = f" The server says: {job['error']}"  # a newer code: its message is meant for clients
    return Message(f"{lead}: {what}.", _about(job.get("id"), f"{money} {advice}{said}"))


def _about(job_id, text: str) -> str:
    """Details that name their depth map first: 'Depth map 5f0c…: your 1 token came back. …'."""
    return f"Depth map {job_id}: {text[:1].lower()}{text[1:]}" if job_id else text


def job_cancelled(job: dict, refunded, by_caller: bool) -> Message:
    who = "Canceled" if by_caller else "Canceled by the server"
    if job.get("status") == "succeeded":
        return Message(
            "Stopped following this depth map; it had already finished.",
            _about(job.get("id"), "Its result stays on the server and can be fetched later."),
        )
    if refunded:
        return Message(f"{who} and refunded.", _about(job.get("id"), f"Your {plural(refunded, 'token')} came back."))
    if job.get("status") == "canceled":
        return Message(
            f"{who}; not refunded.",
            _about(job.get("id"), "It had already started on the server, so its tokens are spent."),
        )
    return Message(f"{who}.", _about(job.get("id"), f"It is {job.get('status')} on the server."))


def retry_advice(status: str = "", notice: str = "", retry_after=None, reachable: bool = True) -> str:
    """When fetching a job that is still on the server is worth trying again."""
    if retry_after:
        return f"Fetch Pending Results again in {duration(retry_after)}."
    if not reachable:
        return "Fetch Pending Results again once the server answers (in a few minutes)."
    if not status:
        return "Fetch Pending Results again in a few minutes."
    if status == "starting" and notice:
        return f"The server says: {notice} Fetch Pending Results again later."
    if status == "starting":
        return "It is queued there: Fetch Pending Results again in a minute or two."
    return "Fetch Pending Results again in about a minute."


def still_pending(job_id, waited=None, status="", notice="", reason="", retry_after=None, reachable=True) -> Message:
    """A paid job whose result could not be fetched now: it stays pending, nothing is lost."""
    if waited is not None and reachable and not retry_after:
        state = _STATUS_WORDS.get(status, status or "being made")
        headline = f"Not fetched yet: the depth map is still {state} on the server after {duration(waited)}."
    elif retry_after:
        headline = "Not fetched yet: the depth server asks to wait."
    elif reachable:
        headline = "Not fetched yet: the depth server had an error."
    else:
        headline = "Not fetched yet: the depth server did not answer."
    why = f"{reason} " if reason and (waited is None or retry_after) else ""
    return Message(
        headline,
        f"{why}{retry_advice(status, notice, retry_after, reachable)} "
        + _about(job_id, "It is paid for and kept in this file (save the file); no tokens are lost."),
    )


def pending_count(count: int) -> str:
    verb = "is" if count == 1 else "are"
    return f"{plural(count, 'paid depth map')} from the depth server {verb} not in this file yet"


def fetch_summary(fetched: int, total: int, left: int) -> str:
    """Fetch Pending Results' headline."""
    if total == 1:
        head = "Fetched the pending depth map" if fetched else "The pending depth map was not fetched"
    else:
        head = f"Fetched {fetched} of {plural(total, 'pending depth map')}"
    return head + (f"; {left} still pending." if left and total > 1 else ".")


def error_headline(code: str) -> str:
    return ERROR_CODES.get(code or "", "")


def report(operator, level: str, message):
    """An operator's report: the details first (the Info log), the headline last, since the status
    bar shows the newest report."""
    said = split(message)
    if said.details:
        operator.report({"INFO"}, said.details)
    operator.report({level}, said.headline)
