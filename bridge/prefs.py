"""Reading the add-on's preferences from bridge code (the preferences UI itself is preferences.py)."""

from pathlib import Path

import bpy

from ..engine.session import set_cache_folder
from ..engine.store import ModelStore

ADDON = __package__.rpartition(".")[0]  # the extension's module name, e.g. bl_ext.user_default.fathom
ONLINE_ACCESS_OFF = "Online access is off: Preferences > System > Network > Allow Online Access"


def addon_preferences(context=None):
    """This add-on's preferences (an instance of preferences.FATHOM_AP_preferences)."""
    context = context or bpy.context
    return context.preferences.addons[ADDON].preferences


def default_models_folder() -> Path:
    """Per-user data folder of the extension: it survives upgrades, unlike the extension's own folder."""
    return Path(bpy.utils.extension_path_user(ADDON, path="models", create=True))


def model_store(context=None) -> ModelStore:
    folder = addon_preferences(context).models_dir.strip()
    store = ModelStore(bpy.path.abspath(folder) if folder else default_models_folder())
    set_cache_folder(store.folder / "optimized")  # the optimised graphs live with the models
    return store
