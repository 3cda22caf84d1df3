"""May the Server backend go online, and its client for the configured server and key."""

from typing import Optional

import bpy

from ...engine import remote
from ...engine.errors import FathomError
from ..prefs import addon_preferences


class OfflineError(FathomError):
    """Blender may not go online, and the Server backend needs to."""


def check_online(allow: bool = False, url: str = ""):
    if bpy.app.online_access or allow:
        return
    where = f" ({url})" if url else ""
    raise OfflineError(
        f"Online access is off, so the Server backend cannot reach the depth server{where}: turn on "
        "Edit > Preferences > System > Network > Allow Online Access (headless: run Blender with "
        "--online-mode, or `fathom generate --online-mode`), or choose the Local backend."
    )


def client_for(context=None, url: Optional[str] = None) -> remote.RemoteClient:
    prefs = addon_preferences(context)
    return remote.RemoteClient(url or prefs.server_url, prefs.api_key)
