"""The model store: the folder that holds downloaded models, and the only way to get a model's path.

    store = ModelStore()                 # FATHOM_MODELS_DIR, else the user's cache folder
    store.resolve("da2-small")           # Path, or ModelMissingError saying what to do
    store.download("da2-small", progress=cb, cancel=event)

Inside Blender the add-on passes ``bpy.utils.extension_path_user(__package__, path="models",
create=True)`` as the folder, since the extension's own folder is wiped on upgrade. A catalogue
entry with a ``path`` (see catalog.py) is used where it lies: never downloaded, never deleted.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import download as dl
from .catalog import CATALOG_ENV, ModelInfo, catalog, get_model
from .errors import ChecksumError, ModelError, ModelMissingError

MODELS_DIR_ENV = "FATHOM_MODELS_DIR"
STATUSES = ("missing", "partial", "installed")


def default_models_dir() -> Path:
    """FATHOM_MODELS_DIR, else the platform's per-user cache folder (models can be fetched again)."""
    explicit = os.environ.get(MODELS_DIR_ENV, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = home / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or home / ".cache")
    return base / "fathom" / "models"


@dataclass(frozen=True)
class ModelEntry:
    """One row of the UI's model list."""

    info: ModelInfo
    status: str  # one of STATUSES
    path: Path  # where the model is (or will be)
    part_bytes: int  # bytes of an unfinished download waiting to be resumed


class ModelStore:
    def __init__(self, folder=None):
        self.folder = Path(folder).expanduser() if folder else default_models_dir()

    def __repr__(self):
        return f"ModelStore({str(self.folder)!r})"

    def path_for(self, model_id: str) -> Path:
        info = get_model(model_id)
        return info.path if info.is_local else self.folder / info.filename

    def status(self, model_id: str) -> str:
        info = get_model(model_id)
        path = self.path_for(model_id)
        if _has_right_size(info, path):
            return "installed"
        if not info.is_local and dl.part_path(path).is_file():
            return "partial"
        return "missing"

    def list_models(self) -> list:
        rows = []
        for model_id, info in catalog().items():
            path = self.path_for(model_id)
            part = dl.part_path(path)
            part_bytes = part.stat().st_size if not info.is_local and part.is_file() else 0
            rows.append(ModelEntry(info, self.status(model_id), path, part_bytes))
        return rows

    def resolve(self, model_id: str, verify: bool = False, *, allow_network: bool = True) -> Path:
        """The model's file, ready to load. A file of the wrong size counts as not installed;
        ``verify`` also checks its sha256. ``allow_network`` only shapes the error message."""
        info = get_model(model_id)
        path = self.path_for(model_id)
        if not _has_right_size(info, path):
            raise ModelMissingError(self._missing_message(info, path, allow_network))
        if verify:
            self.verify(model_id)
        return path

    def verify(self, model_id: str, progress=None, cancel=None) -> Path:
        """Check the installed file's sha256 (streamed; progress(done, total)). Returns its path, or
        raises ChecksumError (the file is left alone: the user decides) or ModelMissingError."""
        info = get_model(model_id)
        path = self.resolve(model_id)
        if info.sha256:
            digest = dl.hash_file(path, progress=progress, cancel=cancel, label=info.name).hexdigest()
            if digest != info.sha256:
                fix = (
                    "Point the catalogue entry at the right file or correct its sha256."
                    if info.is_local
                    else f"Delete it and download it again (Preferences > Add-ons > Fathom, or "
                    f"`fathom models download {info.id}`)."
                )
                raise ChecksumError(
                    f"{path} is damaged or not {info.name}: its sha256 is {digest}, expected {info.sha256}. {fix}"
                )
        return path

    def download(
        self, model_id: str, progress=None, cancel=None, allow_network: bool = True, timeout: float = 30
    ) -> Path:
        """Make the model available and return its path. A verified installed file is not fetched
        again; a partial one is resumed. See download.fetch for the errors."""
        info = get_model(model_id)
        if info.is_local:
            return self.resolve(model_id, verify=True)  # nothing to fetch: it is the user's file
        target = self.path_for(model_id)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(
                f"Cannot create the model folder {self.folder}: {exc.strerror}. Choose another "
                f"folder (Preferences > Add-ons > Fathom, or {MODELS_DIR_ENV})."
            ) from None
        with dl.download_lock(target, cancel) as lock:
            if _has_right_size(info, target):
                try:
                    return self.verify(model_id, progress=progress, cancel=cancel)
                except ChecksumError:
                    target.unlink()  # our own damaged copy: fetch it again
            if not allow_network:
                raise ModelMissingError(self._missing_message(info, target, allow_network=False))
            return dl.fetch(
                info.url,
                target,
                size=info.size,
                sha256=info.sha256,
                progress=progress,
                cancel=cancel,
                timeout=timeout,
                label=info.name,
                heartbeat=lock.touch,
            )

    def delete(self, model_id: str) -> bool:
        """Remove the downloaded file and any partial download; True if something was removed."""
        info = get_model(model_id)
        if info.is_local:
            raise ModelError(
                f"{info.name} is your own file {info.path} (named in {CATALOG_ENV}); "
                "Fathom does not delete it. Remove the entry or the file yourself."
            )
        target = self.path_for(model_id)
        with dl.download_lock(target):
            removed = False
            for path in (target, dl.part_path(target)):
                try:
                    path.unlink()
                    removed = True
                except FileNotFoundError:
                    pass
        return removed

    def _missing_message(self, info: ModelInfo, path: Path, allow_network: bool) -> str:
        local = (
            f"point {CATALOG_ENV} at a JSON file naming a local copy: "
            f'{{"models": {{"{info.id}": {{"path": "/path/to/model.onnx"}}}}}}'
        )
        if info.is_local:
            if path.is_file():
                return (
                    f"{info.name}: {path} is {path.stat().st_size} bytes, but the catalogue "
                    f"({CATALOG_ENV}) says {info.size}. Fix the entry's size or the file."
                )
            return (
                f"{info.name} should be at {path} (named in {CATALOG_ENV}), but there is no file there: "
                "fix the path in that file, or remove the entry to download the model instead."
            )
        what = f"{info.name} ({info.id}, {dl.human_size(info.size)}) is not installed in {self.folder}."
        if not allow_network:
            return (
                f"{what} Online access is off, so Fathom cannot download it: in Blender turn on Preferences > "
                f"System > Network > Allow Online Access (or start Blender with --online-mode) and download "
                f"it in Preferences > Add-ons > Fathom; or copy the model file to {path}, or {local}"
            )
        return (
            f"{what} Download it in Preferences > Add-ons > Fathom or run `fathom models download {info.id}`, "
            f"or {local}"
        )


def _has_right_size(info: ModelInfo, path: Path) -> bool:
    try:
        return path.is_file() and (info.size is None or path.stat().st_size == info.size)
    except OSError:
        return False
