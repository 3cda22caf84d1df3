"""The depth server account as the sidebar and the preferences show it: balance and price list per
server and key, refreshed on a worker thread (never network in draw())."""

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Optional

import bpy

from ...engine import remote
from ...engine.errors import FathomError
from ..prefs import ONLINE_ACCESS_OFF, addon_preferences
from ..redraw import redraw
from .online import client_for


@dataclass(frozen=True)
class AccountView:
    server: str
    user: Optional[str] = None
    balance: Optional[int] = None
    top_up_url: Optional[str] = None
    error: Optional[str] = None
    checked_at: float = 0.0
    pricing_client: Optional[remote.RemoteClient] = None  # price list cached on it: cost() needs no network


def _fingerprint(url, key):
    return hashlib.sha256(f"{url}\n{key}".encode()).hexdigest()


class Account:
    """The balance and price list per server and key, fetched off the main thread; draw() reads it."""

    STALE_SECONDS = 300.0
    RETRY_SECONDS = 30.0

    def __init__(self):
        self._lock = threading.Lock()
        self._views = {}
        self._busy = set()
        self._threads = []  # refreshes running in the background

    def view(self, url, key) -> Optional[AccountView]:
        try:
            client = remote.RemoteClient(url, key)  # the URL as the client normalises it; no network
        except FathomError:
            return None
        with self._lock:
            return self._views.get(_fingerprint(client.base_url, client.api_key))

    def refresh(self, client: remote.RemoteClient) -> AccountView:
        """Ask the server (on the calling thread: a worker, or a headless run); errors are kept on the view."""
        fp = _fingerprint(client.base_url, client.api_key)
        with self._lock:
            self._busy.add(fp)
        return self._ask(client, fp)

    def _ask(self, client, fp) -> AccountView:
        try:
            me = client.me(ledger_limit=0)
            client.pricing(refresh=True)
            view = AccountView(
                client.base_url,
                me.get("user"),
                int(me["balance"]),
                me.get("topUpUrl") or client.pricing().get("topUpUrl"),
                None,
                time.time(),
                client,
            )
        except FathomError as exc:
            old = self._views.get(fp)
            view = AccountView(
                client.base_url,
                error=str(exc),
                checked_at=time.time(),
                pricing_client=old.pricing_client if old else None,
            )
        with self._lock:
            self._views[fp] = view
            self._busy.discard(fp)
        return view

    def refresh_quietly(self, client):
        try:
            self.refresh(client)
        except Exception:  # a balance display must never fail a paid result
            pass

    def refresh_in_background(self, client, on_done=None) -> bool:
        """Start a refresh on a worker thread unless one runs; ``on_done(view)`` runs on that thread."""
        fp = _fingerprint(client.base_url, client.api_key)
        with self._lock:
            if fp in self._busy:
                return False
            self._busy.add(fp)

        def work():
            view = self._ask(client, fp)
            if on_done is not None:
                on_done(view)

        thread = threading.Thread(target=work, name="fathom-account", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()
        _redraw_when_idle()
        return True

    def busy(self) -> bool:
        with self._lock:
            return bool(self._busy)

    def charged(self, url, key, cost):
        """Lower the shown balance by a job's cost at once (the server's figure follows)."""
        if not cost:
            return
        fp = _fingerprint(url, key)
        with self._lock:
            view = self._views.get(fp)
            if view is not None and view.balance is not None:
                self._views[fp] = AccountView(
                    view.server,
                    view.user,
                    view.balance - cost,
                    view.top_up_url,
                    view.error,
                    view.checked_at,
                    view.pricing_client,
                )

    def needs_refresh(self, url, key) -> bool:
        view = self.view(url, key)
        if view is None:
            return True
        wait = self.RETRY_SECONDS if view.error else self.STALE_SECONDS
        return time.time() - view.checked_at > wait

    def clear(self):
        with self._lock:
            self._views.clear()

    def stop(self, timeout: float = 5.0):
        """Wait for the background refreshes (each ends within its client's timeout), close the cached
        clients' connections and forget every view."""
        with self._lock:
            threads, self._threads = self._threads, []
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            clients = [view.pricing_client for view in self._views.values() if view.pricing_client is not None]
        for client in clients:
            client.close()  # its pooled connections
        self.clear()


account = Account()


def _redraw_when_idle():
    """Main-thread timer: redraw the sidebar and preferences once the account refresh is done."""
    if bpy.app.background or bpy.app.timers.is_registered(_redraw_tick):
        return
    bpy.app.timers.register(_redraw_tick, first_interval=0.2)


def _redraw_tick():
    redraw()
    return 0.2 if account.busy() else None


def describe(view) -> str:
    """The account in one line, as Test Connection reports it."""
    return f"Connected to {view.server} as {view.user}: {view.balance} token{'s' if view.balance != 1 else ''}"


def unregister():
    """The add-on is being disabled: no timer left, refreshes waited for, nothing cached."""
    if bpy.app.timers.is_registered(_redraw_tick):
        bpy.app.timers.unregister(_redraw_tick)
    account.stop()


def auto_refresh(context):
    """From draw(): start a balance refresh on a worker thread when none is known for the current
    server and key (never network here; nothing when Blender may not go online)."""
    prefs = addon_preferences(context)
    if not bpy.app.online_access or not prefs.api_key.strip():
        return
    if not account.needs_refresh(prefs.server_url, prefs.api_key):
        return
    try:
        client = client_for(context)
    except FathomError:
        return
    account.refresh_in_background(client)


def generate_button(context) -> dict:
    """What the Generate button of the Server backend shows, from the cached account only:
    {kind: 'generate'|'top_up'|'unknown', text, cost, shortfall, note}."""
    prefs = addon_preferences(context)
    view = account.view(prefs.server_url, prefs.api_key)
    if not bpy.app.online_access:
        return {"kind": "generate", "text": "Generate Depth", "note": ONLINE_ACCESS_OFF}
    if view is None or view.pricing_client is None:
        return {"kind": "generate", "text": "Generate Depth", "note": view.error if view else "Checking the balance..."}
    settings = context.scene.fathom.depth_settings(prefs.threads, prefs.device)
    try:
        cost = view.pricing_client.cost(settings)
    except FathomError as exc:
        return {"kind": "unknown", "text": "Generate Depth", "note": str(exc)}
    tokens = "token" if cost == 1 else "tokens"
    if view.balance is not None and view.balance < cost:
        short = cost - view.balance
        return {
            "kind": "top_up",
            "text": f"Get tokens · {short} more",
            "cost": cost,
            "shortfall": short,
            "note": f"This depth map costs {cost} {tokens}; your balance is {view.balance}",
        }
    return {
        "kind": "generate",
        "text": f"Generate Depth · {cost} {tokens}",
        "cost": cost,
        "shortfall": 0,
        "note": view.error,
    }
