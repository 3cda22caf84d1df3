"""Fetch Pending Results: the paid server jobs recorded in the file, downloaded into their nodes
(worker thread: network and files; apply() on the main thread puts them in Blender)."""

from dataclasses import dataclass, field
from pathlib import Path

import bpy

from ...engine import remote
from ...engine.errors import CancelledError, FathomError
from ...engine.settings import DepthSettings
from ..capture.picture import Capture
from ..generation import worker
from ..generation.results import Target, output_target
from . import messages, pending
from .job import RemoteJob
from .online import check_online, client_for


@dataclass
class Outcome:
    entry: dict
    job: object = None  # the RemoteJob once its result is written
    message: str = ""
    done: bool = False  # finished one way or another: no longer pending
    refunded: int = None


@dataclass
class FetchJob:
    """Fetch every pending job (worker thread: network and files); apply() puts them in Blender."""

    jobs: list
    outcomes: list = field(default_factory=list)
    path = None

    def run(self, progress=None, cancel=None):
        report = progress or (lambda fraction, message: None)
        count = len(self.jobs)
        for number, (entry, job) in enumerate(self.jobs):
            if cancel is not None and cancel():
                raise CancelledError("Stopped fetching; the remaining results stay pending in this file.")

            def step(fraction, message, n=number, label=entry["label"]):
                report((n + fraction) / count, f"{label}: {message}")

            outcome = Outcome(entry)
            try:
                job.run(step, cancel)
                outcome.job, outcome.done = job, True
                outcome.message = f"Fetched the depth of {entry['label']}"
            except remote.JobFailedError as exc:
                outcome.done, outcome.refunded, outcome.message = True, exc.refunded, str(exc)
            except remote.JobCancelledError as exc:
                outcome.done, outcome.refunded, outcome.message = True, exc.refunded, str(exc)
            except remote.JobError as exc:
                outcome.done = exc.status == 410
                head = messages.error_headline(exc.code) or "The depth server would not give this depth map."
                outcome.message = str(messages.Message(head, f"Depth map {entry['job']}: {exc}"))
            except FathomError as exc:  # still running, unreachable...: it stays pending
                outcome.message = str(exc)
            self.outcomes.append(outcome)
        return None

    def apply(self, context) -> list:
        """Main thread: results into their nodes, finished jobs off the list; the messages."""
        worker.drain()
        for outcome in self.outcomes:
            if outcome.job is not None:
                outcome.job.finish(context)
            elif outcome.done:
                pending.remove(outcome.entry["scene"], outcome.entry["job"])
        return [o.message for o in self.outcomes]


def fetch_job(context, scene_entries=None, *, follow_seconds=30.0, allow_online=False) -> FetchJob:
    """Main thread: a FetchJob for the pending entries (default: all in the file)."""
    found = pending.entries() if scene_entries is None else scene_entries
    if not found:
        raise FathomError("No depth maps are pending in this file.")
    jobs = []
    for entry in found:
        check_online(allow_online, entry["server"])
        client = client_for(context, url=entry["server"])
        settings = DepthSettings(**entry["settings"]).validated()
        target = entry["target"]
        if "file" in target:
            target = Target(file=Path(target["file"]))
        else:  # //generated/ of the file as it is now (it may have moved since)
            target = output_target(None) if bpy.data.filepath else Target(folder=Path(target["folder"]))
        picture = Capture(None, entry["label"], entry["name"], entry["source"])
        job = RemoteJob(
            picture,
            settings,
            None,
            target,
            entry["scene"],
            server=client.base_url,
            client=client,
            cache_key=entry.get("cache_key", ""),
            idempotency_key=entry.get("idempotency_key", ""),
            job_id=entry["job"],
            cost=entry.get("cost"),
            follow_seconds=follow_seconds,
            cancel_on_server=False,
        )
        jobs.append((entry, job))
    return FetchJob(jobs)
