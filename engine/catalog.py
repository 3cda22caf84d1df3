"""The model catalogue: which depth models Fathom knows, where to get them and how to check them.

Built-in entries are pinned to one upstream revision with their exact size and sha256, so a
download is either exactly the published file or an error. More models are data, not code: a
JSON file named by the environment variable FATHOM_CATALOG adds entries or replaces built-ins,
and may point at a local file instead of a URL (an offline machine, a studio mirror, a test model):

    {"models": {"da2-small": {"path": "/models/depth_anything_v2_small.onnx"},
                "da2-base": {"name": "Depth Anything V2 Base", "url": "https://.../model.onnx",
                             "size": 123, "sha256": "<64 hex>", "license": "CC-BY-NC-4.0",
                             "commercial_use": false}}}

An entry for a known id keeps that model's description and licence but not its file identity
(url, size, sha256, filename) unless it repeats them, since a different file has a different hash.
Depth Anything V2 Base and Large (CC-BY-NC-4.0, non-commercial) are not built in because their
exact sizes and hashes at a pinned revision are not recorded here; add them this way.
"""

import json
import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Optional

from .errors import ModelError, UnknownModelError

CATALOG_ENV = "FATHOM_CATALOG"
PRECISIONS = ("fp32", "fp16")
OVERRIDE_SHAPE = '{"models": {"<id>": {"path": "/path/to/model.onnx"}}}'

_HF_REVISION = "4472b7362082ad9968fee890ca0f1e5aca36b93d"
_HF_BASE = f"https://huggingface.co/onnx-community/depth-anything-v2-small/resolve/{_HF_REVISION}/onnx/"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class CatalogError(ModelError):
    """The catalogue override file cannot be used."""


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    filename: str  # the file's name in the model folder
    url: Optional[str]  # None when the model is a local file (``path``)
    size: Optional[int]  # bytes; None only for local files of unknown size
    sha256: Optional[str]  # lower-case hex; optional only for local files
    license: str
    commercial_use: bool
    precision: str = "fp32"
    description: str = ""
    path: Optional[Path] = None  # a local file used as it is, never downloaded or deleted

    @property
    def is_local(self) -> bool:
        return self.path is not None


_BUILTIN = (
    ModelInfo(
        id="da2-small",
        name="Depth Anything V2 Small",
        filename="depth-anything-v2-small.onnx",
        url=_HF_BASE + "model.onnx",
        size=99_060_839,
        sha256="afb6a5c28f3b6bf1618c6e43f02073ef9dfdc70e937502d51603e57b0a1df10c",
        license="Apache-2.0",
        commercial_use=True,
        precision="fp32",
        description="24.8 M parameters, relative depth; fast on a CPU, the default.",
    ),
    ModelInfo(
        id="da2-small-fp16",
        name="Depth Anything V2 Small (fp16)",
        filename="depth-anything-v2-small-fp16.onnx",
        url=_HF_BASE + "model_fp16.onnx",
        size=49_642_442,
        sha256="2df6223f206b5164e21f664ace61dabeb9bb6a49b8b5a3e00510b4807d0f5b04",
        license="Apache-2.0",
        commercial_use=True,
        precision="fp16",
        description="Half-size download of Small with half-precision weights; nearly the same depth.",
    ),
)

# Licences known to forbid commercial use; an entry may still say so itself with commercial_use.
_NON_COMMERCIAL = re.compile(r"\bNC\b|non-?commercial", re.IGNORECASE)
_FIELDS = {f.name for f in fields(ModelInfo)}
_FILE_IDENTITY = ("url", "size", "sha256", "filename", "path")


def builtin_models() -> dict:
    return {m.id: m for m in _BUILTIN}


def catalog() -> dict:
    """Every known model by id: the built-ins merged with the FATHOM_CATALOG file, read afresh each call."""
    models = builtin_models()
    source = os.environ.get(CATALOG_ENV, "").strip()
    if source:
        for entry in _read_overrides(Path(source).expanduser()):
            models[entry.id] = entry
    return models


def get_model(model_id: str) -> ModelInfo:
    models = catalog()
    try:
        return models[model_id]
    except KeyError:
        hint = f" or add it to the JSON file named by {CATALOG_ENV}" if model_id else ""
        raise UnknownModelError(
            f"Unknown model {model_id!r}: choose one of {', '.join(sorted(models))}{hint}."
        ) from None


def license_notice(info: ModelInfo) -> str:
    """One line for the UI: the licence, and a clear warning when commercial use is not allowed."""
    if info.commercial_use:
        return f"{info.name}: licence {info.license}, commercial use allowed."
    if info.license == "unknown":
        return (
            f"{info.name}: licence unknown (a model you added). Check its terms before using "
            "its depth maps in commercial work."
        )
    return f"{info.name}: licence {info.license}. NON-COMMERCIAL: do not use it or its depth maps in commercial work."


def _read_overrides(source: Path) -> list:
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(
            f"{CATALOG_ENV} names {source}, which does not exist: fix the path or unset "
            f"{CATALOG_ENV}. Expected shape: {OVERRIDE_SHAPE}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"Cannot read the model catalogue {source} ({CATALOG_ENV}): {exc}") from None
    except json.JSONDecodeError as exc:
        raise CatalogError(
            f"The model catalogue {source} ({CATALOG_ENV}) is not valid JSON: {exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}. Expected shape: {OVERRIDE_SHAPE}"
        ) from None
    entries = data.get("models") if isinstance(data, dict) else None
    if isinstance(entries, list):  # also accept [{"id": ...}, ...]
        try:
            entries = {e["id"]: {k: v for k, v in e.items() if k != "id"} for e in entries}
        except (TypeError, KeyError):
            entries = None
    if not isinstance(entries, dict):
        raise CatalogError(f"The model catalogue {source} needs a \"models\" object, like {OVERRIDE_SHAPE}")
    builtins = builtin_models()
    return [_entry(model_id, fields_, builtins.get(model_id), source) for model_id, fields_ in entries.items()]


def _entry(model_id, given, base, source: Path) -> ModelInfo:
    where = f"model {model_id!r} in {source}"
    if not isinstance(given, dict):
        raise CatalogError(f"{where} must be an object, like {OVERRIDE_SHAPE}")
    unknown = set(given) - _FIELDS
    if unknown:
        raise CatalogError(
            f"{where} has unknown field(s) {', '.join(sorted(unknown))}; "
            f"known fields: {', '.join(sorted(_FIELDS - {'id'}))}."
        )
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", str(model_id)):
        raise CatalogError(f"{where}: an id uses letters, digits, '.', '_' and '-' only.")
    values = dict(given)
    if values.get("path"):
        path = Path(str(values["path"])).expanduser()
        values["path"] = path if path.is_absolute() else (source.parent / path).resolve()
    if base is not None and any(values.get(k) is not None for k in ("url", "path")):
        # A different file: keep the description and licence, forget the old file's identity.
        base = replace(base, **{k: None for k in _FILE_IDENTITY})
    merged = (
        {f: getattr(base, f) for f in _FIELDS}
        if base
        else dict.fromkeys(_FIELDS)
        | {"name": model_id, "license": "unknown", "commercial_use": False, "precision": "fp32", "description": ""}
    )
    if "commercial_use" not in values and _NON_COMMERCIAL.search(str(values.get("license", ""))):
        values["commercial_use"] = False  # a non-commercial licence given without the flag
    merged.update(values, id=model_id)
    return _checked(merged, where)


def _checked(v: dict, where: str) -> ModelInfo:
    if bool(v.get("url")) == bool(v.get("path")):
        raise CatalogError(f"{where} needs exactly one of \"url\" (downloaded) or \"path\" (a local file).")
    if v.get("path"):
        v["filename"] = v.get("filename") or v["path"].name
    elif v.get("url"):
        if not str(v["url"]).startswith(("https://", "http://")):
            raise CatalogError(f"{where}: url must start with https:// (or http://).")
        if not v.get("sha256"):
            raise CatalogError(f"{where}: a downloaded model needs its \"sha256\" so the file can be verified.")
        v["filename"] = v.get("filename") or f"{v['id']}.onnx"
    name = str(v["filename"])
    if v.get("url") and (Path(name).name != name or name in (".", "..")):
        raise CatalogError(f"{where}: filename must be a plain file name, not {name!r}.")
    if v.get("sha256") is not None:
        v["sha256"] = str(v["sha256"]).lower()
        if not _SHA256.match(v["sha256"]):
            raise CatalogError(f"{where}: sha256 must be 64 hexadecimal digits.")
    if v.get("size") is not None and (not isinstance(v["size"], int) or isinstance(v["size"], bool) or v["size"] <= 0):
        raise CatalogError(f"{where}: size must be a positive whole number of bytes.")
    if v.get("precision") not in PRECISIONS:
        raise CatalogError(f"{where}: precision must be one of {', '.join(PRECISIONS)}.")
    if not isinstance(v.get("commercial_use"), bool):
        raise CatalogError(f"{where}: commercial_use must be true or false.")
    if v["commercial_use"] and _NON_COMMERCIAL.search(str(v.get("license", ""))):
        raise CatalogError(f"{where}: licence {v['license']} is non-commercial, so commercial_use must be false.")
    return ModelInfo(**v)
