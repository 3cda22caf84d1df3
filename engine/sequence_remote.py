"""Sequences on the depth server: one job per frame, paid jobs never lost.

``RemoteFrames`` is a ``depth_fn`` for ``sequence.run_sequence``. For each frame it writes
``.fathom/<frame>.job`` before anything is sent (the Idempotency-Key the submission will use) and
again once the server accepted it (the job's id), so a sequence interrupted anywhere (a cancel, a
dropped connection, Blender crashing) continues on the next run: a frame whose job was accepted is
fetched, not paid again, and a submission whose answer never came is retried with the same key,
which the server answers with the first job, uncharged. The record goes when the frame is done.

``quote_sequence`` is the price of the frames still to do against the balance, before anything starts.
"""

import uuid
from dataclasses import replace

from . import remote
from .encode import encode_picture_png, read_depth
from .imageio import read_array


def quote_sequence(client, settings, frames):
    """{cost, per_frame, frames, balance, shortfall, top_up_url} for ``frames`` frames."""
    per_frame = client.cost(settings)
    account = client.me(ledger_limit=0)
    total = per_frame * frames
    return {
        "cost": total,
        "per_frame": per_frame,
        "frames": frames,
        "balance": account["balance"],
        "shortfall": max(0, total - account["balance"]),
        "top_up_url": account.get("topUpUrl") or client.pricing().get("topUpUrl"),
    }


def check_sequence_affordable(quote):
    """Raise InsufficientTokensError (nothing sent, nothing charged) when the balance is short."""
    if quote["shortfall"] <= 0:
        return
    where = f" Get tokens at {quote['top_up_url']}." if quote.get("top_up_url") else ""
    raise remote.InsufficientTokensError(
        f"Get tokens · {quote['shortfall']} more: these {quote['frames']} frames cost {quote['cost']} tokens "
        f"({quote['per_frame']} each) and your balance is {quote['balance']}. Nothing was sent or charged.{where}",
        needed=quote["cost"],
        balance=quote["balance"],
        shortfall=quote["shortfall"],
        top_up_url=quote.get("top_up_url"),
    )


class RemoteFrames:
    """depth_fn: the server's inverse depth (normalisation 'raw', not inverted: the sequence does
    both) of each frame. ``on_job(frame, job)`` is told of every accepted job (to show it pending)."""

    def __init__(self, client, settings, *, name="frame", cancel=None, progress=None, timeout=600, on_job=None):
        self.client = client
        self.send = replace(settings, normalization="raw", invert=False)
        self.name, self.cancel, self.progress, self.timeout, self.on_job = name, cancel, progress, timeout, on_job
        self.claims = None
        self.submitted = []  # frames sent by this run (each charged once)
        self.recovered = []  # frames whose job an earlier run had sent

    def start(self, claims):
        self.claims = claims

    def __call__(self, pictures, frames):
        return [self._one(picture, frame) for picture, frame in zip(pictures, frames)]

    def _one(self, picture, frame):
        record = self.claims.job_record(frame)
        if record and record.get("job"):
            self.recovered.append(frame)
        else:
            if record is None:
                record = {"idempotency_key": str(uuid.uuid4()), "server": self.client.base_url, "job": None}
                self.claims.save_job_record(frame, record)  # before sending: a retry reuses the key
            rgb = picture.rgb if hasattr(picture, "rgb") else read_array(picture).rgb
            job = self.client.submit(
                encode_picture_png(rgb),
                self.send,
                idempotency_key=record["idempotency_key"],
                filename=f"{self.name}_{frame:04d}.png",
            )
            record = {**record, "job": job["id"], "cost": job.get("cost")}
            self.claims.save_job_record(frame, record)
            self.submitted.append(frame)
            if self.on_job is not None:
                self.on_job(frame, job)

        def look(status, job):
            if self.progress is not None:
                self.progress(status, job)

        self.client.wait(record["job"], progress=look, cancel=self.cancel, timeout=self.timeout)
        return read_depth(self.client.download(record["job"], "exr"))
