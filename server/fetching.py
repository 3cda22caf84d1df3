"""Work that waits on other people's hosts (imageUrl downloads, webhook host checks) in its own
bounded thread pool, so a slow image host can never hold the threads every request's key check and
database read need: at most ``total`` such jobs at once, and at most ``per_key`` for one API key.
A submission over either bound is refused at once with a Retry-After instead of queueing."""

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor

from .intake import RequestError


class FetchPool:
    def __init__(self, total: int, per_key: int, retry_after: float):
        self.total, self.per_key, self.retry_after = total, per_key, retry_after
        self._executor = ThreadPoolExecutor(total, thread_name_prefix="fathom-fetch")
        self._running = 0
        self._per_key = {}  # only touched from the event loop's thread: no lock needed

    async def run(self, key: str, fn, *args):
        """``fn(*args)`` in the pool on behalf of ``key``, or 429/503 when the bounds are reached."""
        if self._per_key.get(key, 0) >= self.per_key:
            raise RequestError(
                429,
                f"This key already has {self.per_key} image download(s) in progress: wait for "
                "them, or upload the picture instead of giving its URL.",
                code="too_many_downloads",
                retry_after=self.retry_after,
            )
        if self._running >= self.total:
            raise RequestError(
                503,
                "The server is downloading as many images as it can right now: retry shortly, "
                "or upload the picture instead of giving its URL.",
                code="downloads_busy",
                retry_after=self.retry_after,
            )
        self._running += 1
        self._per_key[key] = self._per_key.get(key, 0) + 1
        try:
            context = contextvars.copy_context()  # the request id reaches the fetch's log lines
            return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, fn, *args)
        finally:
            self._running -= 1
            left = self._per_key[key] - 1
            if left:
                self._per_key[key] = left
            else:
                del self._per_key[key]

    def close(self):
        self._executor.shutdown(wait=False, cancel_futures=True)
