"""Client of Fathom's token-billed depth server (the public depth-map API, see server/).

Built on ``requests`` (Blender bundles it, so the extension does not): one Session per client, so
a long poll reuses its connection instead of opening a new TCP/TLS one each time. Every failure
becomes a RemoteError (a FathomError) whose message says what to do; the add-on shows ``str(error)``.

Safety rules the client keeps:
- every submission carries an Idempotency-Key, and a retried submission reuses it with the very
  same body, so a retry after a network failure never charges twice;
- retries are bounded (urllib3's Retry): connection drops, timeouts, 5xx and 429, honouring
  Retry-After up to ``max_retry_after``; a DNS or TLS failure is not retried (it cannot get better);
- redirects are not followed, so the API key is only ever sent to the configured server.

Settings map to the API as follows: ``resolution`` (any integer 256..2048, the engine's default
518 being the model's native size) becomes ``resolutionLowerLimit``, which the API requires to be
a multiple of 64: it is rounded to the NEAREST multiple of 64 (518 -> 512, ties round up), so the
server may see up to 32 pixels less or more on the short side than a local run would. The
engine's catalogue id (``da2-small``) becomes the server's model name (``small``) through the
``catalogueId`` of the server's price list. The output format is not sent: the server returns a
float EXR and a 16-bit PNG, and the caller converts locally.
"""

import hashlib
import http.client
import json
import random
import socket
import ssl
import time
import urllib.parse
import uuid

import requests
import requests.auth
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, ReadTimeoutError, ResponseError
from urllib3.util.retry import Retry

from .errors import CancelledError, FathomError, InvalidSettingsError
from .retry_after import parse_retry_after
from .settings import MAX_RESOLUTION, MIN_RESOLUTION, DepthSettings

USER_AGENT = "fathom-remote/2 (python requests)"
FINAL_STATES = ("succeeded", "failed", "canceled")
RESULT_NAMES = {"exr": "depth.exr", "png16": "depth.png"}
_NORMALIZATION_API = {"standard": "Standard", "v2-style": "V2-Style", "raw": "Raw"}
# The API's parameter names -> the setting a user sees, for 422 messages.
_SETTING_OF = {
    "resolutionLowerLimit": "resolution",
    "invertDepth": "invert",
    "usePostResize": "post_resize",
    "normalizationMode": "normalization",
    "model": "model",
    "image": "picture",
    "imageUrl": "picture",
}
_RETRY_STATUSES = (429, 500, 502, 503, 504)
NO_API_KEY = (
    "No API key is set for the depth server: paste your key in Edit > Preferences > Add-ons > Fathom "
    "(the server's operator gives you one)."
)


# ---------------------------------------------------------------- errors


class RemoteError(FathomError):
    """Base of every depth-server problem. ``status`` is the HTTP status when there was one."""

    def __init__(self, message, *, status=None, server_message=None, code=None):
        super().__init__(message)
        self.status, self.server_message = status, server_message
        self.code = code  # the error body's stable code (insufficient_tokens, rate_limited, ...), when given


class ServerURLError(RemoteError, InvalidSettingsError):
    """The configured server URL cannot be used (no scheme/host, or it redirects elsewhere)."""


class UnreachableError(RemoteError):
    """No HTTP answer: ``reason`` is 'refused', 'dns', 'tls', 'timeout', 'dropped' or 'network'."""

    def __init__(self, message, *, reason):
        super().__init__(message)
        self.reason = reason


class AuthenticationError(RemoteError):
    """401/403: the API key is missing, unknown or revoked."""


class InsufficientTokensError(RemoteError):
    """402: the generation costs more than the balance; nothing was charged."""

    def __init__(self, message, *, needed, balance, shortfall, top_up_url=None, server_message=None):
        super().__init__(message, status=402, server_message=server_message)
        self.needed, self.balance, self.shortfall, self.top_up_url = needed, balance, shortfall, top_up_url


class InvalidParameterError(RemoteError):
    """422: the server refused a parameter or the picture; ``parameter`` names the API field (or None)."""

    def __init__(self, message, *, parameter=None, errors=None, server_message=None):
        super().__init__(message, status=422, server_message=server_message)
        self.parameter, self.errors = parameter, errors or []


class RateLimitedError(RemoteError):
    """429 after the retries: ``retry_after`` seconds to wait."""

    def __init__(self, message, *, retry_after, server_message=None):
        super().__init__(message, status=429, server_message=server_message)
        self.retry_after = retry_after


class ServerError(RemoteError):
    """5xx after the retries, or an answer that is not the depth API's."""


class JobError(RemoteError):
    """A request about one artwork that its state refuses (404 unknown, 409 not finished, 410 gone)."""


class JobFailedError(RemoteError):
    """The server ran the job and it failed; ``refunded`` tokens came back (None: unknown)."""

    def __init__(self, message, *, job, refunded=None):
        super().__init__(message)
        self.job, self.refunded = job, refunded


class JobCancelledError(RemoteError, CancelledError):
    """The job was canceled (by the caller's cancel, or on the server)."""

    def __init__(self, message, *, job, refunded=None):
        super().__init__(message)
        self.job, self.refunded = job, refunded


class WaitTimeoutError(RemoteError):
    """The job did not finish within the wait; it is still on the server (``job_id``)."""

    def __init__(self, message, *, job_id, status):
        super().__init__(message)
        self.job_id, self.status = job_id, status


# ---------------------------------------------------------------- pure helpers


def api_resolution(resolution: int) -> int:
    """The engine's resolution as the API's resolutionLowerLimit: the nearest multiple of 64
    (ties up), within 256..2048."""
    rounded = (int(resolution) + 32) // 64 * 64
    return max(MIN_RESOLUTION, min(MAX_RESOLUTION, rounded))


def api_parameters(settings: DepthSettings, model_name: str = None) -> dict:
    """The API's parameters for ``settings`` (JSON types); ``model_name`` is the server's name."""
    s = settings.validated()
    return {
        "model": model_name or s.model,
        "resolutionLowerLimit": api_resolution(s.resolution),
        "invertDepth": s.invert,
        "usePostResize": s.post_resize,
        "normalizationMode": _NORMALIZATION_API[s.normalization],
    }


def result_cache_key(picture_bytes: bytes, settings: DepthSettings, server: str = "") -> str:
    """sha256 of the picture and of the settings that change the server's result, as canonical
    JSON. The output format and thread count are left out (the result is converted locally), and
    the resolution enters as the API sees it, so 518 and 512 share a result. ``server`` (its URL)
    keeps results of different servers apart."""
    canonical = json.dumps(
        {"server": server.rstrip("/"), **api_parameters(settings)}, sort_keys=True, separators=(",", ":")
    )
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(bytes(picture_bytes)).digest())
    digest.update(canonical.encode())
    return digest.hexdigest()


def _form_value(value) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _body_code(raw) -> str:
    """The stable ``code`` of an error body, or None."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, TypeError):
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _tokens(count) -> str:
    return f"{count} token" if count == 1 else f"{count} tokens"


def _retry_after(headers, body=None):
    """Seconds from a Retry-After header (seconds or HTTP date), else from the body; None if absent."""
    wait = parse_retry_after(headers.get("Retry-After") if headers is not None else None)
    if wait is None and isinstance(body, dict) and isinstance(body.get("retryAfter"), (int, float)):
        return float(body["retryAfter"])
    return wait


class _Retry(Retry):
    """urllib3's Retry with the client's rules: exponential backoff with jitter from the first retry,
    no retry after a DNS or TLS failure, and a Retry-After longer than ``max_retry_after`` reported
    at once instead of waited out. Records the number of attempts on the error it gives up with."""

    backoff_base, backoff_cap, max_retry_after = 0.5, 8.0, 60.0

    def new(self, **kw):
        retry = super().new(**kw)
        retry.backoff_base, retry.backoff_cap = self.backoff_base, self.backoff_cap
        retry.max_retry_after = self.max_retry_after
        return retry

    def parse_retry_after(self, retry_after):
        return parse_retry_after(retry_after)  # the project's one reading (engine.retry_after); None if unreadable

    def sleep_for_retry(self, response) -> bool:
        wait = self.get_retry_after(response)
        if wait is None:
            return False
        time.sleep(wait)  # Retry-After: 0 means at once, not "use the backoff"
        return True

    def get_backoff_time(self) -> float:
        failed = len(self.history)
        if not failed:
            return 0.0
        return min(self.backoff_cap, self.backoff_base * 2 ** (failed - 1)) * random.uniform(0.5, 1.0)

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        attempts = len(self.history) + 1
        hopeless = error is not None and _reason(error) in ("dns", "tls")
        wait = self.get_retry_after(response) if response is not None else None
        if hopeless or (wait is not None and wait > self.max_retry_after):
            raise _gave_up(MaxRetryError(_pool, url, error or ResponseError("Retry-After too long")), attempts)
        try:
            return super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError as exc:
            raise _gave_up(exc, attempts) from exc.reason


def _gave_up(exc, attempts):
    exc.fathom_attempts = attempts
    return exc


def _attempts(exc) -> int:
    return next((c.fathom_attempts for c in _causes(exc) if hasattr(c, "fathom_attempts")), 1)


def _causes(exc):
    """``exc`` and what it wraps (causes, contexts, urllib3 reasons, wrapped arguments), outermost first."""
    seen, todo = [], [exc]
    while todo:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is e for e in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen


def _reason(exc) -> str:
    """What went wrong on the network: 'refused', 'dns', 'tls', 'timeout', 'dropped' or 'network'."""
    causes = _causes(exc)
    for kind, types in (
        ("refused", (ConnectionRefusedError,)),
        ("dns", (socket.gaierror,)),
        ("tls", (ssl.SSLError, ssl.CertificateError)),
        ("timeout", (TimeoutError, ConnectTimeoutError, ReadTimeoutError, requests.Timeout)),
        ("dropped", (ConnectionResetError, ConnectionAbortedError, BrokenPipeError, http.client.HTTPException)),
    ):
        if any(isinstance(c, types) for c in causes):
            return kind
    if any(type(c).__name__ == "NameResolutionError" for c in causes):  # urllib3 2's DNS failure
        return "dns"
    return "network"


class _Bearer(requests.auth.AuthBase):
    """The API key as a bearer token (given explicitly, so no .netrc entry replaces it)."""

    def __init__(self, key):
        self.key = key

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.key}"
        return request


class _Adapter(HTTPAdapter):
    """An HTTPAdapter whose connections use ``ssl_context`` (the system's trust store by default,
    as the standard library would; a server with its own certificate is trusted through it)."""

    def __init__(self, ssl_context, **kwargs):
        self._ssl_context = ssl_context
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        kwargs["ssl_context"] = self._ssl_context
        return super().init_poolmanager(*args, **kwargs)


# ---------------------------------------------------------------- the client


class RemoteClient:
    """One server and one API key, over one requests Session (connections are reused; its pool is
    thread-safe, so the worker and the account refresh may share a client).

    ``timeout``: seconds to wait for an answer (read), ``connect_timeout``: to open a connection."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30,
        connect_timeout: float = 10,
        user_agent: str = USER_AGENT,
        retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        max_retry_after: float = 60.0,
        long_poll: float = 2.0,
        ssl_context: ssl.SSLContext = None,
    ):
        self.base_url = self._check_url(base_url)
        self.api_key = (api_key or "").strip()
        self.timeout, self.connect_timeout, self.user_agent = timeout, connect_timeout, user_agent
        # Seconds per `Prefer: wait` request in wait(): short so that cancel() is noticed quickly.
        # 0 polls instead; it also falls back to polling when the server ignores the preference.
        self.long_poll = long_poll
        retry = _Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            redirect=0,
            allowed_methods=None,  # POSTs too: every submission carries its Idempotency-Key
            status_forcelist=_RETRY_STATUSES,
            raise_on_status=False,
            raise_on_redirect=False,
            respect_retry_after_header=True,
        )
        retry.backoff_base, retry.backoff_cap, retry.max_retry_after = backoff, max_backoff, max_retry_after
        self._session = requests.Session()  # proxies from the environment apply, as with urllib
        adapter = _Adapter(ssl_context or ssl.create_default_context(), max_retries=retry)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._pricing = None

    def close(self):
        """Close the client's connections (a later call opens new ones)."""
        self._session.close()

    @staticmethod
    def _check_url(base_url) -> str:
        url = (base_url or "").strip().rstrip("/")
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ServerURLError(
                f"The server URL {base_url!r} is not usable: write it like https://depth.example.com "
                "(or http://127.0.0.1:8000 for a server on this computer) in Preferences."
            )
        try:
            parts.port
        except ValueError:
            raise ServerURLError(
                f"The server URL {base_url!r} has an invalid port: use a number such as :8000."
            ) from None
        if parts.query or parts.fragment:
            raise ServerURLError(
                f"The server URL {base_url!r} must not contain '?' or '#': give the server's address only."
            )
        if url.endswith("/v2"):  # the API's base pasted instead of the server's: same server
            url = url[:-3]
        return url

    # ------------------------------------------------ account and prices

    def me(self, ledger_limit: int = 20) -> dict:
        """{user, balance, topUpUrl, ledger: [{delta, kind, artworkId, balanceAfter, ...}], ...}"""
        return self._json("GET", f"/v2/me?ledgerLimit={int(ledger_limit)}")

    def pricing(self, *, refresh: bool = False) -> dict:
        """The price list: {models: [{model, catalogueId, tokens: [{resolutionUpTo, tokens}]}],
        defaultModel, topUpUrl}. Cached on the client; ``refresh`` asks again."""
        if self._pricing is None or refresh:
            self._pricing = self._json("GET", "/v2/pricing", auth=False)
        return self._pricing

    def model_name(self, settings: DepthSettings) -> str:
        """The server's name for settings.model (a server name or an engine catalogue id)."""
        models = self.pricing().get("models") or []
        for entry in models:
            if settings.model in (entry.get("model"), entry.get("catalogueId")):
                return entry["model"]
        have = ", ".join(f"{m.get('model')} ({m.get('catalogueId')})" for m in models) or "none"
        raise InvalidSettingsError(
            f"The depth server at {self.base_url} has no model {settings.model!r}; "
            f"it has: {have}. Pick one of those, or use the local backend."
        )

    def cost(self, settings: DepthSettings) -> int:
        """Tokens the server charges for ``settings``, from its price list."""
        name = self.model_name(settings)
        entry = next(m for m in self.pricing()["models"] if m["model"] == name)
        resolution = api_resolution(settings.validated().resolution)
        tiers = sorted(entry["tokens"], key=lambda t: t["resolutionUpTo"])
        for tier in tiers:
            if resolution <= tier["resolutionUpTo"]:
                return int(tier["tokens"])
        return int(tiers[-1]["tokens"])

    # ------------------------------------------------ jobs

    def submit(
        self, picture: bytes, settings: DepthSettings, *, idempotency_key: str = None, filename: str = "picture.png"
    ) -> dict:
        """Upload the picture; returns the artwork (id, status, parameters, ...) plus
        ``idempotencyKey``: store it with the id, and a later submit with the same key and picture
        returns this artwork instead of charging again."""
        if not picture:
            raise InvalidParameterError(
                "The picture to send is empty: capture or choose an image first.", parameter="image"
            )
        params = api_parameters(settings, self.model_name(settings))
        key = idempotency_key or str(uuid.uuid4())
        job = self._json(
            "POST",
            "/v2/artworks/depth-map",
            headers={"Idempotency-Key": key},
            data={k: _form_value(v) for k, v in params.items()},
            files={"image": (filename, bytes(picture))},
        )
        job["idempotencyKey"] = key
        return job

    def get(self, job_id: str) -> dict:
        return self._json("GET", f"/v2/artworks/{self._id(job_id)}")

    def list(self, offset: int = 0, limit: int = 50) -> dict:
        """{artworks: [...newest first], offset, limit, total}"""
        return self._json("GET", f"/v2/artworks?offset={int(offset)}&limit={int(limit)}")

    def cancel(self, job_id: str) -> dict:
        """Cancel; returns the artwork. A job that had already finished comes back as it is."""
        try:
            return self._json("POST", f"/v2/artworks/{self._id(job_id)}/cancel")
        except JobError as exc:
            if exc.status == 409:
                return self.get(job_id)
            raise

    def download(self, job_id: str, fmt: str = "exr") -> bytes:
        """The result's bytes: 'exr' (float32 EXR) or 'png16' (16-bit PNG)."""
        if fmt not in RESULT_NAMES:
            raise InvalidSettingsError(f"Unknown result format {fmt!r}: the server gives {' or '.join(RESULT_NAMES)}.")
        _, _, data = self._request("GET", f"/v2/artworks/{self._id(job_id)}/results/{RESULT_NAMES[fmt]}")
        return data

    def wait(
        self, job_id: str, *, progress=None, cancel=None, timeout: float = 600, poll: float = 0.5, max_poll: float = 5.0
    ) -> dict:
        """Follow the job until it succeeds (returns it), fails (JobFailedError with the refund),
        is canceled (JobCancelledError) or ``timeout`` passes (WaitTimeoutError; the job goes on).

        progress(status, job) is called after every look; cancel() returning true cancels the job on
        the server. Uses `Prefer: wait` long polls while the server honours them, else polls with
        exponential backoff and jitter from ``poll`` to ``max_poll`` seconds."""
        deadline = time.monotonic() + timeout
        delay, status = poll, "unknown"
        long_poll = self.long_poll
        while True:
            if cancel is not None and cancel():
                self._cancelled(self.cancel(job_id), by_caller=True)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise WaitTimeoutError(
                    f"The depth map {job_id} is still {status} on the server after "
                    f"{timeout:g} s. It goes on there: fetch it later (its tokens are not lost).",
                    job_id=job_id,
                    status=status,
                )
            waited = min(long_poll, remaining) if long_poll > 0 else 0
            started = time.monotonic()
            job, headers = self._json(
                "GET",
                f"/v2/artworks/{self._id(job_id)}",
                with_headers=True,
                headers={"Prefer": f"wait={waited:g}"} if waited else None,
                timeout=self.timeout + waited,
            )
            status = job.get("status", "unknown")
            if progress is not None:
                progress(status, job)
            if status == "succeeded":
                return job
            if status == "failed":
                raise self._failed(job)
            if status == "canceled":
                self._cancelled(job, by_caller=False)
            if waited:
                honoured = "preference-applied" in headers or time.monotonic() - started >= waited * 0.8
                if honoured:
                    continue
                long_poll = 0  # the server answers at once: poll with backoff instead
            self._sleep(min(delay, max(0.0, deadline - time.monotonic())) * random.uniform(0.75, 1.0), cancel)
            delay = min(delay * 2, max_poll)

    def _failed(self, job) -> JobFailedError:
        refunded, error = self._refund_of(job), job.get("error") or "no reason given"
        if refunded and "refunded" not in error.lower():
            error += f" {_tokens(refunded)} {'was' if refunded == 1 else 'were'} refunded."
        elif refunded == 0:
            error += " No refund is recorded for it: check your balance (GET /v2/me) or ask the server's operator."
        return JobFailedError(
            f"The depth server could not make depth map {job.get('id')}: {error}", job=job, refunded=refunded
        )

    def _cancelled(self, job, *, by_caller):
        refunded = self._refund_of(job)
        if job.get("status") == "succeeded":
            raise JobCancelledError(
                f"Stopped following depth map {job['id']}, but it had already succeeded: its "
                "result stays on the server and can be fetched later.",
                job=job,
                refunded=0,
            )
        who = "You canceled" if by_caller else "The server canceled"
        if refunded:
            what = f"{_tokens(refunded)} {'was' if refunded == 1 else 'were'} refunded."
        elif job.get("status") == "canceled":
            what = "It had already started, so its tokens are not refunded."
        else:
            what = f"It is {job.get('status')} on the server."
        raise JobCancelledError(f"{who} depth map {job['id']}. {what}", job=job, refunded=refunded)

    def _refund_of(self, job):
        """Tokens refunded for ``job``: its own field when the server gives one, else the ledger."""
        if isinstance(job.get("refunded"), int):
            return job["refunded"]
        try:
            entries = self.me(ledger_limit=200).get("ledger", [])
        except RemoteError:
            return None
        return sum(e["delta"] for e in entries if e.get("artworkId") == job.get("id") and e.get("kind") == "refund")

    @staticmethod
    def _sleep(seconds, cancel):
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))
            if cancel is not None and cancel():
                return

    @staticmethod
    def _id(job_id) -> str:
        return urllib.parse.quote(str(job_id), safe="")

    # ------------------------------------------------ HTTP

    def _json(self, method, path, *, with_headers=False, **kwargs):
        status, headers, data = self._request(method, path, **kwargs)
        try:
            value = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            value = None
        if not isinstance(value, dict):
            ctype = headers.get("Content-Type", "unknown type")
            raise ServerError(
                f"The server at {self.base_url} answered {method} {path.split('?')[0]} with something "
                f"that is not the depth API ({ctype}): check the server URL in Preferences.",
                status=status,
            )
        return (value, headers) if with_headers else value

    def _request(self, method, path, *, data=None, files=None, headers=None, timeout=None, auth=True):
        """(status, headers, body bytes) of a 2xx answer, after bounded retries; else a RemoteError."""
        if auth and not self.api_key:
            raise AuthenticationError(NO_API_KEY)
        all_headers = {"User-Agent": self.user_agent, "Accept": "application/json", **(headers or {})}
        try:
            resp = self._session.request(
                method,
                self.base_url + path,
                data=data,
                files=files,
                headers=all_headers,
                auth=_Bearer(self.api_key) if auth else None,
                allow_redirects=False,
                timeout=(self.connect_timeout, timeout or self.timeout),
            )
            raw = resp.content
        except requests.RequestException as exc:
            raise self._transport_error(exc, _attempts(exc)) from None
        if 200 <= resp.status_code < 300:
            return resp.status_code, resp.headers, raw
        retries = getattr(resp.raw, "retries", None)
        attempts = len(retries.history) + 1 if retries is not None else 1
        error = self._http_error(resp.status_code, resp.headers, raw, method, path, attempts)
        error.code = _body_code(raw)
        raise error from None

    def _transport_error(self, exc, attempts) -> UnreachableError:
        reason = _reason(exc)
        where = f"the depth server at {self.base_url}"
        tries = f" ({attempts} attempt{'s' if attempts > 1 else ''})"
        host = urllib.parse.urlsplit(self.base_url).hostname
        cause = next((c for c in _causes(exc) if isinstance(c, (OSError, ssl.CertificateError))), exc)
        if reason == "refused":
            return UnreachableError(
                f"Cannot reach {where}: connection refused{tries} — is it running, and is the port right?",
                reason="refused",
            )
        if reason == "dns":
            said = getattr(cause, "strerror", None) if isinstance(cause, socket.gaierror) else None
            return UnreachableError(
                f"Cannot find the depth server's host {host!r} (DNS lookup failed: "
                f"{said or cause}): check the server URL and your network.",
                reason="dns",
            )
        if reason == "tls":
            bad_cert = next((c for c in _causes(exc) if isinstance(c, ssl.SSLCertVerificationError)), None)
            if bad_cert is not None:
                return UnreachableError(
                    f"The TLS certificate of {host} cannot be trusted ({bad_cert.verify_message}): "
                    "check the server URL; a server with its own certificate must be made "
                    "trusted on this computer.",
                    reason="tls",
                )
            tls = next((c for c in _causes(exc) if isinstance(c, ssl.SSLError)), cause)
            return UnreachableError(
                f"The TLS handshake with {where} failed ({getattr(tls, 'reason', None) or tls}): "
                "is it an https server? A plain local server needs an http:// URL.",
                reason="tls",
            )
        if reason == "timeout":
            return UnreachableError(
                f"{where[0].upper()}{where[1:]} did not answer within {self.timeout:g} s"
                f"{tries}: it may be overloaded; try again later.",
                reason="timeout",
            )
        if reason == "dropped":
            return UnreachableError(
                f"{where[0].upper()}{where[1:]} closed the connection before answering{tries}: "
                "it may be restarting or overloaded; try again. A repeated submission is "
                "never charged twice.",
                reason="dropped",
            )
        return UnreachableError(
            f"Cannot reach {where}{tries}: {cause}. Check the server URL and your network.", reason="network"
        )

    def _http_error(self, status, headers, raw, method, path, attempts) -> RemoteError:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        body = body if isinstance(body, dict) else {}
        said = (
            body.get("message")
            or (raw[:200].decode("utf-8", "replace").strip() if raw else "")
            or http.client.responses.get(status, "")
        )
        host = self.base_url
        if status in (301, 302, 303, 307, 308):
            location = headers.get("Location", "elsewhere")
            return ServerURLError(
                f"The server at {host} redirects to {location}: put the new address in "
                "Preferences (the API key is not sent to a redirected address).",
                status=status,
                server_message=said,
            )
        if status in (401, 403):
            return AuthenticationError(
                f"The depth server at {host} refused the API key (HTTP {status}): check "
                f"the API key in Edit > Preferences > Add-ons > Fathom. Server: {said}",
                status=status,
                server_message=said,
            )
        if status == 402:
            needed, balance = body.get("needed"), body.get("balance")
            shortfall = body.get("shortfall", (needed - balance) if None not in (needed, balance) else None)
            top_up = body.get("topUpUrl") or (self._pricing or {}).get("topUpUrl")
            where = f" Get tokens at {top_up}." if top_up else " Ask the server's operator for tokens."
            return InsufficientTokensError(
                f"Short by {_tokens(shortfall)}: this depth map costs {needed} and your balance is {balance}."
                f"{where} Nothing was charged.",
                needed=needed,
                balance=balance,
                shortfall=shortfall,
                top_up_url=top_up,
                server_message=said,
            )
        if status == 422:
            errors = body.get("errors") if isinstance(body.get("errors"), list) else []
            field = next((e.get("field") for e in errors if e.get("field")), None)
            if field:
                setting = _SETTING_OF.get(field, field)
                detail = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in errors)
                message = f"The depth server refused the {setting} setting (parameter {field!r}): {detail}"
            else:
                message = f"The depth server refused the request: {said}"
            return InvalidParameterError(message, parameter=field, errors=errors, server_message=said)
        if status == 429:
            wait = _retry_after(headers, body)
            wait = 1.0 if wait is None else wait
            return RateLimitedError(
                f"The depth server is limiting requests from this key: retry in {wait:.0f} s.",
                retry_after=wait,
                server_message=said,
            )
        if status >= 500:
            return ServerError(
                f"The depth server at {host} failed (HTTP {status}) after {attempts} attempt(s): "
                f"{said.rstrip('.')}. Try again in a minute; if it goes on, tell the server's operator.",
                status=status,
                server_message=said,
            )
        if status in (404, 409, 410) and path.startswith("/v2/artworks/"):
            return JobError(f"{said}", status=status, server_message=said)
        if status == 404:
            return ServerURLError(
                f"The server at {host} has no {method} {path.split('?')[0]} (HTTP 404): check "
                "that the server URL in Preferences is the depth server's address.",
                status=status,
                server_message=said,
            )
        return RemoteError(
            f"The depth server refused {method} {path.split('?')[0]} (HTTP {status}): {said}",
            status=status,
            server_message=said,
        )
